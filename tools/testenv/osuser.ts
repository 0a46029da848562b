import { type ChildProcess, execFile, type StdioOptions, spawn } from 'node:child_process';
import { chmod, chown, mkdtemp, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';

// OS user the test servers run as (PostgreSQL refuses root); made by scripts/install-test-deps.sh.
export const SERVER_USER = 'pgrb';

// What chown, setpriv and a clean HOME need to know about an OS user.
export interface UserInfo {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

const userCache = new Map<string, Promise<UserInfo>>();

function execText(file: string, args: string[]): Promise<string> {
  return new Promise((res, rej) => {
    execFile(file, args, { encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) rej(new Error(`${file} ${args.join(' ')} failed: ${stderr.trim() || err.message}`));
      else res(stdout);
    });
  });
}

// uid, gid and home of an OS user, looked up once per process (id -u / id -g / getent).
export function lookupUser(name: string = SERVER_USER): Promise<UserInfo> {
  let p = userCache.get(name);
  if (!p) {
    p = (async () => {
      const [u, g, pw] = await Promise.all([
        execText('id', ['-u', name]),
        execText('id', ['-g', name]),
        execText('getent', ['passwd', name]),
      ]);
      return { name, uid: Number(u.trim()), gid: Number(g.trim()), home: pw.trim().split(':')[5] ?? '/' };
    })();
    // A failed lookup (user not created yet) must not be cached forever.
    p.catch(() => userCache.delete(name));
    userCache.set(name, p);
  }
  return p;
}

// uid of the server user (for chown and for asserting who owns a process).
export async function serverUid(): Promise<number> {
  return (await lookupUser(SERVER_USER)).uid;
}

// gid of the server user.
export async function serverGid(): Promise<number> {
  return (await lookupUser(SERVER_USER)).gid;
}

// A fresh dir under os.tmpdir(), owned by `owner` (default: the server user), that it can reach.
export async function makeTempDir(prefix: string, owner: string = SERVER_USER): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  // A server running as pgrb cannot traverse e.g. a 0700 $TMPDIR under /root.
  await ensureTraversable(dirname(dir));
  await chmod(dir, 0o755);
  if (owner !== 'root') {
    const { uid, gid } = await lookupUser(owner);
    await chown(dir, uid, gid);
  }
  return dir;
}

// o+x (search only, never read) on a directory and all its ancestors.
export async function ensureTraversable(dir: string): Promise<void> {
  let d = resolve(dir);
  for (;;) {
    const st = await stat(d);
    if ((st.mode & 0o001) === 0) await chmod(d, (st.mode & 0o7777) | 0o001);
    const up = dirname(d);
    if (up === d) return;
    d = up;
  }
}

// Options for runAs/spawnAs; env is added on top of a clean environment, never process.env.
export interface RunAsOptions {
  cwd?: string;
  // An inherited PGPASSWORD/PGUSER/PGHOST would silently change what the server tools do.
  env?: Record<string, string>;
  timeoutMs?: number;
}

// Options for spawnAs (long-running processes).
export interface SpawnAsOptions extends RunAsOptions {
  stdio?: StdioOptions;
  // Ask the kernel to SIGTERM the process when this test process dies, so a crashed test
  // worker does not leave a server behind. Only useful for processes that do not daemonize.
  dieWithParent?: boolean;
}

// Captured output of a finished runAs.
export interface RunResult {
  stdout: string;
  stderr: string;
}

const BASE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

async function commandFor(
  user: string,
  argv: string[],
  opts: SpawnAsOptions,
): Promise<{ file: string; args: string[]; env: Record<string, string> }> {
  if (argv.length === 0) throw new Error('runAs: empty argv');
  const info = user === 'root' ? { uid: 0, gid: 0, home: '/root' } : await lookupUser(user);
  const env: Record<string, string> = {
    PATH: BASE_PATH,
    HOME: info.home,
    USER: user,
    LOGNAME: user,
    LANG: 'C.UTF-8',
    ...opts.env,
  };
  // setpriv execs the target, so the child's PID is the server's own PID (runuser forks).
  const pre: string[] = [];
  if (user !== 'root') pre.push(`--reuid=${info.uid}`, `--regid=${info.gid}`, '--init-groups');
  if (opts.dieWithParent) pre.push('--pdeathsig=TERM');
  if (pre.length === 0) return { file: argv[0] as string, args: argv.slice(1), env };
  return { file: 'setpriv', args: [...pre, '--', ...argv], env };
}

// Run a command to completion as `user`; rejects with its stderr on a non-zero exit.
export async function runAs(user: string, argv: string[], opts: RunAsOptions = {}): Promise<RunResult> {
  const { file, args, env } = await commandFor(user, argv, opts);
  return new Promise((res, rej) => {
    execFile(
      file,
      args,
      // cwd defaults to / because the server user may not be able to enter the test's cwd.
      { cwd: opts.cwd ?? '/', env, encoding: 'utf8', timeout: opts.timeoutMs ?? 60_000, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        if (err) {
          const why = (stderr || stdout).trim() || err.message;
          rej(
            Object.assign(new Error(`runAs ${user}: ${argv.join(' ')}: ${why}`), {
              stdout,
              stderr,
              cause: err,
            }),
          );
        } else res({ stdout, stderr });
      },
    );
  });
}

// Start a long-running process as `user`; child.pid is the process itself, not a wrapper.
export async function spawnAs(
  user: string,
  argv: string[],
  opts: SpawnAsOptions = {},
): Promise<ChildProcess> {
  const { file, args, env } = await commandFor(user, argv, opts);
  return spawn(file, args, { cwd: opts.cwd ?? '/', env, stdio: opts.stdio ?? 'ignore' });
}

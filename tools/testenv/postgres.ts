import { access, chown, mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import pg from 'pg';
import { lookupUser, makeTempDir, runAs, SERVER_USER } from './osuser.js';
import { freePort } from './ports.js';
import { armWatchdog, shQuote, type Watchdog, waitForExit } from './procs.js';

// Major versions the install script provides (13 from bullseye, 15 from bookworm).
export type PgVersion = 13 | 15;

// Options for startPostgres.
export interface StartPostgresOptions {
  version: PgVersion;
  // Written last in postgresql.conf, so they override the helper's own settings.
  settings?: Record<string, string>;
  // Sets the superuser password and makes TCP logins use scram-sha-256; the Unix socket stays
  // trust so helpers can still administer the cluster without it.
  password?: string;
  // An existing, empty directory owned by the server user (e.g. a btrfs subvolume) to hold the
  // cluster instead of a fresh ROOT/data. stop() then only stops the server: the directory and
  // its files stay for whoever made it to remove (e.g. BtrfsFs.destroy()).
  dataDir?: string;
  // Replaces the default archive_command (archiveCommandFor(archiveDir)); `settings` still win.
  archiveCommand?: string;
}

// A running test cluster; stop() shuts it down and deletes every file it made (rootDir), which is
// all of them unless it was started with an outside `dataDir`.
export interface PgServer {
  version: PgVersion;
  port: number;
  host: '127.0.0.1';
  socketDir: string;
  dataDir: string;
  // Whether dataDir was given by the caller (and so is left in place by stop()).
  externalDataDir: boolean;
  archiveDir: string;
  // archive_command the server started with (setArchiveCommand(s, null) returns to it).
  archiveCommand: string;
  binDir: string;
  // Superuser name given to initdb.
  user: 'postgres';
  // Only when started with `password`; deliberately not part of connectionString.
  password?: string;
  pid: number;
  // TCP, superuser, database postgres; no password in it even when one is set.
  connectionString: string;
  logFile: string;
  // The temp directory holding archive, socket, log and (unless given) data; removed by stop().
  rootDir: string;
  stop(): Promise<void>;
}

// Server binaries of a major version (the pg_ctl/psql on PATH are Debian wrappers that pick 15).
export function pgBinDir(version: PgVersion): string {
  return `/usr/lib/postgresql/${version}/bin`;
}

// A value quoted for postgresql.conf (the GUC lexer treats backslash as an escape too).
export function quoteConf(value: string): string {
  return `'${value.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;
}

// The default archive_command: copy each segment once into `archiveDir`.
export function archiveCommandFor(archiveDir: string): string {
  return `test ! -f ${archiveDir}/%f && cp %p ${archiveDir}/%f`;
}

// An archive_command for an archive several servers write the same WAL into (a leader and its
// standbys with archive_mode=always): a segment already there is accepted only if identical; a new
// one is copied under a temporary name and renamed, so nobody reads or compares a half-written file.
export function sharedArchiveCommandFor(archiveDir: string): string {
  const f = `${archiveDir}/%f`;
  return `if test -f ${f}; then cmp -s %p ${f}; else cp %p ${f}.tmp$$ && mv ${f}.tmp$$ ${f}; fi`;
}

const SETTING_NAME = /^[A-Za-z_][A-Za-z0-9_.]*$/;
const PORT_ATTEMPTS = 3;

// initdb + pg_ctl start as the server user on a free 127.0.0.1 port, archiving WAL to its own dir.
export async function startPostgres(opts: StartPostgresOptions): Promise<PgServer> {
  const { version } = opts;
  const binDir = pgBinDir(version);
  await access(join(binDir, 'initdb')).catch(() => {
    throw new Error(`PostgreSQL ${version} is not installed (${binDir}); run scripts/install-test-deps.sh`);
  });
  for (const name of Object.keys(opts.settings ?? {})) {
    if (!SETTING_NAME.test(name)) throw new Error(`startPostgres: bad setting name ${JSON.stringify(name)}`);
  }

  if (opts.dataDir !== undefined) await checkOutsideDataDir(opts.dataDir);

  const rootDir = await makeTempDir(`pgrb-pg${version}-`);
  const dataDir = opts.dataDir ?? join(rootDir, 'data');
  const archiveDir = join(rootDir, 'archive');
  const socketDir = join(rootDir, 'sock');
  const logFile = join(rootDir, 'postgres.log');
  const pgctl = join(binDir, 'pg_ctl');
  let pid = 0;

  try {
    const { uid, gid } = await lookupUser(SERVER_USER);
    for (const d of [archiveDir, socketDir]) {
      await mkdir(d, { mode: 0o700 });
      await chown(d, uid, gid);
    }

    const initdb = [
      join(binDir, 'initdb'),
      '-D',
      dataDir,
      '-U',
      'postgres',
      '-E',
      'UTF8',
      '--locale=C.UTF-8',
      // A throwaway cluster does not need to survive a power cut.
      '--no-sync',
    ];
    const pwFile = join(rootDir, 'pwfile');
    if (opts.password !== undefined) {
      if (/[\r\n]/.test(opts.password))
        throw new Error('startPostgres: password must be one line (initdb --pwfile)');
      // A file, not argv: anything on a command line is visible in ps to every user.
      await writeFile(pwFile, `${opts.password}\n`, { mode: 0o600 });
      await chown(pwFile, uid, gid);
      initdb.push(`--pwfile=${pwFile}`, '--auth-local=trust', '--auth-host=scram-sha-256');
    } else {
      initdb.push('--auth=trust');
    }
    try {
      await runAs(SERVER_USER, initdb, { cwd: rootDir });
    } finally {
      await rm(pwFile, { force: true });
    }

    const confPath = join(dataDir, 'postgresql.conf');
    const initialConf = await readFile(confPath, 'utf8');

    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const archiveCommand =
        opts.settings?.archive_command ?? opts.archiveCommand ?? archiveCommandFor(archiveDir);
      const settings: Record<string, string> = {
        listen_addresses: '127.0.0.1',
        port: String(port),
        unix_socket_directories: socketDir,
        wal_level: 'replica',
        archive_mode: 'on',
        archive_command: archiveCommand,
        // 13 still defaults to md5, which a scram-sha-256 pg_hba line cannot verify.
        ...(opts.password !== undefined ? { password_encryption: 'scram-sha-256' } : {}),
        ...opts.settings,
      };
      const block = Object.entries(settings)
        .map(([k, v]) => `${k} = ${quoteConf(v)}`)
        .join('\n');
      await writeFile(confPath, `${initialConf}\n# tools/testenv/postgres.ts\n${block}\n`);

      try {
        await runAs(SERVER_USER, [pgctl, '-D', dataDir, '-l', logFile, '-w', '-t', '30', 'start'], {
          cwd: rootDir,
        });
      } catch (err) {
        const log = await readFile(logFile, 'utf8').catch(() => '');
        // Another process can grab the port between freePort() and the bind.
        if (attempt < PORT_ATTEMPTS && /could not bind|Address already in use/i.test(log)) {
          await writeFile(logFile, '');
          continue;
        }
        throw new Error(`${(err as Error).message}\n--- ${logFile} ---\n${log.slice(-4000)}`);
      }

      pid = await readPostmasterPid(dataDir);
      if (pid === 0) throw new Error(`startPostgres: no postmaster.pid in ${dataDir} after start`);
      // pg_ctl put the postmaster in its own session: if this worker dies without stop(), only
      // the watchdog ends it (immediate shutdown of the whole group) and removes the files.
      const watchdog = armWatchdog(
        `kill -QUIT -- -${pid} 2>/dev/null || kill -QUIT ${pid}; i=0; ` +
          `while kill -0 ${pid} 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done; ` +
          `rm -rf ${shQuote(rootDir)}`,
      );

      let stopping: Promise<void> | undefined;
      const server: PgServer = {
        version,
        port,
        host: '127.0.0.1',
        socketDir,
        dataDir,
        externalDataDir: opts.dataDir !== undefined,
        archiveDir,
        archiveCommand,
        binDir,
        user: 'postgres',
        ...(opts.password !== undefined ? { password: opts.password } : {}),
        pid,
        connectionString: `postgresql://postgres@127.0.0.1:${port}/postgres`,
        logFile,
        rootDir,
        stop: () => {
          stopping ??= stopCluster(pgctl, dataDir, rootDir, pid, watchdog);
          return stopping;
        },
      };
      return server;
    }
  } catch (err) {
    // pg_ctl can time out with the postmaster up after all: find it so it is not left behind.
    if (pid === 0) pid = await readPostmasterPid(dataDir);
    await stopCluster(pgctl, dataDir, rootDir, pid).catch(() => {});
    throw err;
  }
}

// The caller's dataDir must be ready for initdb as the server user: absolute, an empty directory,
// owned by that user (initdb then sets mode 0700 itself).
async function checkOutsideDataDir(dir: string): Promise<void> {
  if (!isAbsolute(dir)) throw new Error(`startPostgres: dataDir must be absolute: ${dir}`);
  const st = await stat(dir).catch((e: Error) => {
    throw new Error(`startPostgres: dataDir ${dir}: ${e.message}`);
  });
  if (!st.isDirectory()) throw new Error(`startPostgres: dataDir ${dir} is not a directory`);
  const { uid } = await lookupUser(SERVER_USER);
  if (st.uid !== uid) throw new Error(`startPostgres: dataDir ${dir} must be owned by ${SERVER_USER}`);
  if ((await readdir(dir)).length > 0) throw new Error(`startPostgres: dataDir ${dir} is not empty`);
}

// ALTER SYSTEM SET archive_command (RESET for null: back to what the server started with),
// reload, and wait until the server reports the new value. Runs over the Unix socket, which
// trusts the superuser even when TCP wants a password. The archiver picks the value up on its
// next attempt (a failing one retries about every second, then waits for the reload's wake-up).
export async function setArchiveCommand(server: PgServer, cmd: string | null): Promise<void> {
  const client = new pg.Client({
    host: server.socketDir,
    port: server.port,
    user: server.user,
    database: 'postgres',
  });
  await client.connect();
  try {
    await client.query(
      cmd === null
        ? 'ALTER SYSTEM RESET archive_command'
        : `ALTER SYSTEM SET archive_command = ${client.escapeLiteral(cmd)}`,
    );
    // pg_file_settings re-reads the files: the row that would win is what a reload applies.
    const { rows } = await client.query<{ setting: string }>(
      "select setting from pg_file_settings where name = 'archive_command' and applied",
    );
    const want = rows.at(-1)?.setting ?? '';
    await client.query('select pg_reload_conf()');
    const deadline = Date.now() + 10_000;
    for (;;) {
      const r = await client.query<{ v: string }>("select current_setting('archive_command') as v");
      if (r.rows[0]?.v === want) return;
      if (Date.now() > deadline)
        throw new Error(`setArchiveCommand: archive_command is still ${JSON.stringify(r.rows[0]?.v)}`);
      await new Promise((res) => setTimeout(res, 20));
    }
  } finally {
    await client.end().catch(() => {});
  }
}

async function readPostmasterPid(dataDir: string): Promise<number> {
  const text = await readFile(join(dataDir, 'postmaster.pid'), 'utf8').catch(() => '');
  const pid = Number(text.split('\n')[0]);
  return Number.isInteger(pid) && pid > 0 ? pid : 0;
}

async function stopCluster(
  pgctl: string,
  dataDir: string,
  rootDir: string,
  pid: number,
  watchdog?: Watchdog,
): Promise<void> {
  await watchdog?.disarm();
  if (pid > 0) {
    try {
      await runAs(SERVER_USER, [pgctl, '-D', dataDir, '-m', 'fast', '-w', '-t', '10', 'stop'], {
        cwd: rootDir,
      });
    } catch {
      // pg_ctl start put the postmaster in its own session (setsid), so the group id is its PID:
      // one signal reaches the backends too.
      killGroup(pid, 'SIGQUIT');
      if (!(await waitForExit(pid, 3000))) killGroup(pid, 'SIGKILL');
    }
    // pg_ctl returns once postmaster.pid is gone, which is a moment before the process is.
    if (!(await waitForExit(pid, 10_000))) throw new Error(`postmaster ${pid} (${dataDir}) did not exit`);
  }
  if (process.env.PGRB_KEEP_TEST_DIRS !== '1') await rm(rootDir, { recursive: true, force: true });
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

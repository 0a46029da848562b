import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { appendFile, chown, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { lookupUser, makeTempDir, runAs, SERVER_USER, spawnAs } from './osuser.js';
import { freePort } from './ports.js';
import { armWatchdog, descendantTree, shQuote, type Watchdog } from './procs.js';

// Options for startSshd.
export interface StartSshdOptions {
  // Omit MaxSessions/MaxStartups so OpenSSH's own limits (10, 10:30:100) apply, as on real
  // servers: the runner's pacing must survive them.
  defaults?: boolean;
  // Host key types to generate, each an sshd HostKey; default ['ed25519']. The first one is the
  // key of hostPublicKey, hostKeyFingerprint and knownHostsFile; all are in hostKeys.
  hostKeyTypes?: HostKeyType[];
  // PATH of every session (sshd's SetEnv), e.g. a directory without rsync: a host that lacks a
  // program. Must hold no spaces or quotes.
  path?: string;
}

export type HostKeyType = 'ed25519' | 'rsa' | 'ecdsa';

// One host key of a test sshd.
export interface SshHostKey {
  type: HostKeyType;
  // `ssh-rsa AAAA...` (type and base64 blob, no comment).
  publicKey: string;
  // `SHA256:...` as ssh-keygen -l prints it.
  fingerprint: string;
  // `[127.0.0.1]:PORT <publicKey>`, a known_hosts line for this key alone.
  knownHostsLine: string;
}

// A running loopback sshd; stop() ends it and its sessions and deletes its files.
export interface SshServer {
  host: '127.0.0.1';
  port: number;
  user: typeof SERVER_USER;
  // Unencrypted ed25519 private key (OpenSSH format), readable by the test process only.
  identityFile: string;
  // Holds exactly one line: `[127.0.0.1]:PORT ssh-ed25519 AAAA...`.
  knownHostsFile: string;
  knownHostsLine: string;
  // `SHA256:...` exactly as ssh-keygen -l / ssh print it.
  hostKeyFingerprint: string;
  // `ssh-ed25519 AAAA...` (type and base64 blob, no comment).
  hostPublicKey: string;
  // Every host key sshd offers, in hostKeyTypes order.
  hostKeys: SshHostKey[];
  pid: number;
  configFile: string;
  logFile: string;
  rootDir: string;
  stop(): Promise<void>;
}

// OpenSSH's SHA256 fingerprint of a public key blob: unpadded base64 of its SHA-256.
export function sshFingerprint(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

const PORT_ATTEMPTS = 3;
const READY_TIMEOUT_MS = 10_000;

// A second sshd (own config and host key, key login for SERVER_USER) on a free 127.0.0.1 port.
export async function startSshd(opts: StartSshdOptions = {}): Promise<SshServer> {
  if (opts.path !== undefined && !/^[\w./:-]+$/.test(opts.path))
    throw new Error(`startSshd: PATH ${opts.path} would need quoting in sshd_config`);
  // Debian's sshd refuses to start without its privilege-separation dir; systemd normally makes it.
  await mkdir('/run/sshd', { recursive: true, mode: 0o755 });
  // Owned by root: sshd reads its host key as root, and the client key is for the test process.
  const rootDir = await makeTempDir('pgrb-sshd-', 'root');
  const hostKeyTypes: HostKeyType[] = opts.hostKeyTypes?.length
    ? [...new Set(opts.hostKeyTypes)]
    : ['ed25519'];
  const hostKeyFiles = hostKeyTypes.map((t) => join(rootDir, `host_${t}`));
  const identityFile = join(rootDir, 'client_ed25519');
  const authorizedKeys = join(rootDir, 'authorized_keys');
  const configFile = join(rootDir, 'sshd_config');
  const logFile = join(rootDir, 'sshd.log');
  const pidFile = join(rootDir, 'sshd.pid');
  const knownHostsFile = join(rootDir, 'known_hosts');
  let child: ChildProcess | undefined;

  try {
    const keygen = (file: string, comment: string, type: HostKeyType = 'ed25519') =>
      runAs('root', [
        'ssh-keygen',
        '-q',
        '-t',
        type,
        ...(type === 'rsa' ? ['-b', '2048'] : []),
        '-N',
        '',
        '-C',
        comment,
        '-f',
        file,
      ]);
    await Promise.all([
      ...hostKeyTypes.map((t, i) => keygen(hostKeyFiles[i]!, 'pgrb-test-host', t)),
      keygen(identityFile, 'pgrb-test-client'),
    ]);
    // sshd opens this as the target user, hence world-readable; it holds only a public key.
    await writeFile(authorizedKeys, await readFile(`${identityFile}.pub`, 'utf8'), { mode: 0o644 });

    const publicKeys = await Promise.all(
      hostKeyFiles.map(async (file, i) => {
        const [keyType, keyB64] = (await readFile(`${file}.pub`, 'utf8')).trim().split(/\s+/);
        if (!keyType || !keyB64) throw new Error(`startSshd: cannot parse ${file}.pub`);
        return {
          type: hostKeyTypes[i]!,
          publicKey: `${keyType} ${keyB64}`,
          fingerprint: sshFingerprint(Buffer.from(keyB64, 'base64')),
        };
      }),
    );
    const hostPublicKey = publicKeys[0]!.publicKey;
    const hostKeyFingerprint = publicKeys[0]!.fingerprint;

    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const lines = [
        `Port ${port}`,
        'ListenAddress 127.0.0.1',
        'AddressFamily inet',
        ...hostKeyFiles.map((f) => `HostKey ${f}`),
        `PidFile ${pidFile}`,
        'UsePAM no',
        'PasswordAuthentication no',
        'KbdInteractiveAuthentication no',
        'PubkeyAuthentication yes',
        'AuthenticationMethods publickey',
        `AuthorizedKeysFile ${authorizedKeys}`,
        // StrictModes walks up to the 1777 /tmp holding the keys and refuses them.
        'StrictModes no',
        'UseDNS no',
        `AllowUsers ${SERVER_USER}`,
        'PermitRootLogin no',
        'X11Forwarding no',
        'PrintMotd no',
        'PrintLastLog no',
        'LogLevel VERBOSE',
        'Subsystem sftp internal-sftp',
        ...(opts.defaults ? [] : ['MaxSessions 64', 'MaxStartups 200']),
        ...(opts.path ? [`SetEnv PATH=${opts.path}`] : []),
      ];
      await writeFile(configFile, `${lines.join('\n')}\n`, { mode: 0o644 });
      await writeFile(logFile, '');

      // -D keeps sshd in the foreground so child.pid is the listener; dieWithParent stops it
      // if the test worker crashes before teardown.
      const c = await spawnAs('root', ['/usr/sbin/sshd', '-D', '-f', configFile, '-E', logFile], {
        dieWithParent: true,
        stdio: 'ignore',
      });
      child = c;
      // Must not keep the test worker alive on its own; stop() (or the death signal) ends it.
      c.unref();
      const exited = new Promise<string>((res) => {
        c.once('exit', (code, sig) => res(`sshd exited (${sig ?? code})`));
        c.once('error', (e) => res(`sshd could not start: ${e.message}`));
      });
      const gaveUp = new AbortController();
      const why = await Promise.race([waitForBanner(port, gaveUp.signal), exited]);
      gaveUp.abort();
      if (why !== 'ready') {
        const log = await readFile(logFile, 'utf8').catch(() => '');
        if (attempt < PORT_ATTEMPTS && /Address already in use/i.test(log)) continue;
        throw new Error(`startSshd: ${why}\n--- ${logFile} ---\n${log.slice(-4000)}`);
      }
      const pid = c.pid as number;
      // The death signal ends the listener if this worker dies; the watchdog removes the files.
      const watchdog = armWatchdog(`sleep 0.5; rm -rf ${shQuote(rootDir)}`);

      const knownHostsLine = `[127.0.0.1]:${port} ${hostPublicKey}`;
      const hostKeys = publicKeys.map((k) => ({
        ...k,
        knownHostsLine: `[127.0.0.1]:${port} ${k.publicKey}`,
      }));
      await writeFile(knownHostsFile, `${knownHostsLine}\n`, { mode: 0o644 });

      let stopping: Promise<void> | undefined;
      return {
        host: '127.0.0.1',
        port,
        user: SERVER_USER,
        identityFile,
        knownHostsFile,
        knownHostsLine,
        hostKeyFingerprint,
        hostPublicKey,
        hostKeys,
        pid,
        configFile,
        logFile,
        rootDir,
        stop: () => {
          stopping ??= stopSshd(c, rootDir, watchdog);
          return stopping;
        },
      };
    }
  } catch (err) {
    await stopSshd(child, rootDir).catch(() => {});
    throw err;
  }
}

// What SERVER_USER needs to ssh (or rsync) from inside a session to the same sshd, as one test
// "host" to another (the upgrade rsyncs a replica's data from the leader's host).
export interface PeerSsh {
  // Unencrypted ed25519 private key, owned by SERVER_USER, 0600, in a 0700 dir of its own.
  identityFile: string;
  // known_hosts readable by SERVER_USER, with a line for every host key the sshd offers.
  knownHostsFile: string;
  // `ssh -F /dev/null -p PORT -i KEY -o ...` without a destination: prefix of
  // `<sshCommand> pgrb@127.0.0.1 CMD`, or rsync's `-e "<sshCommand>"`. Verifies the host key and
  // never prompts. Paths are unquoted (checked to need no quoting).
  sshCommand: string;
}

const peers = new WeakMap<SshServer, Promise<PeerSsh>>();

// A key pair for SERVER_USER authorized on `server` and a known_hosts for it, made once per
// server under its rootDir (so stop() removes them); later calls return the same.
export function peerSsh(server: SshServer): Promise<PeerSsh> {
  let p = peers.get(server);
  if (!p) {
    p = makePeerSsh(server);
    // A failure is not cached: the next call tries again.
    p.catch(() => peers.delete(server));
    peers.set(server, p);
  }
  return p;
}

async function makePeerSsh(server: SshServer): Promise<PeerSsh> {
  const { uid, gid } = await lookupUser(SERVER_USER);
  const dir = join(server.rootDir, 'peer');
  const identityFile = join(dir, 'id_ed25519');
  const knownHostsFile = join(dir, 'known_hosts');
  // rsync splits -e at spaces and has no backslash escapes: keep it to paths needing no quotes.
  if (!/^[\w./-]+$/.test(dir)) throw new Error(`peerSsh: ${dir} would need quoting in an ssh command`);
  // Left over by a failed earlier call: ssh-keygen would ask before overwriting the key.
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { mode: 0o700 });
  await chown(dir, uid, gid);
  // Generated by the user itself, so the key is its own and 0600 from the start.
  await runAs(SERVER_USER, [
    'ssh-keygen',
    '-q',
    '-t',
    'ed25519',
    '-N',
    '',
    '-C',
    'pgrb-peer',
    '-f',
    identityFile,
  ]);
  await appendFile(join(server.rootDir, 'authorized_keys'), await readFile(`${identityFile}.pub`, 'utf8'));
  await writeFile(knownHostsFile, server.hostKeys.map((k) => `${k.knownHostsLine}\n`).join(''), {
    mode: 0o644,
  });
  await chown(knownHostsFile, uid, gid);
  const sshCommand = [
    'ssh',
    // No ~/.ssh/config or agent of the user, no global known_hosts: only what is made here.
    '-F /dev/null',
    `-p ${server.port}`,
    `-i ${identityFile}`,
    '-o IdentitiesOnly=yes',
    `-o UserKnownHostsFile=${knownHostsFile}`,
    '-o GlobalKnownHostsFile=/dev/null',
    '-o StrictHostKeyChecking=yes',
    '-o BatchMode=yes',
  ].join(' ');
  return { identityFile, knownHostsFile, sshCommand };
}

// Resolves 'ready' once something on the port sends an SSH identification string.
function waitForBanner(port: number, cancel: AbortSignal): Promise<string> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  return new Promise((resolve) => {
    const attempt = () => {
      const sock = connect({ host: '127.0.0.1', port });
      let buf = '';
      let settled = false;
      const retry = () => {
        if (settled) return;
        settled = true;
        sock.destroy();
        if (cancel.aborted) resolve('cancelled');
        else if (Date.now() > deadline)
          resolve(`no SSH banner on 127.0.0.1:${port} within ${READY_TIMEOUT_MS} ms`);
        else setTimeout(attempt, 20);
      };
      sock.setTimeout(1000, retry);
      sock.on('error', retry);
      sock.on('close', retry);
      sock.on('data', (d) => {
        buf += d.toString('latin1');
        if (buf.startsWith('SSH-')) {
          settled = true;
          sock.destroy();
          resolve('ready');
        }
      });
    };
    attempt();
  });
}

async function stopSshd(
  child: ChildProcess | undefined,
  rootDir: string,
  watchdog?: Watchdog,
): Promise<void> {
  await watchdog?.disarm();
  const pid = child?.pid ?? 0;
  if (child && pid > 0 && child.exitCode === null && child.signalCode === null) {
    // Node must reap the listener itself (its 'exit' event) before this worker ends: an orphaned
    // zombie waits for PID 1, which on these VMs reaps only every ~2 s.
    const reaped = new Promise<void>((res) => child.once('exit', () => res()));
    await endSessions(pid);
    signal(pid, 'SIGTERM');
    if (!(await within(reaped, 3000))) {
      signal(pid, 'SIGKILL');
      if (!(await within(reaped, 5000))) throw new Error(`sshd ${pid} did not exit`);
    }
  }
  if (process.env.PGRB_KEEP_TEST_DIRS !== '1') await rm(rootDir, { recursive: true, force: true });
}

// Sessions still open are ended from the leaves up, so each process is reaped by its own (still
// living) parent instead of becoming an orphaned zombie; SIGKILL whatever is left after 3 s.
async function endSessions(listener: number): Promise<void> {
  const deadline = Date.now() + 3000;
  const signalled = new Set<number>();
  for (;;) {
    const tree = await descendantTree(listener);
    if (tree.size === 0) return;
    if (Date.now() > deadline) {
      for (const p of tree.keys()) signal(p, 'SIGKILL');
      return;
    }
    const parents = new Set(tree.values());
    for (const p of tree.keys()) {
      if (!parents.has(p) && !signalled.has(p)) {
        signalled.add(p);
        signal(p, 'SIGTERM');
      }
    }
    await new Promise((r) => setTimeout(r, 10));
  }
}

// Whether `p` settles within `ms`; the timer is cleared so it cannot hold the worker open.
async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let t: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((res) => {
    t = setTimeout(() => res(false), ms);
  });
  try {
    return await Promise.race([p.then(() => true), timeout]);
  } finally {
    clearTimeout(t);
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

import type { ChildProcess } from 'node:child_process';
import { access, chown, mkdir, open, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import pg from 'pg';
import { stringify } from 'yaml';
import { type EtcdServer, httpRequest } from './etcd.js';
import { lookupUser, makeTempDir, SERVER_USER, spawnAs } from './osuser.js';
import { freePort } from './ports.js';
import { archiveCommandFor, type PgVersion, pgBinDir } from './postgres.js';
import { armWatchdog, isAlive, shQuote, type Watchdog, waitForExit } from './procs.js';

// Options for startPatroniCluster.
export interface StartPatroniOptions {
  etcd: EtcdServer;
  // Number of members (default 2): one leader, the rest streaming replicas.
  members?: number;
  // Patroni `scope` (cluster name) in the DCS; default a fresh `pgrb-<random>`.
  scope?: string;
  // PostgreSQL major version every member runs (default 15); 13 is the old side of an upgrade.
  version?: PgVersion;
}

// One Patroni member of a test cluster.
export interface PatroniMember {
  name: string;
  // `http://127.0.0.1:PORT` of its REST API.
  restUrl: string;
  pgPort: number;
  dataDir: string;
  // PID of the Patroni process (not of PostgreSQL, whose PID is in DATA/postmaster.pid); changes
  // when startMember() starts it again.
  pid: number;
  configFile: string;
  logFile: string;
  // unix_socket_directories of its PostgreSQL.
  socketDir: string;
}

// A running Patroni cluster on one etcd; stop() ends every Patroni and PostgreSQL and deletes
// rootDir (data dirs, archive, configs, logs).
export interface PatroniCluster {
  scope: string;
  // PostgreSQL major version of every member (binDir is that version's).
  version: PgVersion;
  members: PatroniMember[];
  // Superuser and replication logins written in the YAML (test only). TCP logins need the
  // password (scram-sha-256); the Unix socket trusts everyone.
  superuser: { username: 'postgres'; password: string };
  replication: { username: 'replicator'; password: string };
  // Shared archive dir every member's archive_command copies into.
  archiveDir: string;
  binDir: string;
  rootDir: string;
  // Name of the member that currently holds the leader key (polls until there is one).
  leader(): Promise<string>;
  // Connection config (TCP, superuser, password) for a member's PostgreSQL.
  clientConfig(name: string): pg.ClientConfig;
  // Stops only this member's Patroni and its PostgreSQL (also when the cluster is paused, where
  // Patroni alone would leave it running), deleting nothing; resolves once both processes have
  // exited and postmaster.pid is gone. Not paused, stopping the leader fails over. No-op if the
  // member is already stopped.
  stopMember(name: string): Promise<void>;
  // Starts this member's Patroni again with the same config; resolves once its REST API reports
  // it running and, for a replica, its WAL receiver streams. Rejects soon when the cluster is
  // paused (Patroni then does not start a stopped PostgreSQL; its Patroni is left running, and
  // starts PostgreSQL once the cluster is resumed). No-op if its Patroni is running.
  startMember(name: string): Promise<void>;
  stop(): Promise<void>;
}

const SUPERUSER_PASSWORD = 'pgrb-test-super';
const REPLICATION_PASSWORD = 'pgrb-test-repl';
const READY_TIMEOUT_MS = 60_000;
const PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface MemberState extends PatroniMember {
  // Its current Patroni process (undefined only until the first spawn).
  child?: ChildProcess;
  exited: Promise<string>;
  // Stopped on purpose by stopMember(): its Patroni exiting is not a failure.
  down: boolean;
  // Tail of this member's stopMember/startMember calls, which run one at a time.
  op: Promise<void>;
  // The object handed out in PatroniCluster.members (its pid follows restarts).
  view: PatroniMember;
}

// What spawnMember needs besides the member itself.
interface SpawnContext {
  pidsFile: string;
  members: MemberState[];
  // Tail of the pidsFile rewrites, which run one at a time (members can start and stop at once).
  pidsWrite: Promise<void>;
}

// `members` Patroni nodes (PostgreSQL `version`, default 15) on `etcd`; resolves once a leader is
// elected and every replica streams from it (pg_stat_replication on the leader).
export async function startPatroniCluster(opts: StartPatroniOptions): Promise<PatroniCluster> {
  const count = opts.members ?? 2;
  if (!Number.isInteger(count) || count < 1) throw new Error(`startPatroniCluster: bad members ${count}`);
  const version = opts.version ?? 15;
  if (version !== 13 && version !== 15)
    throw new Error(`startPatroniCluster: version must be 13 or 15, got ${JSON.stringify(version)}`);
  const binDir = pgBinDir(version);
  await access(join(binDir, 'initdb')).catch(() => {
    throw new Error(`PostgreSQL ${version} is not installed (${binDir}); run scripts/install-test-deps.sh`);
  });
  const scope = opts.scope ?? `pgrb-${Math.random().toString(36).slice(2, 10)}`;
  const rootDir = await makeTempDir('pgrb-patroni-');
  const archiveDir = join(rootDir, 'archive');
  const { uid, gid } = await lookupUser(SERVER_USER);
  const members: MemberState[] = [];
  let watchdog: Watchdog | undefined;
  let stopping: Promise<void> | undefined;

  const superuser = { username: 'postgres' as const, password: SUPERUSER_PASSWORD };
  const replication = { username: 'replicator' as const, password: REPLICATION_PASSWORD };
  const member = (name: string): MemberState => {
    const m = members.find((x) => x.name === name);
    if (!m)
      throw new Error(`no member ${name} in ${scope} (members: ${members.map((x) => x.name).join(', ')})`);
    return m;
  };
  const clientConfig = (name: string): pg.ClientConfig => ({
    host: '127.0.0.1',
    port: member(name).pgPort,
    user: 'postgres',
    password: SUPERUSER_PASSWORD,
    database: 'postgres',
  });
  const pidsFile = join(rootDir, 'patroni.pids');
  const ctx: SpawnContext = { pidsFile, members, pidsWrite: Promise.resolve() };
  const stop = () => {
    stopping ??= stopCluster(members, rootDir, watchdog);
    return stopping;
  };
  const notStopping = (what: string) => {
    if (stopping) throw new Error(`${what}: cluster ${scope} is stopping`);
  };
  // Runs `fn` after the member's previous stopMember/startMember has settled.
  const serial = (m: MemberState, fn: () => Promise<void>): Promise<void> => {
    const p = m.op.then(fn);
    m.op = p.catch(() => {});
    return p;
  };

  // Both async: a bad name or a stopping cluster rejects rather than throws.
  const stopMember = async (name: string): Promise<void> => {
    const m = member(name);
    notStopping(`stopMember(${name})`);
    return serial(m, async () => {
      notStopping(`stopMember(${name})`);
      m.down = true;
      const postmaster = await readPostmasterPid(m.dataDir);
      await stopPatroni(m);
      await writePids(ctx);
      // Paused, Patroni leaves PostgreSQL running: stop it here too.
      await stopPostgres(m);
      if (postmaster > 0 && !(await waitForExit(postmaster, 10_000)))
        throw new Error(`stopMember(${name}): postmaster ${postmaster} did not exit`);
      const pidFile = join(m.dataDir, 'postmaster.pid');
      const deadline = Date.now() + 10_000;
      while (await exists(pidFile)) {
        if (Date.now() > deadline)
          throw new Error(`stopMember(${name}): ${pidFile} is still there (a crashed postmaster leaves it)`);
        await sleep(50);
      }
    });
  };

  const startMember = async (name: string): Promise<void> => {
    const m = member(name);
    notStopping(`startMember(${name})`);
    return serial(m, async () => {
      notStopping(`startMember(${name})`);
      if (isRunning(m.child)) return;
      await spawnMember(m, ctx, 'a');
      m.down = false;
      await waitFor(
        { label: `startMember(${name})`, members, aborted: () => stopping !== undefined },
        `${name} running (Patroni state and, as a replica, streaming)`,
        async () => {
          const st = JSON.parse((await httpRequest('GET', `${m.restUrl}/patroni`, undefined, 1000)).body);
          if (st.pause === true && st.state === 'stopped')
            throw new FatalWait(
              `cluster ${scope} is paused and Patroni does not start a stopped PostgreSQL: resume first`,
            );
          if (st.state !== 'running') return false;
          if (st.role !== 'replica') return true;
          const rows = await query<{ status: string }>(
            clientConfig(name),
            'select status from pg_stat_wal_receiver',
          );
          return rows[0]?.status === 'streaming';
        },
      );
    });
  };

  try {
    await writeFile(pidsFile, '');
    // One watchdog for the whole cluster, armed before the first Patroni starts; it reads the
    // live Patroni PIDs from pidsFile (rewritten whenever one starts or stops) and finds the
    // postmasters by postmaster.pid.
    watchdog = armWatchdog(watchdogScript(rootDir, pidsFile));
    await mkdir(archiveDir, { mode: 0o700 });
    await chown(archiveDir, uid, gid);
    // Ports are picked all at once so no two members get the same one.
    const ports = new Set<number>();
    while (ports.size < 2 * count) ports.add(await freePort());
    const portList = [...ports];
    const waitCtx = { label: 'startPatroniCluster', members, aborted: () => stopping !== undefined };

    for (let i = 0; i < count; i++) {
      const name = `m${i + 1}`;
      const dir = join(rootDir, name);
      const socketDir = join(dir, 'sock');
      const dataDir = join(dir, 'data');
      const pgPort = portList[2 * i] as number;
      const restPort = portList[2 * i + 1] as number;
      for (const d of [dir, socketDir]) {
        await mkdir(d, { mode: 0o700 });
        await chown(d, uid, gid);
      }
      const configFile = join(dir, 'patroni.yml');
      const logFile = join(dir, 'patroni.log');
      await writeFile(
        configFile,
        stringify(
          memberConfig({
            scope,
            name,
            version,
            etcd: opts.etcd,
            restPort,
            pgPort,
            dataDir,
            socketDir,
            binDir,
            archiveDir,
            pgpass: join(dir, 'pgpass'),
          }),
        ),
        { mode: 0o600 },
      );
      await chown(configFile, uid, gid);
      const view: PatroniMember = {
        name,
        restUrl: `http://127.0.0.1:${restPort}`,
        pgPort,
        dataDir,
        pid: 0,
        configFile,
        logFile,
        socketDir,
      };
      const m: MemberState = {
        ...view,
        exited: Promise.resolve(`patroni ${name} not started`),
        down: false,
        op: Promise.resolve(),
        view,
      };
      members.push(m);
      await spawnMember(m, ctx, 'w');
      // The first member bootstraps alone, so the others never race it for the initialize key
      // (they would just wait, but a clone attempt before the leader is up costs a retry loop).
      if (i === 0) {
        await waitFor(waitCtx, 'a leader', async () => (await findLeader(members)) !== undefined);
      }
    }

    const leaderName = (await findLeader(members)) as string;
    const leaderCfg = clientConfig(leaderName);
    await waitFor(waitCtx, `${count - 1} streaming replica(s) on ${leaderName}`, async () => {
      const rows = await query<{ n: number }>(
        leaderCfg,
        "select count(*)::int as n from pg_stat_replication where state = 'streaming'",
      );
      return rows[0]?.n === count - 1;
    });
    // Streaming comes before the replica's Patroni notices: it says `uninitialized` until its
    // next loop (up to loop_wait), and tools reading GET /patroni or /cluster would see that.
    await waitFor(waitCtx, 'every replica reported running by Patroni', async () => {
      const states = await Promise.all(
        members
          .filter((m) => m.name !== leaderName)
          .map(async (m) =>
            JSON.parse((await httpRequest('GET', `${m.restUrl}/patroni`, undefined, 1000)).body),
          ),
      );
      return states.every((st) => st.role === 'replica' && st.state === 'running');
    });

    return {
      scope,
      version,
      members: members.map((m) => m.view),
      superuser,
      replication,
      archiveDir,
      binDir,
      rootDir,
      leader: async () => {
        const deadline = Date.now() + READY_TIMEOUT_MS;
        for (;;) {
          const l = await findLeader(members);
          if (l !== undefined) return l;
          if (Date.now() > deadline) throw new Error(`no leader in ${scope} within ${READY_TIMEOUT_MS} ms`);
          await sleep(100);
        }
      },
      clientConfig,
      stopMember,
      startMember,
      stop,
    };
  } catch (err) {
    await stop().catch(() => {});
    throw err;
  }
}

// Starts (or starts again) a member's Patroni as the server user, logging to its logFile
// (truncated for 'w', appended to for 'a'), and records the new PID for the watchdog.
async function spawnMember(m: MemberState, ctx: SpawnContext, logMode: 'w' | 'a'): Promise<void> {
  const log = await open(m.logFile, logMode, 0o644);
  let child: ChildProcess;
  try {
    // spawnAs builds the environment from nothing (PATH, HOME, USER, LOGNAME, LANG): an
    // inherited PGPASSWORD/PGUSER would override Patroni's pgpass and replicas never clone.
    child = await spawnAs(SERVER_USER, ['/usr/bin/patroni', m.configFile], {
      cwd: dirname(m.configFile),
      env: { PATH, LANG: 'C.UTF-8' },
      dieWithParent: true,
      stdio: ['ignore', log.fd, log.fd],
    });
  } finally {
    await log.close();
  }
  child.unref();
  const c = child;
  const name = m.name;
  m.exited = new Promise<string>((res) => {
    c.once('exit', (code, sig) => res(`patroni ${name} exited (${sig ?? code})`));
    c.once('error', (e) => res(`patroni ${name} could not start: ${e.message}`));
  });
  m.child = c;
  m.pid = c.pid ?? 0;
  m.view.pid = m.pid;
  await writePids(ctx);
}

// Rewrites the watchdog's PID list with the Patroni processes that are still running, so that
// it never signals a PID the system has since given to another process.
function writePids(ctx: SpawnContext): Promise<void> {
  const write = async () => {
    // Read when this write runs, not when it was queued: the last write has the latest list.
    const pids = ctx.members.filter((m) => m.pid > 0 && isRunning(m.child)).map((m) => m.pid);
    const tmp = `${ctx.pidsFile}.tmp`;
    await writeFile(tmp, pids.map((p) => `${p}\n`).join(''));
    // rename: the watchdog's `cat` sees the old list or the new one, never half a file.
    await rename(tmp, ctx.pidsFile);
  };
  const p = ctx.pidsWrite.then(write);
  ctx.pidsWrite = p.catch(() => {});
  return p;
}

function isRunning(child: ChildProcess | undefined): boolean {
  return child !== undefined && child.exitCode === null && child.signalCode === null;
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

async function readPostmasterPid(dataDir: string): Promise<number> {
  const text = await readFile(join(dataDir, 'postmaster.pid'), 'utf8').catch(() => '');
  const pid = Number(text.split('\n')[0]);
  return Number.isInteger(pid) && pid > 0 ? pid : 0;
}

interface MemberConfigInput {
  scope: string;
  name: string;
  version: PgVersion;
  etcd: EtcdServer;
  restPort: number;
  pgPort: number;
  dataDir: string;
  socketDir: string;
  binDir: string;
  archiveDir: string;
  pgpass: string;
}

// One member's Patroni YAML (as an object). Settings from ../shared/TESTENV.md.
function memberConfig(c: MemberConfigInput): Record<string, unknown> {
  return {
    scope: c.scope,
    name: c.name,
    log: { level: 'INFO' },
    restapi: { listen: `127.0.0.1:${c.restPort}`, connect_address: `127.0.0.1:${c.restPort}` },
    etcd3: { hosts: [`127.0.0.1:${c.etcd.clientPort}`] },
    bootstrap: {
      dcs: {
        ttl: 20,
        loop_wait: 2,
        retry_timeout: 5,
        maximum_lag_on_failover: 1048576,
        postgresql: { use_pg_rewind: false, use_slots: true },
      },
      // Same as the upgrade's new initdb will use (auth options do not matter to pg_upgrade).
      initdb: [
        { encoding: 'UTF8' },
        { locale: 'C.UTF-8' },
        'data-checksums',
        // 13 defaults to password_encryption=md5, also for the superuser password initdb sets from
        // Patroni's pwfile; Patroni then logs in over TCP, which pg_hba wants as scram-sha-256
        // ("User does not have a valid SCRAM secret"). With a scram auth method, 13's initdb
        // writes password_encryption=scram-sha-256 before it sets the password. 15: the default.
        ...(c.version === 13 ? [{ 'auth-host': 'scram-sha-256' }] : []),
      ],
    },
    postgresql: {
      listen: `127.0.0.1:${c.pgPort}`,
      connect_address: `127.0.0.1:${c.pgPort}`,
      data_dir: c.dataDir,
      bin_dir: c.binDir,
      pgpass: c.pgpass,
      authentication: {
        superuser: { username: 'postgres', password: SUPERUSER_PASSWORD },
        replication: { username: 'replicator', password: REPLICATION_PASSWORD },
        rewind: { username: 'postgres', password: SUPERUSER_PASSWORD },
      },
      parameters: {
        unix_socket_directories: c.socketDir,
        wal_level: 'replica',
        hot_standby: 'on',
        archive_mode: 'on',
        archive_command: archiveCommandFor(c.archiveDir),
        // Else the first streaming attempt waits 5 s: the leader makes the slot on its next loop.
        wal_retrieve_retry_interval: '500ms',
        password_encryption: 'scram-sha-256',
        fsync: 'off',
      },
      pg_hba: [
        'local all all trust',
        'host replication replicator 127.0.0.1/32 scram-sha-256',
        'host all all 127.0.0.1/32 scram-sha-256',
      ],
    },
    tags: { nofailover: false, noloadbalance: false, clonefrom: false, nosync: false },
  };
}

// Name of the member whose REST API answers GET /leader with 200, if any.
async function findLeader(members: PatroniMember[]): Promise<string | undefined> {
  const answers = await Promise.all(
    members.map(async (m) => {
      try {
        return (await httpRequest('GET', `${m.restUrl}/leader`, undefined, 1000)).status === 200;
      } catch {
        return false;
      }
    }),
  );
  return members[answers.indexOf(true)]?.name;
}

async function query<T>(config: pg.ClientConfig, sql: string): Promise<T[]> {
  const client = new pg.Client({ ...config, connectionTimeoutMillis: 2000 });
  client.on('error', () => {});
  await client.connect();
  try {
    return (await client.query(sql)).rows as T[];
  } finally {
    await client.end().catch(() => {});
  }
}

// Where waitFor reports from and what it watches.
interface WaitContext {
  // Prefix of its error messages (the helper that waits).
  label: string;
  // Every member: any that is not `down` must keep its Patroni running.
  members: MemberState[];
  // True once stop() has begun: waiting longer is pointless.
  aborted: () => boolean;
}

// Thrown by a waitFor check to fail at once instead of polling on.
class FatalWait extends Error {}

// Polls `check` until true; fails early (with the logs) if a Patroni process that should be running
// exits, if the cluster is being stopped, or if `check` throws FatalWait.
async function waitFor(ctx: WaitContext, what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let lastErr = '';
  for (;;) {
    if (ctx.aborted()) throw new Error(`${ctx.label}: the cluster is stopping (was waiting for ${what})`);
    for (const m of ctx.members) {
      if (!m.down && !isRunning(m.child))
        throw new Error(
          `${ctx.label}: ${await m.exited} while waiting for ${what}\n${await logTails(ctx.members)}`,
        );
    }
    try {
      if (await check()) return;
    } catch (e) {
      if (e instanceof FatalWait) throw new Error(`${ctx.label}: ${e.message}`);
      lastErr = (e as Error).message;
    }
    if (Date.now() > deadline)
      throw new Error(
        `${ctx.label}: no ${what} within ${READY_TIMEOUT_MS} ms${lastErr ? ` (${lastErr})` : ''}\n${await logTails(ctx.members)}`,
      );
    await sleep(100);
  }
}

async function logTails(members: PatroniMember[]): Promise<string> {
  const parts = await Promise.all(
    members.map(
      async (m) =>
        `--- ${m.logFile} ---\n${(await readFile(m.logFile, 'utf8').catch(() => '')).slice(-3000)}`,
    ),
  );
  return parts.join('\n');
}

// Shell snippet for the watchdog: SIGTERM every Patroni (then SIGKILL after 10 s), immediate
// shutdown of every PostgreSQL by its postmaster.pid (Patroni leaves it running when paused or
// killed), then remove the files.
function watchdogScript(rootDir: string, pidsFile: string): string {
  const root = shQuote(rootDir);
  return [
    `P=$(cat ${shQuote(pidsFile)} 2>/dev/null)`,
    'kill -TERM $P 2>/dev/null',
    'i=0; while [ $i -lt 100 ]; do a=0; for p in $P; do kill -0 $p 2>/dev/null && a=1; done; [ $a = 0 ] && break; sleep 0.1; i=$((i+1)); done',
    '[ -n "$P" ] && kill -KILL $P 2>/dev/null',
    `for f in ${root}/m*/data/postmaster.pid; do p=$(head -n1 "$f" 2>/dev/null); [ -n "$p" ] && { kill -QUIT -- -$p 2>/dev/null || kill -QUIT $p 2>/dev/null; }; done`,
    `sleep 1; rm -rf ${root}`,
  ].join('; ');
}

// Awaits `p` with a ref'd timer running: armWatchdog's disarm() and an unref'd child's 'exit'
// hold no handle of their own, so in a plain script (not vitest) Node would otherwise find the
// event loop empty and exit with code 13 ("unsettled top-level await") in the middle of a stop.
async function keepingAlive<T>(p: Promise<T>): Promise<T> {
  const t = setInterval(() => {}, 1000);
  try {
    return await p;
  } finally {
    clearInterval(t);
  }
}

async function stopCluster(
  members: MemberState[],
  rootDir: string,
  watchdog: Watchdog | undefined,
): Promise<void> {
  // A stopMember/startMember in flight sees `stopping` and gives up soon; let it settle first.
  await keepingAlive(Promise.all(members.map((m) => m.op)));
  if (watchdog) await keepingAlive(watchdog.disarm());
  // Members stopped by stopMember are skipped here; their PostgreSQL is checked below anyway.
  const running = members.filter((m) => isRunning(m.child));
  if (running.length > 0) {
    // Not paused: stopping the leader's Patroni first would fail over to a replica, so the
    // replicas go first. Paused (or unknown): order does not matter, PostgreSQL stays up and is
    // stopped below by its postmaster.pid.
    const leader = await findLeader(running).catch(() => undefined);
    const replicas = running.filter((m) => m.name !== leader);
    await Promise.all(replicas.map((m) => stopPatroni(m)));
    const l = running.find((m) => m.name === leader);
    if (l) await stopPatroni(l);
  }
  await Promise.all(members.map((m) => stopPostgres(m)));
  if (process.env.PGRB_KEEP_TEST_DIRS !== '1') await rm(rootDir, { recursive: true, force: true });
}

// SIGTERM Patroni (it shuts PostgreSQL down unless paused); SIGKILL after 30 s. Reaped here.
async function stopPatroni(m: MemberState): Promise<void> {
  const { child } = m;
  if (!child || !isRunning(child)) return;
  const reaped = new Promise<void>((res) => child.once('exit', () => res()));
  signal(m.pid, 'SIGTERM');
  const t = setTimeout(() => signal(m.pid, 'SIGKILL'), 30_000);
  await reaped;
  clearTimeout(t);
}

// A PostgreSQL still running after its Patroni stopped (paused cluster): fast shutdown by its
// postmaster.pid, immediate (its whole session) if that does not work.
async function stopPostgres(m: PatroniMember): Promise<void> {
  const pid = await readPostmasterPid(m.dataDir);
  if (pid === 0 || !(await isAlive(pid))) return;
  // The postmaster runs as SERVER_USER; root may signal it directly. SIGINT = fast shutdown.
  signal(pid, 'SIGINT');
  if (!(await waitForExit(pid, 10_000))) {
    // Patroni started it with setsid: the group id is its PID, one signal reaches the backends.
    try {
      process.kill(-pid, 'SIGQUIT');
    } catch {
      signal(pid, 'SIGQUIT');
    }
    if (!(await waitForExit(pid, 5000))) signal(pid, 'SIGKILL');
    if (!(await waitForExit(pid, 5000))) throw new Error(`postmaster ${pid} (${m.dataDir}) did not exit`);
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

import type { ChildProcess } from 'node:child_process';
import { appendFile, chown, mkdir, open, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { stringify } from 'yaml';
import { type EtcdServer, httpRequest } from './etcd.js';
import { lookupUser, makeTempDir, SERVER_USER, spawnAs } from './osuser.js';
import { freePort } from './ports.js';
import { archiveCommandFor, pgBinDir } from './postgres.js';
import { armWatchdog, isAlive, shQuote, type Watchdog, waitForExit } from './procs.js';

// Options for startPatroniCluster.
export interface StartPatroniOptions {
  etcd: EtcdServer;
  // Number of members (default 2): one leader, the rest streaming replicas.
  members?: number;
  // Patroni `scope` (cluster name) in the DCS; default a fresh `pgrb-<random>`.
  scope?: string;
}

// One Patroni member of a test cluster.
export interface PatroniMember {
  name: string;
  // `http://127.0.0.1:PORT` of its REST API.
  restUrl: string;
  pgPort: number;
  dataDir: string;
  // PID of the Patroni process (not of PostgreSQL: see postmasterPid()).
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
  stop(): Promise<void>;
}

const SUPERUSER_PASSWORD = 'pgrb-test-super';
const REPLICATION_PASSWORD = 'pgrb-test-repl';
const READY_TIMEOUT_MS = 60_000;
const PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface MemberState extends PatroniMember {
  child: ChildProcess;
  exited: Promise<string>;
}

// `members` Patroni nodes (PostgreSQL 15) on `etcd`; resolves once a leader is elected and every
// replica streams from it (pg_stat_replication on the leader).
export async function startPatroniCluster(opts: StartPatroniOptions): Promise<PatroniCluster> {
  const count = opts.members ?? 2;
  if (!Number.isInteger(count) || count < 1) throw new Error(`startPatroniCluster: bad members ${count}`);
  const scope = opts.scope ?? `pgrb-${Math.random().toString(36).slice(2, 10)}`;
  const binDir = pgBinDir(15);
  const rootDir = await makeTempDir('pgrb-patroni-');
  const archiveDir = join(rootDir, 'archive');
  const { uid, gid } = await lookupUser(SERVER_USER);
  const members: MemberState[] = [];
  let watchdog: Watchdog | undefined;
  let stopping: Promise<void> | undefined;

  const superuser = { username: 'postgres' as const, password: SUPERUSER_PASSWORD };
  const replication = { username: 'replicator' as const, password: REPLICATION_PASSWORD };
  const clientConfig = (name: string): pg.ClientConfig => {
    const m = members.find((x) => x.name === name);
    if (!m) throw new Error(`no member ${name} in ${scope}`);
    return {
      host: '127.0.0.1',
      port: m.pgPort,
      user: 'postgres',
      password: SUPERUSER_PASSWORD,
      database: 'postgres',
    };
  };
  const stop = () => {
    stopping ??= stopCluster(members, rootDir, watchdog);
    return stopping;
  };

  const pidsFile = join(rootDir, 'patroni.pids');
  try {
    await writeFile(pidsFile, '');
    // One watchdog for the whole cluster, armed before the first Patroni starts; it finds the
    // Patroni PIDs in pidsFile (appended as they start) and the postmasters by postmaster.pid.
    watchdog = armWatchdog(watchdogScript(rootDir, pidsFile));
    await mkdir(archiveDir, { mode: 0o700 });
    await chown(archiveDir, uid, gid);
    // Ports are picked all at once so no two members get the same one.
    const ports = new Set<number>();
    while (ports.size < 2 * count) ports.add(await freePort());
    const portList = [...ports];

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
      const log = await open(logFile, 'w', 0o644);
      let child: ChildProcess;
      try {
        // spawnAs builds the environment from nothing (PATH, HOME, USER, LOGNAME, LANG): an
        // inherited PGPASSWORD/PGUSER would override Patroni's pgpass and replicas never clone.
        child = await spawnAs(SERVER_USER, ['/usr/bin/patroni', configFile], {
          cwd: dir,
          env: { PATH, LANG: 'C.UTF-8' },
          dieWithParent: true,
          stdio: ['ignore', log.fd, log.fd],
        });
      } finally {
        await log.close();
      }
      child.unref();
      const c = child;
      const exited = new Promise<string>((res) => {
        c.once('exit', (code, sig) => res(`patroni ${name} exited (${sig ?? code})`));
        c.once('error', (e) => res(`patroni ${name} could not start: ${e.message}`));
      });
      if (c.pid) await appendFile(pidsFile, `${c.pid}\n`);
      members.push({
        name,
        restUrl: `http://127.0.0.1:${restPort}`,
        pgPort,
        dataDir,
        pid: c.pid ?? 0,
        configFile,
        logFile,
        socketDir,
        child: c,
        exited,
      });
      // The first member bootstraps alone, so the others never race it for the initialize key
      // (they would just wait, but a clone attempt before the leader is up costs a retry loop).
      if (i === 0) {
        await waitFor(members, 'a leader', async () => (await findLeader(members)) !== undefined);
      }
    }

    const leaderName = (await findLeader(members)) as string;
    const leaderCfg = clientConfig(leaderName);
    await waitFor(members, `${count - 1} streaming replica(s) on ${leaderName}`, async () => {
      const rows = await query<{ n: number }>(
        leaderCfg,
        "select count(*)::int as n from pg_stat_replication where state = 'streaming'",
      );
      return rows[0]?.n === count - 1;
    });
    // Streaming comes before the replica's Patroni notices: it says `uninitialized` until its
    // next loop (up to loop_wait), and tools reading GET /patroni or /cluster would see that.
    await waitFor(members, 'every replica reported running by Patroni', async () => {
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
      members: members.map(({ child: _c, exited: _e, ...m }) => m),
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
      stop,
    };
  } catch (err) {
    await stop().catch(() => {});
    throw err;
  }
}

interface MemberConfigInput {
  scope: string;
  name: string;
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
      // Same as the upgrade's new initdb will use.
      initdb: [{ encoding: 'UTF8' }, { locale: 'C.UTF-8' }, 'data-checksums'],
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

// Polls `check` until true; fails early (with the logs) if a Patroni process exits.
async function waitFor(members: MemberState[], what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let lastErr = '';
  for (;;) {
    for (const m of members) {
      if (m.child.exitCode !== null || m.child.signalCode !== null)
        throw new Error(
          `startPatroniCluster: ${await m.exited} while waiting for ${what}\n${await logTails(members)}`,
        );
    }
    try {
      if (await check()) return;
    } catch (e) {
      lastErr = (e as Error).message;
    }
    if (Date.now() > deadline)
      throw new Error(
        `startPatroniCluster: no ${what} within ${READY_TIMEOUT_MS} ms${lastErr ? ` (${lastErr})` : ''}\n${await logTails(members)}`,
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
  if (watchdog) await keepingAlive(watchdog.disarm());
  const running = members.filter((m) => m.child.exitCode === null && m.child.signalCode === null);
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
  if (child.exitCode !== null || child.signalCode !== null) return;
  const reaped = new Promise<void>((res) => child.once('exit', () => res()));
  signal(m.pid, 'SIGTERM');
  const t = setTimeout(() => signal(m.pid, 'SIGKILL'), 30_000);
  await reaped;
  clearTimeout(t);
}

// A PostgreSQL still running after its Patroni stopped (paused cluster): fast shutdown by its
// postmaster.pid, immediate (its whole session) if that does not work.
async function stopPostgres(m: PatroniMember): Promise<void> {
  const text = await readFile(join(m.dataDir, 'postmaster.pid'), 'utf8').catch(() => '');
  const pid = Number(text.split('\n')[0]);
  if (!Number.isInteger(pid) || pid <= 0 || !(await isAlive(pid))) return;
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

import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import {
  access,
  chmod,
  chown,
  mkdir,
  open,
  readdir,
  readFile,
  rename,
  rm,
  writeFile,
} from 'node:fs/promises';
import { dirname, join } from 'node:path';
import pg from 'pg';
import { stringify } from 'yaml';
import type { ConsulServer } from './consul.js';
import { type EtcdServer, httpRequest } from './etcd.js';
import { lookupUser, makeTempDir, SERVER_USER, spawnAs, type UserInfo } from './osuser.js';
import { freePort } from './ports.js';
import { archiveCommandFor, type PgVersion, pgBinDir, sharedArchiveCommandFor } from './postgres.js';
import { armWatchdog, isAlive, shQuote, type Watchdog, waitForExit } from './procs.js';

// Options for startPatroniCluster.
export interface StartPatroniOptions {
  // The DCS: exactly one of etcd (Patroni's `etcd3` section) and consul (its `consul` section).
  etcd?: EtcdServer;
  consul?: ConsulServer;
  // Number of members (default 2): one leader, the rest streaming replicas.
  members?: number;
  // Patroni `scope` (cluster name) in the DCS; default a fresh `pgrb-<random>`.
  scope?: string;
  // PostgreSQL major version every member runs (default 15); 13 is the old side of an upgrade.
  version?: PgVersion;
  // archive_mode of every member (default on). `always`: standbys archive too, into the same
  // shared directory as the leader (a standby backup needs its WAL archived by the standby), so
  // the archive_command accepts a segment that is already there with identical content.
  archiveMode?: 'on' | 'always';
  // PostgreSQL parameters in the DCS's bootstrap configuration, which Patroni applies to every
  // member and is the only place for some (e.g. wal_level: logical, for a logical slot).
  parameters?: Record<string, string>;
  // Configs, service scripts and directories only: no member is started and no data directory
  // made. A playbook fills the first member's dataDir (a blue-green target from a copy of another
  // cluster) and starts the members through their service scripts; Patroni takes an existing data
  // directory over as the leader of a scope the DCS does not know yet.
  deferred?: boolean;
}

// One Patroni member of a test cluster.
export interface PatroniMember {
  name: string;
  // `http://127.0.0.1:PORT` of its REST API.
  restUrl: string;
  pgPort: number;
  // `<rootDir>/<name>`, owned by the server user: a playbook may create a new data dir here (the
  // upgrade's `data15`); cleanup stops a PostgreSQL running from any data dir up to two levels down.
  memberDir: string;
  // The data dir the member was created with (`<memberDir>/data`); a playbook may point the
  // config at another one.
  dataDir: string;
  // PID of the member's Patroni (not of PostgreSQL, whose PID is in DATA/postmaster.pid) as its
  // pidFile says, whoever started it; the last one seen while it is stopped. Reads the file.
  readonly pid: number;
  // One line, the PID of the running Patroni: written by startPatroniCluster/startMember and by
  // `serviceScript start`, removed when either stops it; the watchdog and stop() read it.
  pidFile: string;
  // Patroni config; `serviceScript start` rereads it, so a playbook may change bin_dir/data_dir.
  configFile: string;
  logFile: string;
  // unix_socket_directories of its PostgreSQL.
  socketDir: string;
  // `<memberDir>/patroni-service start|stop|status`, the test stand-in for `systemctl start|stop|
  // status patroni` (mode 0755, owned by the server user, which it runs as; from root it switches
  // by runuser). See serviceScript() for the contract. Once it has started or stopped the member,
  // the cluster no longer treats that member's Patroni exiting as a failure.
  serviceScript: string;
}

// A running Patroni cluster on one etcd or Consul agent; stop() ends every Patroni and PostgreSQL and deletes
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
  // Stops only this member's Patroni (node's or the service script's) and every PostgreSQL under
  // its memberDir (also when the cluster is paused, where Patroni alone would leave it running),
  // deleting nothing; resolves once they have exited and their postmaster.pid is gone. Not paused,
  // stopping the leader fails over. No-op if the member is already stopped.
  stopMember(name: string): Promise<void>;
  // Starts this member's Patroni again with the same config; resolves once its REST API reports
  // it running and, for a replica, its WAL receiver streams. Rejects soon when the cluster is
  // paused (Patroni then does not start a stopped PostgreSQL; its Patroni is left running, and
  // starts PostgreSQL once the cluster is resumed). No-op if its Patroni is running, whoever
  // started it.
  startMember(name: string): Promise<void>;
  stop(): Promise<void>;
}

const SUPERUSER_PASSWORD = 'pgrb-test-super';
const REPLICATION_PASSWORD = 'pgrb-test-repl';
const READY_TIMEOUT_MS = 60_000;
const PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface MemberState extends Omit<PatroniMember, 'pid'> {
  // PID of the member's Patroni last seen: node spawned it, or memberView read it from pidFile.
  pid: number;
  // Exists once serviceScript has started or stopped the member; removed when node spawns it.
  serviceMark: string;
  // Its Patroni process started by node, undefined only until the first spawn; exited when the
  // service script stopped it.
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
  server: UserInfo;
  // Running Patroni processes node started (tests read it); the watchdog reads the members'
  // pidFiles instead, which also name those the service script started.
  pidsFile: string;
  members: MemberState[];
  // Tail of the pidsFile rewrites, which run one at a time (members can start and stop at once).
  pidsWrite: Promise<void>;
}

// `members` Patroni nodes (PostgreSQL `version`, default 15) on `etcd` or `consul`; resolves once a leader is
// elected and every replica streams from it (pg_stat_replication on the leader).
export async function startPatroniCluster(opts: StartPatroniOptions): Promise<PatroniCluster> {
  const count = opts.members ?? 2;
  if (!Number.isInteger(count) || count < 1) throw new Error(`startPatroniCluster: bad members ${count}`);
  if ((opts.etcd === undefined) === (opts.consul === undefined))
    throw new Error('startPatroniCluster: give exactly one DCS, etcd or consul');
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
  const server = await lookupUser(SERVER_USER);
  const { uid, gid } = server;
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
  const ctx: SpawnContext = { server, pidsFile, members, pidsWrite: Promise.resolve() };
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
      const dataDirs = await dataDirsWithPostmaster(m.memberDir);
      const postmasters = await Promise.all(dataDirs.map(readPostmasterPid));
      await stopPatroni(m);
      await writePids(ctx);
      // Paused, Patroni leaves PostgreSQL running: stop it here too.
      await Promise.all(dataDirs.map(stopPostgres));
      for (const pid of postmasters) {
        if (pid > 0 && !(await waitForExit(pid, 10_000)))
          throw new Error(`stopMember(${name}): postmaster ${pid} did not exit`);
      }
      const deadline = Date.now() + 10_000;
      for (const d of dataDirs) {
        const pidFile = join(d, 'postmaster.pid');
        while (await exists(pidFile)) {
          if (Date.now() > deadline)
            throw new Error(
              `stopMember(${name}): ${pidFile} is still there (a crashed postmaster leaves it)`,
            );
          await sleep(50);
        }
      }
    });
  };

  const startMember = async (name: string): Promise<void> => {
    const m = member(name);
    notStopping(`startMember(${name})`);
    return serial(m, async () => {
      notStopping(`startMember(${name})`);
      if ((await patroniPid(m)) > 0) return;
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
    // members' Patroni PIDs from their pidFiles (node and the service script keep them current)
    // and finds the postmasters by postmaster.pid in any data dir under a member's dir.
    watchdog = armWatchdog(watchdogScript(rootDir));
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
      const pidFile = join(dir, 'patroni.pid');
      const serviceMark = join(dir, 'patroni-service.used');
      const script = join(dir, 'patroni-service');
      await writeFile(
        configFile,
        stringify(
          memberConfig({
            scope,
            name,
            version,
            etcd: opts.etcd,
            consul: opts.consul,
            restPort,
            pgPort,
            dataDir,
            socketDir,
            binDir,
            archiveDir,
            archiveMode: opts.archiveMode ?? 'on',
            pgpass: join(dir, 'pgpass'),
            parameters: opts.parameters ?? {},
          }),
        ),
        { mode: 0o600 },
      );
      await chown(configFile, uid, gid);
      await writeFile(
        script,
        serviceScript({ name, scope, memberDir: dir, configFile, logFile, pidFile, serviceMark, server }),
      );
      await chmod(script, 0o755);
      await chown(script, uid, gid);
      const fields: Omit<PatroniMember, 'pid'> = {
        name,
        restUrl: `http://127.0.0.1:${restPort}`,
        pgPort,
        memberDir: dir,
        dataDir,
        pidFile,
        configFile,
        logFile,
        socketDir,
        serviceScript: script,
      };
      const m: MemberState = {
        ...fields,
        pid: 0,
        serviceMark,
        exited: Promise.resolve(`patroni ${name} not started`),
        down: false,
        op: Promise.resolve(),
        view: memberView(fields, () => m),
      };
      members.push(m);
      if (opts.deferred) {
        m.down = true;
        continue;
      }
      await spawnMember(m, ctx, 'w');
      // The first member bootstraps alone, so the others never race it for the initialize key
      // (they would just wait, but a clone attempt before the leader is up costs a retry loop).
      if (i === 0) {
        await waitFor(waitCtx, 'a leader', async () => (await findLeader(members)) !== undefined);
      }
    }

    const ready = async () => {
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
    };
    if (!opts.deferred) await ready();

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
// (truncated for 'w', appended to for 'a'), and records the new PID for the watchdog and the
// service script; the member is node's to watch again.
async function spawnMember(m: MemberState, ctx: SpawnContext, logMode: 'w' | 'a'): Promise<void> {
  const log = await open(m.logFile, logMode, 0o644);
  let child: ChildProcess;
  try {
    // The service script appends to it as the server user.
    await log.chown(ctx.server.uid, ctx.server.gid);
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
  // Written like the script does (temp file, rename) so that a reader never sees half a PID.
  const tmp = `${m.pidFile}.node`;
  await writeFile(tmp, `${m.pid}\n`, { mode: 0o644 });
  await chown(tmp, ctx.server.uid, ctx.server.gid);
  await rename(tmp, m.pidFile);
  await rm(m.serviceMark, { force: true });
  await writePids(ctx);
}

// The PatroniMember handed out: its pid follows the member's pidFile, so it also names a Patroni
// the service script started (node does not see that happen).
function memberView(fields: Omit<PatroniMember, 'pid'>, state: () => MemberState): PatroniMember {
  return {
    ...fields,
    get pid() {
      const m = state();
      let text = '';
      try {
        text = readFileSync(m.pidFile, 'utf8');
      } catch {
        // stopped (or the cluster's files are gone): the last PID seen
      }
      const pid = parsePid(text);
      if (pid > 0) m.pid = pid;
      return m.pid;
    },
  };
}

// PID of the member's running Patroni, whoever started it: node's child, else the pidFile's PID
// if that process is alive and runs this member's config (after a crash the file is stale and
// the system may have given its PID to another process).
async function patroniPid(m: MemberState): Promise<number> {
  if (m.child?.pid && isRunning(m.child)) return m.child.pid;
  const pid = parsePid(await readFile(m.pidFile, 'utf8').catch(() => ''));
  if (pid === 0 || !(await isAlive(pid))) return 0;
  const argv = (await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')).split('\0');
  return argv.includes(m.configFile) ? pid : 0;
}

function parsePid(text: string): number {
  const pid = Number(text.split('\n')[0]);
  return Number.isInteger(pid) && pid > 0 ? pid : 0;
}

// Rewrites pidsFile with the Patroni processes node started that are still running, for tests
// to compare with the members' PIDs.
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
  return parsePid(await readFile(join(dataDir, 'postmaster.pid'), 'utf8').catch(() => ''));
}

// Directories one or two levels under a member's dir that hold a postmaster.pid: its data dir and
// any a playbook made there (the upgrade's `data15`; pg_upgrade starts servers of its own).
async function dataDirsWithPostmaster(memberDir: string): Promise<string[]> {
  const found: string[] = [];
  const walk = async (dir: string, depth: number): Promise<void> => {
    const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
    for (const e of entries) {
      if (!e.isDirectory()) continue;
      const d = join(dir, e.name);
      if (await exists(join(d, 'postmaster.pid'))) found.push(d);
      else if (depth < 2) await walk(d, depth + 1);
    }
  };
  await walk(memberDir, 1);
  return found;
}

interface MemberConfigInput {
  scope: string;
  name: string;
  version: PgVersion;
  etcd?: EtcdServer;
  consul?: ConsulServer;
  restPort: number;
  pgPort: number;
  dataDir: string;
  socketDir: string;
  binDir: string;
  archiveDir: string;
  archiveMode: 'on' | 'always';
  pgpass: string;
  parameters: Record<string, string>;
}

// One member's Patroni YAML (as an object): a test cluster on loopback, with short DCS timings.
function memberConfig(c: MemberConfigInput): Record<string, unknown> {
  return {
    scope: c.scope,
    name: c.name,
    log: { level: 'INFO' },
    restapi: { listen: `127.0.0.1:${c.restPort}`, connect_address: `127.0.0.1:${c.restPort}` },
    // Consul: Patroni's session TTL is ttl/2 (Consul ends a session at twice its TTL), so ttl 20
    // below meets Consul's default session_ttl_min of 10 s.
    ...(c.consul
      ? {
          consul: {
            host: `127.0.0.1:${c.consul.httpPort}`,
            ...(c.consul.token ? { token: c.consul.token } : {}),
          },
        }
      : { etcd3: { hosts: [`127.0.0.1:${c.etcd!.clientPort}`] } }),
    bootstrap: {
      dcs: {
        ttl: 20,
        loop_wait: 2,
        retry_timeout: 5,
        maximum_lag_on_failover: 1048576,
        // Parameters Patroni takes from the DCS only (wal_level, max_connections…) go here.
        postgresql: {
          use_pg_rewind: false,
          use_slots: true,
          ...(Object.keys(c.parameters).length ? { parameters: c.parameters } : {}),
        },
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
        archive_mode: c.archiveMode,
        archive_command:
          c.archiveMode === 'always'
            ? sharedArchiveCommandFor(c.archiveDir)
            : archiveCommandFor(c.archiveDir),
        // Else the first streaming attempt waits 5 s: the leader makes the slot on its next loop.
        wal_retrieve_retry_interval: '500ms',
        password_encryption: 'scram-sha-256',
        fsync: 'off',
      },
      // A replica's clone asks for an immediate checkpoint: a spread one takes minutes while the
      // leader takes writes (a blue-green target starts its replicas under replicated load).
      basebackup: [{ checkpoint: 'fast' }],
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
async function findLeader(members: Pick<PatroniMember, 'name' | 'restUrl'>[]): Promise<string | undefined> {
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
      // A member the service script started or stopped is the caller's to watch, like a unit
      // that systemd (not this test) runs.
      if (!m.down && !isRunning(m.child) && !(await exists(m.serviceMark)))
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

async function logTails(members: Pick<PatroniMember, 'logFile'>[]): Promise<string> {
  const parts = await Promise.all(
    members.map(
      async (m) =>
        `--- ${m.logFile} ---\n${(await readFile(m.logFile, 'utf8').catch(() => '')).slice(-3000)}`,
    ),
  );
  return parts.join('\n');
}

// sh functions of the service script and the watchdog. alive PID: a live process; a zombie counts
// as gone (PID 1 here reaps orphans only every ~2 s). has_arg PID WORD: WORD is one of its argv
// words, i.e. a PID read from a possibly stale file still belongs to the process we mean.
const SH_FUNCTIONS = [
  `alive() { s=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1); [ -n "$s" ] && [ "$s" != Z ]; }`,
  `has_arg() { tr '\\0' '\\n' <"/proc/$1/cmdline" 2>/dev/null | grep -qxF -- "$2"; }`,
];

// What serviceScript bakes into a member's script.
interface ServiceScriptInput {
  name: string;
  scope: string;
  memberDir: string;
  configFile: string;
  logFile: string;
  pidFile: string;
  serviceMark: string;
  server: UserInfo;
}

// A member's `patroni-service` script, the stand-in for `systemctl stop|start|status patroni`.
// Contract (what a playbook may rely on):
// - stop: SIGTERM the member's Patroni, whether node or this script started it; wait until it has
//   exited (SIGKILL after 30 s); exit 0, also when it was not running. Paused, Patroni leaves
//   PostgreSQL running; not paused, it stops PostgreSQL (and a leader's fails over).
// - start: like a Type=simple unit: Patroni on configFile as it is now (a playbook may have
//   changed bin_dir/data_dir), in its own session, stdin /dev/null, output appended to logFile,
//   the same clean environment as spawnMember; writes pidFile and exits 0 once Patroni is exec'd,
//   without waiting for PostgreSQL, so an ssh channel closes at once. Already running: exit 0.
//   Exit 1 if Patroni dies before its exec.
// - status: `active (running), pid N` and exit 0, or `inactive` and exit 3 (systemctl's codes).
// It runs as the server user (from root it re-runs itself through runuser); start and stop of one
// member run one at a time (flock). Mixing it with stopMember/startMember at the same moment is
// not supported.
function serviceScript(c: ServiceScriptInput): string {
  const q = shQuote;
  const u = c.server;
  return [
    '#!/bin/sh',
    `# patroni-service for member ${c.name} of test cluster ${c.scope}: a stand-in for`,
    '# `systemctl start|stop|status patroni`, written by tools/testenv/patroni.ts (the contract is there).',
    'set -u',
    `PATH=${PATH}; export PATH`,
    `SELF=${q(join(c.memberDir, 'patroni-service'))}`,
    `DIR=${q(c.memberDir)}`,
    `CONFIG=${q(c.configFile)}`,
    `PIDFILE=${q(c.pidFile)}`,
    `LOG=${q(c.logFile)}`,
    `MARK=${q(c.serviceMark)}`,
    `if [ "$(id -u)" = 0 ]; then exec runuser -u ${u.name} -- "$SELF" "$@"; fi`,
    `if [ "$(id -u)" != ${u.uid} ]; then echo "patroni-service: run as ${u.name} or root, not $(id -un)" >&2; exit 4; fi`,
    ...SH_FUNCTIONS,
    'running_pid() {',
    '  p=$(head -n1 "$PIDFILE" 2>/dev/null)',
    "  case $p in ''|*[!0-9]*) return 1 ;; esac",
    '  alive "$p" && has_arg "$p" "$CONFIG" && echo "$p"',
    '}',
    // "$*": set -u spares it when there is no argument.
    'case "$*" in',
    'start | stop) ;;',
    'status)',
    '  if p=$(running_pid); then echo "active (running), pid $p"; exit 0; fi',
    '  echo inactive; exit 3 ;;',
    '*) echo "usage: $SELF start|stop|status" >&2; exit 2 ;;',
    'esac',
    '# One start/stop of this member at a time, as systemd queues the jobs of a unit.',
    'exec 9>>"$DIR/patroni-service.lock"',
    'flock 9',
    '# From now on the cluster leaves it to the caller to notice this Patroni exiting.',
    ': >>"$MARK"',
    'if [ "$1" = stop ]; then',
    '  p=$(running_pid) || { rm -f "$PIDFILE"; exit 0; }',
    '  kill -TERM "$p" 2>/dev/null',
    '  i=0',
    '  while alive "$p"; do',
    '    if [ $i -eq 300 ]; then kill -KILL "$p" 2>/dev/null; fi',
    `    if [ $i -ge 350 ]; then echo "patroni-service: Patroni $p of ${c.name} did not exit" >&2; exit 1; fi`,
    '    sleep 0.1; i=$((i + 1))',
    '  done',
    '  rm -f "$PIDFILE"',
    '  exit 0',
    'fi',
    'running_pid >/dev/null && exit 0',
    'cd "$DIR" || exit 1',
    '# Own session, and no fd of the caller left open (stdin, stdout, stderr, the lock): an ssh',
    '# channel closes at once and nothing of the session reaches Patroni. env -i as in spawnMember:',
    "# an inherited PGPASSWORD/PGUSER would override Patroni's pgpass and replicas never clone.",
    `setsid env -i PATH="$PATH" HOME=${q(u.home)} USER=${u.name} LOGNAME=${u.name} LANG=C.UTF-8 /usr/bin/patroni "$CONFIG" </dev/null >>"$LOG" 2>&1 9>&- &`,
    'p=$!',
    'echo "$p" >"$PIDFILE.tmp" && mv -f "$PIDFILE.tmp" "$PIDFILE"',
    "# Started once exec'd (Type=simple). setsid does not fork here (a background job of a shell",
    '# without job control leads no process group), so $! is Patroni itself.',
    'i=0',
    'until has_arg "$p" "$CONFIG"; do',
    '  if ! alive "$p" || [ $i -ge 100 ]; then',
    `    echo "patroni-service: Patroni of ${c.name} did not start; $LOG ends with:" >&2`,
    '    tail -n 20 "$LOG" >&2; rm -f "$PIDFILE"; exit 1',
    '  fi',
    '  sleep 0.05; i=$((i + 1))',
    'done',
    '',
  ].join('\n');
}

// Shell snippet for the watchdog: SIGTERM every member's Patroni named by its pidFile, whoever
// started it (then SIGKILL after 10 s), immediate shutdown of every PostgreSQL by a postmaster.pid
// one or two levels under a member's dir (Patroni leaves it running when paused or killed; a
// playbook may have made another data dir), then remove the files.
function watchdogScript(rootDir: string): string {
  return [
    `R=${shQuote(rootDir)}`,
    ...SH_FUNCTIONS,
    "P=''",
    'for d in "$R"/m*/; do p=$(head -n1 "$d"patroni.pid 2>/dev/null); case $p in \'\'|*[!0-9]*) continue ;; esac; alive "$p" && has_arg "$p" "$d"patroni.yml && P="$P $p"; done',
    '[ -n "$P" ] && kill -TERM $P 2>/dev/null',
    'i=0; while [ -n "$P" ] && [ $i -lt 100 ]; do a=0; for p in $P; do alive $p && a=1; done; [ $a = 0 ] && break; sleep 0.1; i=$((i+1)); done',
    '[ -n "$P" ] && kill -KILL $P 2>/dev/null',
    'for f in "$R"/m*/*/postmaster.pid "$R"/m*/*/*/postmaster.pid; do p=$(head -n1 "$f" 2>/dev/null); case $p in \'\'|*[!0-9]*) continue ;; esac; kill -QUIT -- -$p 2>/dev/null || kill -QUIT $p 2>/dev/null; done',
    'sleep 1; rm -rf "$R"',
  ].join('\n');
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
  // Node's children and Patroni processes the service script started alike; members stopped by
  // stopMember or the script are skipped, their PostgreSQL is checked below anyway.
  const pids = await Promise.all(members.map((m) => patroniPid(m)));
  const running = members.filter((_, i) => (pids[i] ?? 0) > 0);
  if (running.length > 0) {
    // Not paused: stopping the leader's Patroni first would fail over to a replica, so the
    // replicas go first. Paused (or unknown): order does not matter, PostgreSQL stays up and is
    // stopped below by its postmaster.pid.
    const leader = await findLeader(running).catch(() => undefined);
    const replicas = running.filter((m) => m.name !== leader);
    await keepingAlive(Promise.all(replicas.map((m) => stopPatroni(m))));
    const l = running.find((m) => m.name === leader);
    if (l) await keepingAlive(stopPatroni(l));
  }
  const dataDirs = (await Promise.all(members.map((m) => dataDirsWithPostmaster(m.memberDir)))).flat();
  await Promise.all(dataDirs.map(stopPostgres));
  if (process.env.PGRB_KEEP_TEST_DIRS !== '1') await rm(rootDir, { recursive: true, force: true });
}

// SIGTERM the member's Patroni (it shuts PostgreSQL down unless paused); SIGKILL after 30 s. Node
// reaps its own child here; one the service script started is PID 1's to reap (isAlive ignores
// zombies). Removes its pidFile.
async function stopPatroni(m: MemberState): Promise<void> {
  const { child } = m;
  if (child?.pid && isRunning(child)) {
    const pid = child.pid;
    const reaped = new Promise<void>((res) => child.once('exit', () => res()));
    signal(pid, 'SIGTERM');
    const t = setTimeout(() => signal(pid, 'SIGKILL'), 30_000);
    await reaped;
    clearTimeout(t);
  } else {
    const pid = await patroniPid(m);
    if (pid > 0) {
      signal(pid, 'SIGTERM');
      if (!(await waitForExit(pid, 30_000))) {
        signal(pid, 'SIGKILL');
        if (!(await waitForExit(pid, 5000))) throw new Error(`patroni ${m.name} (pid ${pid}) did not exit`);
      }
    }
  }
  await rm(m.pidFile, { force: true });
}

// A PostgreSQL still running after its Patroni stopped (paused cluster) or started beside it (a
// playbook's new data dir): fast shutdown by its postmaster.pid, immediate (its whole session)
// if that does not work.
async function stopPostgres(dataDir: string): Promise<void> {
  const pid = await readPostmasterPid(dataDir);
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
    if (!(await waitForExit(pid, 5000))) throw new Error(`postmaster ${pid} (${dataDir}) did not exit`);
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

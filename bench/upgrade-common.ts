// What the upgrade benchmarks share: clusters filled by pgbench, a PgBouncer in front of each,
// the write probe and pgbench clients observing an upgrade, and the in-place upgrade by
// pg-major-upgrade.yml with its window read from the run's events.
import { chmod, chown, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import {
  lookupUser,
  type PatroniCluster,
  type PeerSsh,
  type PgBouncerServer,
  type PgbenchResult,
  pgBinDir,
  SERVER_USER,
  type SshServer,
  startPgBouncer,
  startPgbench,
} from '../tools/testenv/index.js';
import {
  atCleanUp,
  CLI,
  type CommonOptions,
  commonOptionSpecs,
  errText,
  intOption,
  jsonEvents,
  ROOT,
  runFailure,
  timeChild,
} from './common.js';
import { type ProbeResult, startWriteProbe } from './write-probe.js';

export const IN_PLACE_PLAYBOOK = join(ROOT, 'playbooks', 'pg-major-upgrade.yml');
export const OLD = 13;
export const NEW = 15;
export const NEW_NAME = 'data15';

// PgBouncer's admin console login in the benchmarks (every cluster's pooler).
export const BOUNCER_ADMIN = 'pgb_admin';
export const BOUNCER_SECRET = 'bench-pgbouncer-admin';

/** The options both upgrade benchmarks take. */
export interface UpgradeOptions extends CommonOptions {
  scales: number[];
  clients: number;
}

/** --scales, --clients (at least `minClients`), --repeat and the common options. */
export function parseUpgradeOptions(argv: string[], minClients: number): UpgradeOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      scales: { type: 'string', default: '50' },
      clients: { type: 'string', default: '4' },
      ...commonOptionSpecs(3600),
      repeat: { type: 'string', default: '1' },
    },
    strict: true,
  });
  return {
    scales: values.scales.split(',').map((s) => intOption('scales', s.trim(), 1, 10_000)),
    clients: intOption('clients', values.clients, minClients, 64),
    repeat: intOption('repeat', values.repeat, 1, 20),
    warmup: 0,
    timeoutS: intOption('timeout', values.timeout, 60, 86_400),
    keep: values.keep,
    help: values.help,
  };
}

/** The writes, and pgbench's clients through PgBouncer when there are any. */
export type Observed = ProbeResult & { pooled?: PgbenchResult };

/** An in-place upgrade by pgrunbook, as observed. */
export type InPlaceRun = Observed & {
  wallMs: number;
  steps: { title: string; host: string; ms: number }[];
  windowMs: number;
  reported?: unknown;
};

/** pgbench -i at `scale` (server-side generation), and the probe's table. */
export async function fill(c: PatroniCluster, scale: number, cwd: string): Promise<void> {
  const leader = await c.leader();
  const cfg = c.clientConfig(leader);
  const r = await timeChild(
    join(pgBinDir(OLD), 'pgbench'),
    [
      '-i',
      '-s',
      String(scale),
      '-I',
      'dtGvp',
      '-q',
      '-h',
      String(cfg.host),
      '-p',
      String(cfg.port),
      '-U',
      'postgres',
      'postgres',
    ],
    { cwd, env: { ...process.env, PGPASSWORD: String(cfg.password) } },
  );
  if (r.code !== 0) throw runFailure('pgbench -i', `exit ${r.code ?? r.signal}`, r);
  await sql(cfg, 'create table probe (id bigserial primary key, at timestamptz not null default now())');
  // The replica has everything before the clock starts.
  const replica = c.members.find((m) => m.name !== leader)!;
  const [{ lsn }] = (await sql(cfg, 'select pg_current_wal_lsn()::text as lsn')) as [{ lsn: string }];
  const deadline = Date.now() + 120_000;
  for (;;) {
    // A standby may cancel the query (a conflict with recovery while it replays the fill): ask again.
    const r2 = (
      (await sql(
        c.clientConfig(replica.name),
        `select coalesce(pg_last_wal_replay_lsn() >= '${lsn}'::pg_lsn, false) as ok`,
      ).catch(() => [{ ok: false }])) as [{ ok: boolean }]
    )[0];
    if (r2.ok) break;
    if (Date.now() > deadline) throw new Error(`${replica.name} did not replay ${lsn} within 120 s`);
    await new Promise((res) => setTimeout(res, 200));
  }
}

export async function sql(cfg: pg.ClientConfig, text: string): Promise<Record<string, unknown>[]> {
  const c = new pg.Client(cfg);
  await c.connect();
  try {
    return (await c.query(text)).rows;
  } finally {
    await c.end();
  }
}

/** Every member runs the new major and the replica streams from the leader. */
export async function checkUpgraded(c: PatroniCluster, what: string): Promise<void> {
  const deadline = Date.now() + 120_000;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const leader = await c.leader();
      const versions = await Promise.all(
        c.members.map(async (m) =>
          Number((await sql(c.clientConfig(m.name), 'show server_version_num'))[0]!.server_version_num),
        ),
      );
      const [s] = (await sql(
        c.clientConfig(leader),
        "select count(*)::int as n from pg_stat_replication where state = 'streaming'",
      )) as [{ n: number }];
      if (versions.every((v) => Math.floor(v / 10000) === NEW) && s.n === c.members.length - 1) return;
      last = `versions ${versions.join(', ')}, ${s.n} streaming`;
    } catch (err) {
      last = errText(err);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`${what}: the cluster did not end on ${NEW} with its replica streaming (${last})`);
}

/** A PgBouncer in front of the cluster's leader, as applications reach it. */
export async function poolerFor(c: PatroniCluster): Promise<PgBouncerServer> {
  const lc = c.clientConfig(await c.leader());
  const b = await startPgBouncer({
    databases: { postgres: { host: '127.0.0.1', port: Number(lc.port) } },
    users: { postgres: c.superuser.password, [BOUNCER_ADMIN]: BOUNCER_SECRET },
    adminUsers: [BOUNCER_ADMIN],
  });
  atCleanUp(() => b.stop());
  return b;
}

/** The write probe, and pgbench through the pooler: started before an upgrade, stopped after it. */
export function observe(c: PatroniCluster, pooler: PgBouncerServer | undefined, clients: number) {
  const probe = startWriteProbe(
    c.members.map((m) => c.clientConfig(m.name)),
    'probe',
  );
  const load =
    pooler && clients > 0
      ? startPgbench(
          { host: pooler.host, port: pooler.port, user: 'postgres', password: c.superuser.password },
          clients,
        )
      : undefined;
  return {
    stop: async (): Promise<Observed> => {
      const [writes, pooled] = await Promise.all([probe.stop(), load?.stop()]);
      return { ...writes, pooled };
    },
  };
}

export async function inPlaceInventory(
  c: PatroniCluster,
  sshd: SshServer,
  peer: PeerSsh,
  dir: string,
  pooler: PgBouncerServer | undefined,
): Promise<string> {
  const { uid, gid } = await lookupUser(SERVER_USER);
  const backups = join(dir, 'backups');
  await mkdir(backups);
  await chmod(backups, 0o755);
  await chown(backups, uid, gid);
  const hosts = c.members
    .map(
      (m) => `  ${m.name}:
    ssh: { host: 127.0.0.1, port: ${sshd.port}, user: ${SERVER_USER}, identity_file: ${sshd.identityFile}, known_hosts: ${sshd.knownHostsFile} }
    pg: { host: ${m.socketDir}, port: ${m.pgPort}, user: postgres, sslmode: disable }
    patroni: { url: "${m.restUrl}", timeout: 2, config: ${m.configFile} }
    vars:
      pgdata: ${m.dataDir}
      pgdata_new: ${m.memberDir}/${NEW_NAME}
      pg_socket_dir: ${m.socketDir}
      patroni_stop_command: ${m.serviceScript} stop
      patroni_start_command: ${m.serviceScript} start`,
    )
    .join('\n');
  // The pooler's host: reached over the same sshd (its pause guard signals it as the server user).
  const bouncer = pooler
    ? `
  bouncer:
    ssh: { host: 127.0.0.1, port: ${sshd.port}, user: ${SERVER_USER}, identity_file: ${sshd.identityFile}, known_hosts: ${sshd.knownHostsFile} }
    pgbouncer: { host: 127.0.0.1, port: ${pooler.port}, user: ${BOUNCER_ADMIN}, password: { env: PGB_ADMIN }, sslmode: disable }`
    : '';
  const file = join(dir, 'inventory.yml');
  await writeFile(
    file,
    `vars:
  pg_bin_old: ${pgBinDir(OLD)}
  pg_bin_new: ${pgBinDir(NEW)}
  pg_os_user: ${SERVER_USER}
  backup_root: ${backups}
  archive_dir: ${c.archiveDir}
  rsync_ssh: ${JSON.stringify(peer.sshCommand)}
  patroni_ttl: 20
  patroni_loop_wait: 2
  upgrade_jobs: 2
hosts:
${hosts}${bouncer}
groups:
  patroni: { hosts: [${c.members.map((m) => m.name).join(', ')}] }
`,
  );
  return file;
}

export type Ev = Record<string, unknown> & {
  type?: string;
  title?: string;
  host?: string;
  names?: string[];
  durationMs?: number;
  ts?: string;
};

export async function inPlaceByPgrunbook(
  c: PatroniCluster,
  sshd: SshServer,
  peer: PeerSsh,
  dir: string,
  pooler: PgBouncerServer | undefined,
  clients: number,
): Promise<InPlaceRun> {
  const inv = await inPlaceInventory(c, sshd, peer, dir, pooler);
  const probe = observe(c, pooler, clients);
  const r = await timeChild(
    process.execPath,
    [CLI, 'run', IN_PLACE_PLAYBOOK, '-i', inv, '--yes', '--output', 'json'],
    {
      cwd: dir,
      cpu: false,
      env: { ...process.env, PGB_ADMIN: BOUNCER_SECRET },
    },
  );
  const result = await probe.stop();
  if (r.code !== 0) throw runFailure('pgrunbook run', `exit ${r.code ?? r.signal}`, r);
  const events = jsonEvents<Ev>(r.stdout);
  // pgrunbook's window: from the start of the leader's stop to the end of the writable check.
  const from = events.findIndex((e) => e.type === 'step_started' && /writes stop here/.test(e.title ?? ''));
  const to = events.findIndex((e) => e.type === 'step_finished' && (e.names ?? []).includes('writable'));
  if (from < 0 || to < 0)
    throw runFailure('pgrunbook run', 'no leader stop or writable step in its events', r);
  const steps = events
    .slice(from, to + 1)
    .filter((e) => e.type === 'step_finished')
    .map((e) => ({ title: String(e.title), host: String(e.host), ms: Number(e.durationMs) }));
  const t = (e: Ev | undefined) => (e?.ts ? Date.parse(e.ts) : Number.NaN);
  const reported = events.find(
    (e) => e.type === 'step_finished' && (e.names ?? []).includes('downtime'),
  )?.outputs;
  await checkUpgraded(c, 'pgrunbook');
  return { ...result, wallMs: r.ms, steps, windowMs: t(events[to]) - t(events[from]), reported };
}

// What the pg-major-upgrade tests share (on etcd in upgrade.test.ts, on Consul in
// consul-upgrade.test.ts): the seeded data and how it is compared, the inventory the playbook runs
// with over the real sshd, and the check of every member after a run.
import { mkdtempSync } from 'node:fs';
import { chmod, chown } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type pg from 'pg';
import { expect } from 'vitest';
import { sql } from '../../tools/testenv/checks.js';
import {
  httpRequest,
  lookupUser,
  type PatroniCluster,
  type PgBouncerServer,
  peerSsh,
  pgBinDir,
  SERVER_USER,
  type SshServer,
} from '../../tools/testenv/index.js';
import { workdir } from './cli.js';

/** Several tables, an index, a sequence; what each holds, as the test compares it. */
export async function seed(config: pg.ClientConfig): Promise<void> {
  await sql(
    config,
    `create sequence order_no start 1000;
     create table customers (id serial primary key, name text not null, created date not null);
     create table orders (id bigint primary key default nextval('order_no'), customer int references customers, total numeric(12,2));
     create index orders_customer on orders (customer);
     insert into customers (name, created) select 'c' || g, date '2020-01-01' + g from generate_series(1, 500) g;
     insert into orders (customer, total) select 1 + g % 500, g * 1.25 from generate_series(1, 3000) g;
     create table events (id bigserial primary key, at timestamptz not null, payload jsonb, note text);
     insert into events (at, payload, note)
       select timestamptz '2024-01-01' + g * interval '1 minute', jsonb_build_object('n', g, 'tags', array['a', 'b']), repeat('x', g % 3000)
       from generate_series(1, 2000) g;`,
  );
}

/** Rows and checksum of each table, the sequence and the index, as the tests compare them. */
export async function contents(
  config: pg.ClientConfig,
  tables = ['customers', 'orders', 'events'],
): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const t of tables) {
    const [r] = await sql<{ n: string; sum: string }>(
      config,
      `select count(*)::text as n, md5(string_agg(t::text, ',' order by t::text)) as sum from ${t} t`,
    );
    out[t] = `${r!.n}:${r!.sum}`;
  }
  const [s] = await sql<{ v: string }>(config, 'select last_value::text as v from order_no');
  out.order_no = s!.v;
  const [i] = await sql<{ n: string }>(
    config,
    "select count(*)::text as n from pg_indexes where indexname = 'orders_customer'",
  );
  out.index = i!.n;
  return out;
}

/** Extra inventory settings of upgradeInventory. */
export interface UpgradeInventoryOptions {
  /** a PgBouncer in front of the cluster (host `bouncer`) */
  bouncer?: PgBouncerServer;
  /** the cluster's DCS for the run lock, as patroni.dcs spells it, e.g. `{ consul: "URL", scope: S }` */
  dcs?: string;
}

/**
 * A backup root owned by the server user and a working directory with `inv.yml` for the upgrade
 * playbooks: every member over the sshd as the server user, its Patroni service script, the
 * DCS timings of the test clusters.
 */
export async function upgradeInventory(
  sshd: SshServer,
  c: PatroniCluster,
  opts: UpgradeInventoryOptions = {},
) {
  const { bouncer } = opts;
  const peer = await peerSsh(sshd);
  const { uid, gid } = await lookupUser(SERVER_USER);
  const root = mkdtempSync(join(tmpdir(), 'pgrb-upgrade-'));
  await chmod(root, 0o755);
  await chown(root, uid, gid);
  const hosts = c.members
    .map(
      (m) => `  ${m.name}:
    ssh: { host: 127.0.0.1, port: ${sshd.port}, user: ${SERVER_USER}, identity_file: ${sshd.identityFile}, known_hosts: ${sshd.knownHostsFile} }
    pg: { host: ${m.socketDir}, port: ${m.pgPort}, user: postgres, sslmode: disable }
    patroni: { url: "${m.restUrl}", timeout: 2, config: ${m.configFile}${opts.dcs ? `, dcs: ${opts.dcs}` : ''} }
    vars:
      pgdata: ${m.dataDir}
      pgdata_new: ${m.memberDir}/data15
      pg_socket_dir: ${m.socketDir}
      patroni_stop_command: ${m.serviceScript} stop
      patroni_start_command: ${m.serviceScript} start`,
    )
    .join('\n');
  // A PgBouncer in front of the cluster, on this machine, reached over the same sshd (its guard
  // signals it as the server user, which runs it).
  const pooler = bouncer
    ? `
  bouncer:
    ssh: { host: 127.0.0.1, port: ${sshd.port}, user: ${SERVER_USER}, identity_file: ${sshd.identityFile}, known_hosts: ${sshd.knownHostsFile} }
    pgbouncer: { host: 127.0.0.1, port: ${bouncer.port}, user: pgb_admin, password: { env: PGB_ADMIN }, sslmode: disable }`
    : '';
  const inv = `vars:
  pg_bin_old: ${pgBinDir(13)}
  pg_bin_new: ${pgBinDir(15)}
  pg_os_user: ${SERVER_USER}
  backup_root: ${root}
  archive_dir: ${c.archiveDir}
  rsync_ssh: ${JSON.stringify(peer.sshCommand)}
  patroni_ttl: 20
  patroni_loop_wait: 2
hosts:
${hosts}${pooler}
groups:
  patroni: { hosts: [${c.members.map((m) => m.name).join(', ')}] }
`;
  return { root, cwd: workdir({ 'inv.yml': inv }) };
}

/** GET /patroni of a member: its own view (state, role, pause). */
export async function patroni(url: string): Promise<Record<string, unknown>> {
  return JSON.parse((await httpRequest('GET', `${url}/patroni`)).body);
}

/**
 * A member's own view once Patroni has caught up: after an unwind restarts it, it reports
 * `starting` until its first loop has adopted the running PostgreSQL (loop_wait).
 */
export async function settled(url: string): Promise<Record<string, unknown>> {
  const until = Date.now() + 15_000;
  for (;;) {
    const st = await patroni(url).catch(() => ({}) as Record<string, unknown>);
    if (st.state === 'running' || Date.now() > until) return st;
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * Every member runs `major`, the leader as primary and the others as standbys, and Patroni
 * reports each running and not paused.
 */
export async function expectMembers(c: PatroniCluster, major: string, leader: string): Promise<void> {
  for (const m of c.members) {
    const [v] = await sql<{ v: string; standby: boolean }>(
      c.clientConfig(m.name),
      "select current_setting('server_version_num') as v, pg_is_in_recovery() as standby",
    );
    expect(v!.v.slice(0, 2), m.name).toBe(major);
    expect(v!.standby, m.name).toBe(m.name !== leader);
    const st = await settled(m.restUrl);
    expect(st.state, m.name).toBe('running');
    expect(st.pause, m.name).toBeFalsy();
  }
}

/** The lines of a JSON-output run that say what failed, for an assertion's message. */
export const failures = (stdout: string) =>
  stdout
    .split('\n')
    .filter((l) => l.includes('"failed"') || l.includes('run_finished'))
    .join('\n');

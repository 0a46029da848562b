// playbooks/pg-major-upgrade.yml end to end: a real two-member Patroni cluster on PostgreSQL 13
// (etcd, Debian's binaries), driven over a real sshd as the server user, upgraded to 15 with
// pg_upgrade --link and the replica rsynced from the leader; and a failure before the point of no
// return that leaves the cluster on 13, running and resumed.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { chown, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { sql, waitUntil } from '../../tools/testenv/checks.js';
import {
  type EtcdServer,
  httpRequest,
  lookupUser,
  type PatroniCluster,
  type PgBouncerServer,
  pgBinDir,
  SERVER_USER,
  type SshServer,
  startEtcd,
  startPatroniCluster,
  startPgBouncer,
  startPgbench,
  startSshd,
} from '../../tools/testenv/index.js';
import { CLI, events, journalOf, outputsOf, runCli } from './cli.js';
import { contents, expectMembers, failures, seed, upgradeInventory } from './upgrade-setup.js';

const PLAYBOOK = fileURLToPath(new URL('../../playbooks/pg-major-upgrade.yml', import.meta.url));
const ROLLBACK = fileURLToPath(new URL('../../playbooks/pg-major-upgrade-rollback.yml', import.meta.url));

let etcd: EtcdServer;
let sshd: SshServer;
let cluster: PatroniCluster | undefined;
let bouncer: PgBouncerServer | undefined;
const BOUNCER_ADMIN = 'pgb-admin-secret';

/** An instant as pgbench_history.mtime (timestamp without time zone, the session's zone) holds it. */
const at = (iso: string) => `('${iso}'::timestamptz at time zone current_setting('TimeZone'))`;

/** pgbench -i (scale 1) on the leader, directly. */
async function runPgbenchInit(cfg: pg.ClientConfig): Promise<{ code: number | null; stderr: string }> {
  const { spawn } = await import('node:child_process');
  const child = spawn(
    join(pgBinDir(15), 'pgbench'),
    ['-i', '-q', '-h', String(cfg.host), '-p', String(cfg.port), '-U', String(cfg.user), 'postgres'],
    { env: { ...process.env, PGPASSWORD: String(cfg.password) }, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (c: string) => {
    stderr += c;
  });
  const code = await new Promise<number | null>((res) => child.on('close', res));
  return { code, stderr };
}
// What the upgrade test leaves for the rollback test: the upgraded cluster and where it ran.
let upgraded:
  | {
      root: string;
      cwd: string;
      runId: string;
      leader: string;
      before: Record<string, string>;
      lastLsn: string;
      /** pgbench_history rows committed on 13 (before PgBouncer's pause), and when 15 took writes */
      on13: number;
      resumedAt: string;
      locations: Record<string, string>;
    }
  | undefined;

beforeAll(async () => {
  [etcd, sshd] = await Promise.all([startEtcd(), startSshd()]);
}, 60_000);
async function fresh(): Promise<PatroniCluster> {
  await cluster?.stop();
  upgraded = undefined;
  cluster = await startPatroniCluster({ etcd, members: 2, version: 13 });
  return cluster;
}
afterAll(async () => {
  await bouncer?.stop();
  await cluster?.stop();
  await sshd?.stop();
  await etcd?.stop();
});

/**
 * A tablespace on the leader holding a table, the replica cloned afresh with its own location of
 * it (Patroni's pg_basebackup --tablespace-mapping). Members on one host cannot share a location
 * as separate machines do: a replica replaying CREATE TABLESPACE empties the directory it names.
 * Returns each member's location.
 */
async function addTablespace(c: PatroniCluster, leader: string): Promise<Record<string, string>> {
  const { uid, gid } = await lookupUser(SERVER_USER);
  const l = c.members.find((m) => m.name === leader)!;
  const r = c.members.find((m) => m.name !== leader)!;
  const locations = { [l.name]: join(l.memberDir, 'ts'), [r.name]: join(r.memberDir, 'ts') };
  for (const d of Object.values(locations)) {
    await mkdir(d, { mode: 0o700 });
    await chown(d, uid, gid);
  }
  await c.stopMember(r.name);
  await rm(r.dataDir, { recursive: true, force: true });
  const conf = parse(readFileSync(r.configFile, 'utf8'));
  conf.postgresql.basebackup = [{ 'tablespace-mapping': `${locations[l.name]}=${locations[r.name]}` }];
  writeFileSync(r.configFile, stringify(conf));
  await sql(c.clientConfig(leader), `create tablespace spaced location '${locations[l.name]}'`);
  await sql(
    c.clientConfig(leader),
    `create table spaced_rows (id int primary key, v text, at timestamptz) tablespace spaced;
     insert into spaced_rows select g, md5(g::text), timestamptz '2024-01-01' + g * interval '1 second'
       from generate_series(1, 4000) g;`,
  );
  await c.startMember(r.name);
  return locations;
}

/** Where `spaced_rows` lives on a member: its tablespace's location as that server sees it. */
async function spacedAt(config: pg.ClientConfig): Promise<string> {
  const [r] = await sql<{ loc: string; path: string }>(
    config,
    `select pg_tablespace_location(t.oid) as loc, pg_relation_filepath('spaced_rows') as path
       from pg_class c join pg_tablespace t on t.oid = c.reltablespace where c.relname = 'spaced_rows'`,
  );
  expect(r?.path).toMatch(/^pg_tblspc\//);
  return String(r?.loc);
}

/** The tables compared where the cluster has the tablespace. */
const TABLES = ['customers', 'orders', 'events', 'spaced_rows'];

/** The version directories (and what was moved aside) in a tablespace location. */
const versionDirs = (dir: string) => readdirSync(dir).sort();

/** A Patroni switchover `from` → `to`, returning once `to` leads and `from` streams from it. */
async function switchover(c: PatroniCluster, from: string, to: string): Promise<void> {
  const url = c.members.find((m) => m.name === from)!.restUrl;
  const r = await httpRequest('POST', `${url}/switchover`, { leader: from, candidate: to }, 60_000);
  expect(r.status, r.body).toBe(200);
  await waitUntil(
    `${to} leading with ${from} streaming from it`,
    async () => {
      const [row] = await sql<{ primary: boolean; n: number }>(
        c.clientConfig(to),
        "select not pg_is_in_recovery() as primary, (select count(*)::int from pg_stat_replication where state = 'streaming') as n",
      );
      return row!.primary && row!.n === 1;
    },
    60_000,
  );
}

/**
 * Runs the CLI on a pseudo-terminal (script(1)), as an operator would, answering each approval
 * question with what `answer` returns for it; resolves with the questions and the exit code.
 */
function onTerminal(
  cwd: string,
  args: string[],
  answer: (question: string) => string,
): Promise<{ answered: string[]; code: number | null }> {
  const line = ['exec', process.execPath, CLI, ...args].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(' ');
  const child = spawn('script', ['-qfec', line, '/dev/null'], {
    cwd,
    env: { ...process.env, SHELL: '/bin/sh' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let screen = '';
  let seen = 0;
  const answered: string[] = [];
  child.stdout.on('data', (chunk: Buffer) => {
    screen += chunk.toString();
    // A question ends with "[y/N] "; each is answered once, with what it asked.
    const parts = screen.split('[y/N]');
    while (parts.length - 1 > seen) {
      const question = parts[seen]!.slice(-2000);
      seen++;
      answered.push(question);
      child.stdin.write(`${answer(question)}\r`);
    }
  });
  return new Promise((res) => child.on('close', (code) => res({ answered, code })));
}

describe('pg-major-upgrade.yml: 13 → 15 under Patroni over ssh', () => {
  it('upgrades both members with every row (a tablespace too), the replica streaming, Patroni resumed, the downtime reported and WAL in its own archive', async () => {
    const c = await fresh();
    const leader = await c.leader();
    const replica = c.members.find((m) => m.name !== leader)!.name;
    const locations = await addTablespace(c, leader);
    await seed(c.clientConfig(leader));
    const before = await contents(c.clientConfig(leader), TABLES);
    expect(before.spaced_rows).toMatch(/^4000:/);
    const [rows] = await sql<{ n: string }>(
      c.clientConfig(replica),
      'select count(*)::text as n from spaced_rows',
    );
    expect(rows!.n).toBe('4000');
    for (const m of c.members) expect(await spacedAt(c.clientConfig(m.name))).toBe(locations[m.name]);
    // Settings pg_upgrade does not carry: one in the DCS (Patroni's dynamic configuration, which
    // the DCS wipe would lose) and one by ALTER SYSTEM (postgresql.auto.conf).
    const lm = c.members.find((m) => m.name === leader)!;
    const patched = await httpRequest('PATCH', `${lm.restUrl}/config`, {
      postgresql: { parameters: { work_mem: '7MB' } },
    });
    expect(patched.status).toBe(200);
    await sql(c.clientConfig(leader), 'alter system set log_min_duration_statement = 1234');
    await sql(c.clientConfig(leader), 'select pg_reload_conf()');
    // An extension at 13's default version: the upgrade brings it to 15's.
    await sql(c.clientConfig(leader), 'create extension pg_trgm');
    // Clients behind PgBouncer the whole time: pgbench (TPC-B-like) through it.
    const lc = c.clientConfig(leader);
    const init = await runPgbenchInit(lc);
    expect(init.code, init.stderr).toBe(0);
    bouncer = await startPgBouncer({
      databases: { postgres: { host: '127.0.0.1', port: Number(lc.port) } },
      users: { postgres: c.superuser.password, pgb_admin: BOUNCER_ADMIN },
      adminUsers: ['pgb_admin'],
    });
    const { root, cwd } = await upgradeInventory(sshd, c, { bouncer });
    const load = startPgbench({
      host: bouncer.host,
      port: bouncer.port,
      user: 'postgres',
      password: c.superuser.password,
    });
    await new Promise((res) => setTimeout(res, 2000));

    const r = await runCli(
      ['run', PLAYBOOK, '-i', 'inv.yml', '--yes', '--output', 'json', '--report', 'report.md'],
      { cwd, env: { PGB_ADMIN: BOUNCER_ADMIN } },
    );
    await new Promise((res) => setTimeout(res, 2000));
    const bench = await load.stop();
    expect(r.code, failures(r.stdout) + r.stderr).toBe(0);
    const ev = events(r.stdout);
    // Through PgBouncer, no client saw an error: held during the window, answered after it.
    const window = Number(outputsOf<{ downtime_seconds: number }>(ev, 'downtime_measured')?.downtime_seconds);
    console.log(
      `pgbench through PgBouncer during the upgrade: ${bench.transactions} transactions, ${bench.failures.length} failed, longest latency ${(bench.maxLatencyMs / 1000).toFixed(2)} s; the upgrade's window ${window.toFixed(2)} s`,
    );
    expect(bench.failures).toEqual([]);
    expect(bench.clientsAtEnd).toBe(4);
    // The longest wait is the window itself (the pause spans it), not a timeout or a retry.
    expect(bench.maxLatencyMs / 1000).toBeGreaterThan(window * 0.5);
    expect(bench.maxLatencyMs / 1000).toBeLessThan(window + 15);
    const resumed = ev.find(
      (e) => e.type === 'step_finished' && String(e.title).startsWith('Resume PgBouncer'),
    );
    expect(resumed?.status).toBe('ok');
    // pg_trgm at its new default version, as update_extensions.sql would have it.
    const [trgm] = await sql<{ v: string; d: string }>(
      c.clientConfig(leader),
      "select extversion as v, (select default_version from pg_available_extensions where name = 'pg_trgm') as d from pg_extension where extname = 'pg_trgm'",
    );
    expect(trgm!.v).toBe(trgm!.d);
    expect(trgm!.v).not.toBe('1.5');
    // Which pgbench writes a rollback keeps: those committed on 13 (before the pause; PAUSE waits
    // for running transactions), not those on 15 (after the resume).
    const pausedAt = String(outputsOf<{ paused_at: string }>(ev, 'bouncer_pause').paused_at);
    const resumedAt = String(resumed!.ts ?? '');
    const [split] = await sql<{ on13: string; on15: string; between: string }>(
      c.clientConfig(leader),
      `select count(*) filter (where mtime < ${at(pausedAt)})::text as on13,
              count(*) filter (where mtime >= ${at(pausedAt)} and mtime < ${at(resumedAt)})::text as between,
              count(*) filter (where mtime >= ${at(resumedAt)})::text as on15 from pgbench_history`,
    );
    expect(Number(split!.on13)).toBeGreaterThan(0);
    expect(Number(split!.on15)).toBeGreaterThan(0);
    expect(split!.between).toBe('0');
    // The run report: the point of no return, the downtime and each node's version.
    const report = readFileSync(join(cwd, 'report.md'), 'utf8');
    expect(report).toContain('Point of no return crossed at "Sync the replicas from the leader');
    expect(report).toMatch(/downtime \(writes stopped → new leader writable\): [0-9.]+ s/);
    for (const m of c.members) expect(report).toContain(`${m.name}: PostgreSQL 15.`);

    // Both members on 15, the same leader, the replica streaming from it.
    await expectMembers(c, '15', leader);
    const streaming = await sql<{ application_name: string }>(
      c.clientConfig(leader),
      "select application_name from pg_stat_replication where state = 'streaming'",
    );
    expect(streaming.map((s) => s.application_name)).toEqual([replica]);
    // The DCS-held parameter and the ALTER SYSTEM one survived the upgrade and the DCS wipe.
    const config = JSON.parse((await httpRequest('GET', `${lm.restUrl}/config`)).body);
    expect(config.postgresql?.parameters?.work_mem).toBe('7MB');
    expect(config.pause).toBeFalsy();
    const [settings] = await sql<{ w: string; l: string }>(
      c.clientConfig(leader),
      "select current_setting('work_mem') as w, current_setting('log_min_duration_statement') as l",
    );
    expect(settings).toEqual({ w: '7MB', l: '1234ms' });
    // Every table's rows and checksum (the tablespace's too), the sequence and the index
    // unchanged, on both; each member reads the tablespace from its own location, where
    // pg_upgrade --link (leader) and the rsync (replica) put PG_15_* beside PG_13_*.
    expect(await contents(c.clientConfig(leader), TABLES)).toEqual(before);
    expect(await contents(c.clientConfig(replica), TABLES)).toEqual(before);
    for (const m of c.members) {
      expect(await spacedAt(c.clientConfig(m.name))).toBe(locations[m.name]);
      expect(versionDirs(locations[m.name]!), m.name).toEqual([
        expect.stringMatching(/^PG_13_\d+$/),
        expect.stringMatching(/^PG_15_\d+$/),
      ]);
    }
    // The snapshot backup (the rollback's) holds the tablespace and its map.
    const runId0 = String(ev.find((e) => e.type === 'run_started')?.runId);
    const manifest = JSON.parse(
      readFileSync(join(root, `upgrade-${leader}-${runId0}`, 'manifest.json'), 'utf8'),
    );
    expect(manifest.snapshots[0].tablespaces).toEqual([
      expect.objectContaining({ source: locations[leader] }),
    ]);
    expect(manifest.files.tablespace_map).toBeDefined();
    // A WAL archive per major: 15 archives into ARCHIVE/15, and nothing of it reaches the old
    // archive (which the rollback recovers from).
    const newArchive = join(c.archiveDir, '15');
    const oldArchive = () =>
      readdirSync(c.archiveDir)
        .filter((f) => f !== '15')
        .sort();
    const oldBefore = oldArchive();
    await sql(c.clientConfig(leader), "insert into spaced_rows values (0, 'archived', now())");
    const [sw] = await sql<{ wal: string }>(
      c.clientConfig(leader),
      'select pg_walfile_name(pg_switch_wal()) as wal',
    );
    const until = Date.now() + 30_000;
    while (!existsSync(join(newArchive, sw!.wal)) && Date.now() < until)
      await new Promise((res) => setTimeout(res, 200));
    expect(readdirSync(newArchive)).toContain(sw!.wal);
    expect(oldArchive()).toEqual(oldBefore);
    expect(oldBefore).not.toContain(sw!.wal);
    await sql(c.clientConfig(leader), 'delete from spaced_rows where id = 0');
    // Timelines of the new cluster (a switchover there and back): their history files are in its
    // archive only. In a shared archive, the rollback's promotion would have to skip them.
    await switchover(c, leader, replica);
    await switchover(c, replica, leader);
    await waitUntil(
      '00000003.history archived',
      async () => existsSync(join(newArchive, '00000003.history')),
      30_000,
    );
    expect(readdirSync(newArchive)).toEqual(expect.arrayContaining(['00000002.history', '00000003.history']));
    expect(oldArchive().filter((f) => f.endsWith('.history'))).toEqual([]);
    // Patroni (resumed, checked above) runs the leader on the new data directory.
    expect(readFileSync(c.members.find((m) => m.name === leader)!.configFile, 'utf8')).toContain('data15');
    // The smoke table went across and was dropped.
    expect(
      await sql(
        c.clientConfig(leader),
        "select 1 from pg_tables where tablename = 'pgrunbook_upgrade_smoke'",
      ),
    ).toEqual([]);
    // The point of no return was crossed once, after approval; the downtime measured and shown.
    expect(ev.filter((e) => e.type === 'point_of_no_return')).toHaveLength(1);
    const downtime = Number(
      outputsOf<{ downtime_seconds: number }>(ev, 'downtime_measured')?.downtime_seconds,
    );
    expect(downtime).toBeGreaterThan(0);
    expect(downtime).toBeLessThan(120);
    const said = ev
      .filter((e) => e.type === 'step_output')
      .map((e) => String(e.text))
      .join('\n');
    expect(said).toMatch(/downtime \(writes stopped → new leader writable\): [0-9.]+ s/);
    expect(said).toContain(`${replica}: PostgreSQL 15`);
    // The old directory still has pg_control.old (the --link mark), the new one runs.
    const l = c.members.find((m) => m.name === leader)!;
    expect(existsSync(join(l.dataDir, 'global', 'pg_control.old'))).toBe(true);
    expect(existsSync(join(l.memberDir, 'data15', 'postmaster.pid'))).toBe(true);
    // The line to roll back with, printed by the run.
    const runId = String(ev.find((e) => e.type === 'run_started')?.runId);
    const lastLsn = outputsOf<{ checkpoint_lsn: string }>(ev, 'leader_ctl').checkpoint_lsn;
    expect(said).toContain(
      `rollback: pgrunbook run playbooks/pg-major-upgrade-rollback.yml -i ${join(cwd, 'inv.yml')} -e leader=${leader} -e upgrade_run=${runId} -e expect_lsn=${lastLsn}`,
    );
    upgraded = { root, cwd, runId, leader, before, lastLsn, locations, on13: Number(split!.on13), resumedAt };
  }, 240_000);

  it('the rollback playbook brings the upgraded cluster back on 13 from the snapshot, with the pre-upgrade data', async () => {
    expect(upgraded, 'needs the upgrade test before it').toBeDefined();
    const c = cluster!;
    const { root, cwd, runId, leader, before, lastLsn, locations, on13, resumedAt } = upgraded!;
    // The snapshot is the upgrade's own, taken while Patroni was paused. Whether its saved dynamic
    // configuration already holds the pause depends on when Patroni wrote patroni.dynamic.json
    // (at the end of the cycle that saw the pause): if it does, the pause must be dropped, or the
    // restored cluster never starts PostgreSQL.
    const manifest = JSON.parse(
      readFileSync(join(root, `upgrade-${leader}-${runId}`, 'manifest.json'), 'utf8'),
    );
    const snapshot = String(manifest.snapshots[0].data);
    const savedPause =
      JSON.parse(readFileSync(join(snapshot, 'patroni.dynamic.json'), 'utf8')).pause === true;
    const replica = c.members.find((m) => m.name !== leader)!.name;
    // A write on 15 after the upgrade: the rollback goes back to before it.
    await sql(
      c.clientConfig(leader),
      "insert into customers (name, created) values ('after-upgrade', now())",
    );
    const r = await runCli(
      [
        'run',
        ROLLBACK,
        '-i',
        'inv.yml',
        '-e',
        `leader=${leader}`,
        '-e',
        `upgrade_run=${runId}`,
        '-e',
        `expect_lsn=${lastLsn}`,
        '--yes',
        '--output',
        'json',
      ],
      { cwd },
    );
    expect(r.code, failures(r.stdout) + r.stderr).toBe(0);
    // Recovery replayed past the old leader's last checkpoint (checked by the step itself).
    const restored = events(r.stdout).find(
      (e) => e.type === 'step_finished' && e.stepType === 'backup.recover' && e.host === leader,
    )?.outputs as { checkpoint_lsn: string; timeline: number };
    const lsn = (x: string) => {
      const [hi, lo] = x.split('/');
      return BigInt(`0x${hi}`) * 2n ** 32n + BigInt(`0x${lo}`);
    };
    expect(lsn(restored.checkpoint_lsn)).toBeGreaterThan(lsn(lastLsn));
    expect((restored as unknown as { pause_dropped: boolean }).pause_dropped).toBe(savedPause);
    // The backup's timeline is 1; its own archive holds no history of the new cluster's timelines
    // 2 and 3 (in ARCHIVE/15), so the promotion takes 2.
    expect(restored.timeline).toBe(2);
    await expectMembers(c, '13', leader);
    expect(await contents(c.clientConfig(leader), TABLES)).toEqual(before);
    expect(await contents(c.clientConfig(replica), TABLES)).toEqual(before);
    // What the rollback says it loses, exactly: every pgbench write committed on 13 is back (the
    // copy replayed the old leader's WAL up to its shutdown checkpoint), every one made on 15 is gone.
    const [kept] = await sql<{ all: string; on15: string }>(
      c.clientConfig(leader),
      `select count(*)::text as all, count(*) filter (where mtime >= ${at(resumedAt)})::text as on15 from pgbench_history`,
    );
    expect(kept).toEqual({ all: String(on13), on15: '0' });
    // The tablespace went back to its location on the leader (the snapshot's copy; what the
    // upgrade left there kept beside it), and the replica cloned it into its own, emptied first.
    expect((restored as unknown as { tablespaces: unknown }).tablespaces).toEqual([
      { oid: expect.stringMatching(/^\d+$/), location: locations[leader] },
    ]);
    const rid = String(events(r.stdout).find((e) => e.type === 'run_started')?.runId);
    for (const m of c.members) expect(await spacedAt(c.clientConfig(m.name))).toBe(locations[m.name]);
    const [v13] = versionDirs(locations[replica]!);
    expect(v13).toMatch(/^PG_13_\d+$/);
    const v15 = versionDirs(join(locations[replica]! + `.pre-rollback-${rid}`))[1]!;
    expect(v15).toMatch(/^PG_15_\d+$/);
    expect(versionDirs(locations[leader]!)).toEqual(
      [v13!, `${v13}.pre-rollback-${rid}`, `${v15}.pre-rollback-${rid}`].sort(),
    );
    expect(versionDirs(locations[replica]!)).toEqual([v13]);
    expect(versionDirs(`${locations[replica]}.pre-rollback-${rid}`)).toEqual([v13, v15]);
    const streaming = await sql<{ application_name: string }>(
      c.clientConfig(leader),
      "select application_name from pg_stat_replication where state = 'streaming'",
    );
    expect(streaming.map((s) => s.application_name)).toEqual([replica]);
    // Patroni runs the old data directory with the old binaries again.
    const config = readFileSync(c.members.find((m) => m.name === leader)!.configFile, 'utf8');
    expect(config).toContain(pgBinDir(13));
    expect(config).not.toContain('data15');
  }, 240_000);

  it('a failure before the point of no return (pg_upgrade --check: checksums differ) leaves 13 running and resumed', async () => {
    const c = await fresh();
    const leader = await c.leader();
    const l = c.members.find((m) => m.name === leader)!;
    const { cwd } = await upgradeInventory(sshd, c);
    const r = await runCli(
      ['run', PLAYBOOK, '-i', 'inv.yml', '--yes', '-e', 'initdb_checksums=false', '--output', 'json'],
      { cwd },
    );
    expect(r.code, failures(r.stdout) + r.stderr).toBe(1);
    const ev = events(r.stdout);
    const failed = ev.find((e) => e.type === 'step_finished' && e.status === 'failed');
    expect(failed?.stepType, failures(r.stdout)).toBe('pg.upgrade');
    expect(String(failed?.error)).toMatch(/checksums/);
    const fin = ev.find((e) => e.type === 'run_finished') as { summary: string[] };
    expect(fin.summary.join('\n')).toMatch(/initdb/);
    // Still 13, both running, nothing paused, no new data directory left.
    await expectMembers(c, '13', leader);
    expect(existsSync(join(l.memberDir, 'data15'))).toBe(false);
    expect(ev.some((e) => e.type === 'point_of_no_return')).toBe(false);
  }, 120_000);

  it('declined at the point of no return, after pg_upgrade --link, 13 is put back: pg_control, config, servers, Patroni', async () => {
    const c = await fresh();
    const leader = await c.leader();
    const l = c.members.find((m) => m.name === leader)!;
    const rep = c.members.find((m) => m.name !== leader)!;
    await seed(c.clientConfig(leader));
    const before = await contents(c.clientConfig(leader));
    const configs = c.members.map((m) => readFileSync(m.configFile, 'utf8'));
    const { cwd } = await upgradeInventory(sshd, c);
    // An operator at a terminal: every gate approved but the point of no return, which is
    // declined once pg_upgrade --link has run and patroni.yml points at the new major everywhere.
    const { answered, code } = await onTerminal(cwd, ['run', PLAYBOOK, '-i', 'inv.yml'], (question) =>
      /POINT OF NO RETURN: once this step starts/.test(question) ? 'n' : 'y',
    );
    expect(answered.filter((q) => /POINT OF NO RETURN: once this step starts/.test(q))).toHaveLength(1);
    expect(code).toBe(1);
    const ev = journalOf(cwd);
    const ok = ev.filter((e) => e.type === 'step_finished' && e.status === 'ok').map((e) => e.stepType);
    expect(ok).toContain('pg.upgrade');
    expect(ok.filter((t) => t === 'patroni.edit_config')).toHaveLength(2);
    expect(ev.some((e) => e.type === 'approval' && e.approved === false)).toBe(true);
    const undone = ev
      .filter((e) => e.type === 'undo_finished' && e.ok === true)
      .map((e) => `${e.host}:${(e as { title: string }).title}`);
    expect(undone.some((u) => u.startsWith(`${leader}:pg_upgrade --link`))).toBe(true);
    expect(undone.filter((u) => u.includes(':Point patroni.yml at PostgreSQL 15'))).toHaveLength(2);
    expect(ev.some((e) => e.type === 'point_of_no_return')).toBe(false);
    // Back on 13: pg_control in place, every patroni.yml as it was, both running under Patroni,
    // resumed, the data as before, the new directory gone.
    expect(existsSync(join(l.dataDir, 'global', 'pg_control'))).toBe(true);
    expect(existsSync(join(l.dataDir, 'global', 'pg_control.old'))).toBe(false);
    expect(c.members.map((m) => readFileSync(m.configFile, 'utf8'))).toEqual(configs);
    expect(existsSync(`${rep.configFile}.pg13`)).toBe(false);
    expect(existsSync(join(l.memberDir, 'data15'))).toBe(false);
    await expectMembers(c, '13', leader);
    expect(await contents(c.clientConfig(leader))).toEqual(before);
    // The snapshot taken before the upgrade is a complete backup: stopping the upgrade keeps it.
    const labels = ev.find((e) => e.type === 'step_finished' && e.stepType === 'backup.write_labels')!
      .outputs as { dir: string };
    expect(JSON.parse(readFileSync(join(labels.dir, 'manifest.json'), 'utf8')).status).toBe('complete');
    expect(existsSync(join(`${labels.dir}.snap`, 'data', 'PG_VERSION'))).toBe(true);
    const fin = ev.find((e) => e.type === 'run_finished') as { summary: string[] };
    expect(fin.summary.join('\n')).toContain(`kept in ${labels.dir} on ${leader}`);
  }, 180_000);

  it('a failure past the point of no return ends with the rollback command, real path and values, which works', async () => {
    const c = await fresh();
    const leader = await c.leader();
    const l = c.members.find((m) => m.name === leader)!;
    const replica = c.members.find((m) => m.name !== leader)!.name;
    await seed(c.clientConfig(leader));
    const before = await contents(c.clientConfig(leader));
    const { cwd } = await upgradeInventory(sshd, c);
    // The fault: Patroni will not start on the leader, a step after the replicas were synced.
    const inventory = join(cwd, 'inv.yml');
    const good = readFileSync(inventory, 'utf8');
    const startLine = `patroni_start_command: ${l.serviceScript} start`;
    expect(good).toContain(startLine);
    writeFileSync(inventory, good.replace(startLine, 'patroni_start_command: "false"'));
    const r = await runCli(
      ['run', PLAYBOOK, '-i', 'inv.yml', '--yes', '--output', 'json', '--report', 'report.md'],
      { cwd },
    );
    const ev = events(r.stdout);
    // Exit 1: past the point of no return the pause's guard stood down with the undo stack, and
    // the pause is the recovery's to handle (nothing tries to lift it on a half-upgraded cluster).
    expect(r.code, failures(r.stdout) + r.stderr).toBe(1);
    const ponr = ev.filter((e) => e.type === 'point_of_no_return');
    expect(ponr).toHaveLength(1);
    expect(ponr[0]!.guardsReleased).toEqual([expect.stringMatching(/^Patroni pause of cluster /)]);
    expect((ev.at(-1) as { summary: string[] }).summary.join('\n')).not.toContain('STILL IN PLACE');
    const failed = ev.find((e) => e.type === 'step_finished' && e.status === 'failed');
    expect(failed).toMatchObject({ title: 'Start Patroni on the leader', host: leader });
    const runId = String(ev.find((e) => e.type === 'run_started')?.runId);
    const lsn = outputsOf<{ checkpoint_lsn: string }>(ev, 'leader_ctl').checkpoint_lsn;
    const scope = outputsOf<{ scope: string }>(ev, 'cluster').scope;
    const rollback = `pgrunbook run playbooks/pg-major-upgrade-rollback.yml -i ${inventory} -e leader=${leader} -e upgrade_run=${runId} -e expect_lsn=${lsn} -e patroni_scope=${scope}`;
    // The summary, in JSON and in the Markdown report, ends with that command; resume is not
    // offered anywhere (past the point of no return it cannot take the cluster back).
    const fin = ev.at(-1) as { type: string; summary: string[]; next: string };
    expect(fin.type).toBe('run_finished');
    expect(fin.next).toBe(`${rollback} (restores the snapshot taken above)`);
    expect(fin.summary.at(-1)).toMatch(/^Next, .*: pgrunbook run playbooks\/pg-major-upgrade-rollback\.yml /);
    expect(fin.summary.at(-1)!.endsWith(fin.next)).toBe(true);
    expect(r.stdout + r.stderr).not.toContain('pgrunbook resume');
    const report = readFileSync(join(cwd, 'report.md'), 'utf8').trimEnd().split('\n');
    expect(report.at(-1)).toBe(`- ${fin.summary.at(-1)}`);

    // The truth: the printed command, run as printed once the fault is fixed, brings 13 back with
    // the data as before. The playbook path is the repository's; everything else is the line's.
    writeFileSync(inventory, good);
    const args = rollback.split(' ').slice(2);
    expect(args[0]).toBe('playbooks/pg-major-upgrade-rollback.yml');
    const rb = await runCli(['run', ROLLBACK, ...args.slice(1), '--yes', '--output', 'json'], { cwd });
    expect(rb.code, failures(rb.stdout) + rb.stderr).toBe(0);
    await expectMembers(c, '13', leader);
    expect(await contents(c.clientConfig(leader))).toEqual(before);
    expect(await contents(c.clientConfig(replica))).toEqual(before);
  }, 360_000);

  it('a replica named in reclone_replicas is not rsynced: Patroni clones it afresh from the new leader', async () => {
    const c = await fresh();
    const leader = await c.leader();
    const rep = c.members.find((m) => m.name !== leader)!;
    await seed(c.clientConfig(leader));
    const before = await contents(c.clientConfig(leader));
    const { cwd } = await upgradeInventory(sshd, c);
    const r = await runCli(
      ['run', PLAYBOOK, '-i', 'inv.yml', '--yes', '-e', `reclone_replicas=[${rep.name}]`, '--output', 'json'],
      { cwd },
    );
    expect(r.code, failures(r.stdout) + r.stderr).toBe(0);
    const ev = events(r.stdout);
    const said = ev
      .filter((e) => e.type === 'step_output')
      .map((e) => String(e.text))
      .join('\n');
    expect(said).toContain(`${rep.name}: not synced (cloned afresh instead)`);
    // Its old directory was left as it was (no pg_control.old: rsync never touched it).
    expect(existsSync(join(rep.dataDir, 'global', 'pg_control'))).toBe(true);
    expect(existsSync(join(rep.dataDir, 'global', 'pg_control.old'))).toBe(false);
    const [v] = await sql<{ v: string; standby: boolean }>(
      c.clientConfig(rep.name),
      "select current_setting('server_version_num') as v, pg_is_in_recovery() as standby",
    );
    expect(v).toEqual({ v: expect.stringMatching(/^15/), standby: true });
    expect(await contents(c.clientConfig(rep.name))).toEqual(before);
  }, 240_000);
});

// playbooks/pg-major-upgrade-bluegreen.yml on real servers: blue, a 2-member Patroni cluster on
// PostgreSQL 13 (etcd, wal_level=logical) under pgbench; green, a 2-member Patroni cluster on 15
// whose patroni.yml files are in place and nothing else. The playbook copies blue's leader,
// recovers the copy to the logical slot's consistent point, upgrades it, starts green on it and
// subscribes it to blue. Asked of the servers afterwards: every table equal on both sides (counts
// and checksums), green's replica streaming, blue's clients never failed; a failure at the end
// leaves blue as it was (no publication, slot or ignore_slots entry) and green empty.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql, waitUntil } from '../../tools/testenv/checks.js';
import {
  blueGreenInventory,
  type EtcdServer,
  httpRequest,
  type PatroniCluster,
  type PgBouncerServer,
  pgBinDir,
  type SshServer,
  startEtcd,
  startPatroniCluster,
  startPgBouncer,
  startPgbench,
  startSshd,
} from '../../tools/testenv/index.js';
import { events, journalOf, outputsOf, runCli, startCli, workdir } from './cli.js';

const PLAYBOOK = join(import.meta.dirname, '../../playbooks/pg-major-upgrade-bluegreen.yml');

let etcd: EtcdServer;
let sshd: SshServer;
let blue: PatroniCluster;
let green: PatroniCluster | undefined;
let bouncer: PgBouncerServer | undefined;
const BOUNCER_ADMIN = 'pgb-admin-Secret-88';
const SWITCHOVER = join(import.meta.dirname, '../../playbooks/pg-bluegreen-switchover.yml');
const CLEANUP = join(import.meta.dirname, '../../playbooks/pg-bluegreen-cleanup.yml');

beforeAll(async () => {
  [etcd, sshd] = await Promise.all([startEtcd(), startSshd()]);
  blue = await startPatroniCluster({ etcd, members: 2, version: 13, parameters: { wal_level: 'logical' } });
  const leader = await blue.leader();
  await pgbenchInit(blue.clientConfig(leader));
  await sql(
    blue.clientConfig(leader),
    `create table orders (id bigserial primary key, note text not null, at timestamptz default now());
     insert into orders (note) select 'o' || g from generate_series(1, 1000) g;`,
  );
}, 180_000);
afterAll(async () => {
  await bouncer?.stop();
  await green?.stop();
  await blue?.stop();
  await sshd?.stop();
  await etcd?.stop();
});

async function pgbenchInit(cfg: pg.ClientConfig): Promise<void> {
  const { spawn } = await import('node:child_process');
  const child = spawn(
    join(pgBinDir(15), 'pgbench'),
    [
      '-i',
      '-q',
      '-s',
      '1',
      '-h',
      String(cfg.host),
      '-p',
      String(cfg.port),
      '-U',
      String(cfg.user),
      'postgres',
    ],
    { env: { ...process.env, PGPASSWORD: String(cfg.password) }, stdio: 'ignore' },
  );
  const code = await new Promise<number | null>((res) => child.on('close', res));
  if (code !== 0) throw new Error(`pgbench -i exited ${code}`);
}

const SUPER_PW = 'pgrb-test-super';
const REPL_PW = 'pgrb-test-repl';
const env = { BLUE_PG_PW: SUPER_PW, BLUE_REPL_PW: REPL_PW, PGB_ADMIN: BOUNCER_ADMIN };

const inventory = (g: PatroniCluster): string =>
  blueGreenInventory({
    blue,
    green: g,
    sshd,
    pooler: bouncer ? { port: bouncer.port, adminUser: 'pgb_admin' } : undefined,
    vars: ['logical_allow: [no_replica_identity]', 'catch_up_timeout: 120'],
  });

const TABLES = ['pgbench_accounts', 'pgbench_branches', 'pgbench_tellers', 'pgbench_history', 'orders'];

/** Per table: row count and an md5 over every row, in one order. */
async function contents(cfg: pg.ClientConfig): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const t of TABLES) {
    const [r] = await sql<{ n: string; sum: string }>(
      cfg,
      `select count(*)::text as n, coalesce(md5(string_agg(t::text, ',' order by t::text)), '') as sum from ${t} t`,
    );
    out[t] = `${r!.n}:${r!.sum}`;
  }
  return out;
}

async function blueState(cfg: pg.ClientConfig) {
  const [r] = await sql<{ pubs: string; slots: string }>(
    cfg,
    `select coalesce((select string_agg(pubname, ',') from pg_publication), '') as pubs,
            coalesce((select string_agg(slot_name, ',' order by slot_name) from pg_replication_slots where slot_name like 'pgrunbook%'), '') as slots`,
  );
  const config = JSON.parse((await httpRequest('GET', `${blue.members[0]!.restUrl}/config`)).body);
  return { ...r!, ignore_slots: config.ignore_slots ?? null };
}

const leaderCfg = async () => blue.clientConfig(await blue.leader());

describe('blue-green upgrade, phase 1: build green (13 → 15)', () => {
  it('a failure at the end undoes everything: blue as it was, its clients untouched, green empty', async () => {
    green = await startPatroniCluster({ etcd, members: 2, version: 15, deferred: true });
    const cwd = workdir({ 'inv.yml': inventory(green) });
    const leader = await leaderCfg();
    const load = startPgbench(
      { host: '127.0.0.1', port: Number(leader.port), user: 'postgres', password: SUPER_PW },
      2,
    );
    // DDL on green alone once it subscribed: the schemas compared at the end differ, and the run
    // fails after green has caught up with blue.
    const run = startCli(['run', PLAYBOOK, '-i', 'inv.yml', '--output', 'json'], { cwd, env });
    let ddl: Promise<unknown> | undefined;
    let out = '';
    run.child.stdout!.on('data', (c: string) => {
      out += c;
    });
    const watch = setInterval(() => {
      if (ddl) return;
      if (/"type":"step_finished"[^\n]*"stepType":"pg.subscription"[^\n]*"status":"ok"/.test(out)) {
        ddl = green!
          .leader()
          .then((l) => sql(green!.clientConfig(l), 'create table only_on_green (id int primary key)'));
      }
    }, 100);
    const r = await run.done;
    clearInterval(watch);
    await ddl;
    const bench = await load.stop();
    expect(r.code, r.stdout.slice(-4000) + r.stderr).toBe(1);
    const ev = events(r.stdout);
    expect(
      ev.some((e) => e.type === 'step_finished' && e.stepType === 'pg.logical_catch_up' && e.status === 'ok'),
    ).toBe(true);
    expect(r.stdout).toContain("green's schema");
    const failedUndos = ev.filter((e) => e.type === 'undo_finished' && e.ok !== true);
    expect(failedUndos, JSON.stringify(failedUndos)).toEqual([]);
    expect(bench.failures).toEqual([]);
    expect(bench.transactions).toBeGreaterThan(0);
    expect(await blueState(leader)).toEqual({ pubs: '', slots: '', ignore_slots: null });
    for (const m of green.members) {
      expect(existsSync(m.dataDir), m.dataDir).toBe(false);
      expect(existsSync(`${m.memberDir}/data13`)).toBe(false);
      await expect(httpRequest('GET', `${m.restUrl}/patroni`, undefined, 1000)).rejects.toThrow();
    }
    // Green's scope is gone from the DCS: a second attempt starts clean.
    const keys = await httpRequest('POST', `http://127.0.0.1:${etcd.clientPort}/v3/kv/range`, {
      key: Buffer.from(`/service/${green.scope}/`).toString('base64'),
      range_end: Buffer.from(`/service/${green.scope}0`).toString('base64'),
      count_only: true,
    });
    expect(JSON.parse(keys.body).count ?? '0').toBe('0');
    await green.stop();
    green = undefined;
  }, 600_000);

  it('green follows blue: every table equal, a replica streaming, blue never paused its clients', async () => {
    green = await startPatroniCluster({ etcd, members: 2, version: 15, deferred: true });
    const cwd = workdir({ 'inv.yml': inventory(green) });
    const plan = await runCli(
      ['plan', PLAYBOOK, '-i', 'inv.yml', '--assume-leader', `blue-${await blue.leader()}`],
      {
        cwd,
        env,
      },
    );
    expect(plan.code, plan.stdout.slice(-3000) + plan.stderr).toBe(0);
    const leader = await leaderCfg();
    const archived = readdirSync(blue.archiveDir);
    const load = startPgbench(
      { host: '127.0.0.1', port: Number(leader.port), user: 'postgres', password: SUPER_PW },
      2,
    );
    const r = await runCli(['run', PLAYBOOK, '-i', 'inv.yml', '--yes', '--output', 'json'], { cwd, env });
    // Writes go on after the playbook: green keeps following.
    await new Promise((res) => setTimeout(res, 2000));
    const bench = await load.stop();
    expect(r.code, r.stdout.slice(-4000) + r.stderr).toBe(0);
    expect(bench.failures).toEqual([]);
    const ev = events(r.stdout);
    const slot = outputsOf<{ consistent_lsn: string }>(ev, 'slot');
    const recovered = outputsOf<{ stop_lsn: string; timeline: number }>(ev, 'recovered');
    expect(recovered.timeline).toBeGreaterThan(1);

    const gLeader = green.clientConfig(await green.leader());
    await waitUntil(
      'green has every row blue has',
      async () => JSON.stringify(await contents(gLeader)) === JSON.stringify(await contents(leader)),
      60_000,
    ).catch(() => {});
    const [b, g] = [await contents(leader), await contents(gLeader)];
    expect(g).toEqual(b);
    expect(Number(b.pgbench_history!.split(':')[0])).toBeGreaterThan(0);
    const [v] = await sql<{ v: string }>(gLeader, "select current_setting('server_version_num') as v");
    expect(v!.v.slice(0, 2)).toBe('15');
    const [rep] = await sql<{ n: number }>(
      gLeader,
      "select count(*)::int as n from pg_stat_replication where state = 'streaming'",
    );
    expect(rep!.n).toBe(1);
    const [sub] = await sql<{ subenabled: boolean }>(
      gLeader,
      "select subenabled from pg_subscription where subname = 'pgrunbook_bg_to_green'",
    );
    expect(sub!.subenabled).toBe(true);
    // Blue keeps the logical slot (Patroni told to leave it alone); the copy's slot is gone.
    const state = await blueState(leader);
    expect(state.pubs).toBe('pgrunbook_bg');
    expect(state.slots).toBe('pgrunbook_bg_to_green');
    expect(state.ignore_slots).toEqual([
      { name: 'pgrunbook_bg_to_green', type: 'logical', database: 'postgres', plugin: 'pgoutput' },
      { name: 'pgrunbook_bg_copy', type: 'physical' },
    ]);
    expect(green.scope).not.toBe(blue.scope);
    // The copy's timeline never reached blue's archive.
    const added = readdirSync(blue.archiveDir).filter((f) => !archived.includes(f));
    expect(added.filter((f) => f.startsWith(`0000000${recovered.timeline}`))).toEqual([]);
    expect(slot.consistent_lsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    for (const text of [r.stdout, r.stderr, plan.stdout, JSON.stringify(journalOf(cwd))]) {
      expect(text).not.toContain(SUPER_PW);
      expect(text).not.toContain(REPL_PW);
    }
  }, 600_000);

  // From here on green follows blue (the test above), and clients go through PgBouncer.
  it('a failure inside the switch (the subscription stopped) unwinds: clients on blue only waited', async () => {
    const g = green!;
    const bLeader = await leaderCfg();
    const gLeader = g.clientConfig(await g.leader());
    bouncer = await startPgBouncer({
      databases: { postgres: { host: '127.0.0.1', port: Number(bLeader.port) } },
      users: { postgres: SUPER_PW, pgb_admin: BOUNCER_ADMIN },
      adminUsers: ['pgb_admin'],
    });
    const cwd = workdir({ 'inv.yml': inventory(g) });
    const greenConfig = JSON.parse((await httpRequest('GET', `${g.members[0]!.restUrl}/config`)).body);
    const load = startPgbench({
      host: bouncer.host,
      port: bouncer.port,
      user: 'postgres',
      password: SUPER_PW,
    });
    await new Promise((res) => setTimeout(res, 1000));
    const run = startCli(['run', SWITCHOVER, '-i', 'inv.yml', '--yes', '--output', 'json'], { cwd, env });
    let out = '';
    run.child.stdout!.on('data', (c: string) => {
      out += c;
    });
    // Once green was seen nearly caught up, its subscription stops: the catch-up in the window
    // cannot complete.
    let stopped: Promise<unknown> | undefined;
    const watch = setInterval(() => {
      if (
        !stopped &&
        /"type":"step_finished"[^\n]*"stepType":"pg.logical_catch_up"[^\n]*"status":"ok"/.test(out)
      )
        stopped = sql(gLeader, 'alter subscription pgrunbook_bg_to_green disable');
    }, 50);
    const r = await run.done;
    clearInterval(watch);
    await stopped;
    await new Promise((res) => setTimeout(res, 1000));
    const bench = await load.stop(1000);
    expect(stopped).toBeDefined();
    expect(r.code, r.stdout.slice(-3000) + r.stderr).toBe(1);
    const ev = events(r.stdout);
    const failed = ev.find((e) => e.type === 'step_finished' && e.status === 'failed');
    expect(failed?.stepType).toBe('pg.logical_catch_up');
    expect(ev.filter((e) => e.type === 'undo_finished' && e.ok !== true)).toEqual([]);
    // The clients waited and went on, on blue.
    expect(bench.failures).toEqual([]);
    expect(bench.clientsAtEnd).toBe(4);
    const [db] = (await bouncer.admin('SHOW DATABASES')).filter((d) => d.name === 'postgres');
    expect(Number(db!.port)).toBe(Number(bLeader.port));
    // Nothing of the way back is left: no slot on green (its publication is blue's, copied with
    // it), no subscription on blue, green's ignore_slots as before.
    const [gs] = await sql<{ pubs: string; slots: string }>(
      gLeader,
      "select (select string_agg(pubname, ',') from pg_publication) as pubs, (select count(*) from pg_replication_slots where slot_type = 'logical')::text as slots",
    );
    expect(gs).toEqual({ pubs: 'pgrunbook_bg', slots: '0' });
    const [bs] = await sql<{ n: string }>(bLeader, 'select count(*)::text as n from pg_subscription');
    expect(bs!.n).toBe('0');
    const after = JSON.parse((await httpRequest('GET', `${g.members[0]!.restUrl}/config`)).body);
    expect(after.ignore_slots ?? null).toEqual(greenConfig.ignore_slots ?? null);
    await sql(gLeader, 'alter subscription pgrunbook_bg_to_green enable');
  }, 300_000);

  it('switchover to 15 and back under pgbench through PgBouncer: no failed transaction, no row lost', async () => {
    const g = green!;
    const bLeader = await leaderCfg();
    const gLeaderName = await g.leader();
    const gLeader = g.clientConfig(gLeaderName);
    const cwd = workdir({ 'inv.yml': inventory(g) });
    const plan = await runCli(['plan', SWITCHOVER, '-i', 'inv.yml', '--check'], { cwd, env });
    expect(plan.code, plan.stdout.slice(-3000) + plan.stderr).toBe(0);
    const load = startPgbench({
      host: bouncer!.host,
      port: bouncer!.port,
      user: 'postgres',
      password: SUPER_PW,
    });
    await new Promise((res) => setTimeout(res, 1000));
    const there = await runCli(['run', SWITCHOVER, '-i', 'inv.yml', '--yes', '--output', 'json'], {
      cwd,
      env,
    });
    expect(there.code, there.stdout.slice(-3000) + there.stderr).toBe(0);
    const resumed = outputsOf<{ paused_ms: number }>(events(there.stdout), 'bouncer_resume');
    expect(resumed.paused_ms).toBeGreaterThan(0);
    const [db] = (await bouncer!.admin('SHOW DATABASES')).filter((d) => d.name === 'postgres');
    expect(Number(db!.port)).toBe(Number(gLeader.port));
    // Clients write on 15 now; one row marks it.
    await sql(
      {
        host: bouncer!.host,
        port: bouncer!.port,
        user: 'postgres',
        password: SUPER_PW,
        database: 'postgres',
      },
      "insert into orders (note) values ('written on 15')",
    );
    await new Promise((res) => setTimeout(res, 3000));
    const [on15] = await sql<{ n: number }>(gLeader, 'select count(*)::int as n from pgbench_history');
    const back = await runCli(
      ['run', SWITCHOVER, '-i', 'inv.yml', '-e', 'switch_to=blue', '--yes', '--output', 'json'],
      {
        cwd,
        env,
      },
    );
    expect(back.code, back.stdout.slice(-3000) + back.stderr).toBe(0);
    await new Promise((res) => setTimeout(res, 2000));
    const bench = await load.stop(1000);
    expect(bench.failures).toEqual([]);
    expect(bench.clientsAtEnd).toBe(4);
    const [db2] = (await bouncer!.admin('SHOW DATABASES')).filter((d) => d.name === 'postgres');
    expect(Number(db2!.port)).toBe(Number(bLeader.port));
    // Every row written on 15 is on 13, and after the way back both sides hold the same again.
    const [marker] = await sql<{ n: number }>(
      bLeader,
      "select count(*)::int as n from orders where note = 'written on 15'",
    );
    expect(marker!.n).toBe(1);
    const [on13] = await sql<{ n: number }>(bLeader, 'select count(*)::int as n from pgbench_history');
    expect(on13!.n).toBeGreaterThan(on15!.n);
    await waitUntil(
      'green has every row blue has',
      async () => JSON.stringify(await contents(gLeader)) === JSON.stringify(await contents(bLeader)),
      60_000,
    ).catch(() => {});
    expect(await contents(gLeader)).toEqual(await contents(bLeader));
    // Sequences never went back: the order numbers handed out on 15 are below blue's now.
    const [seq] = await sql<{ ok: boolean }>(
      bLeader,
      'select (select last_value from orders_id_seq) > (select max(id) from orders) as ok',
    );
    expect(seq!.ok).toBe(true);
    for (const text of [there.stdout, back.stdout, plan.stdout, JSON.stringify(journalOf(cwd))]) {
      expect(text).not.toContain(SUPER_PW);
      expect(text).not.toContain(BOUNCER_ADMIN);
    }
  }, 600_000);

  it('clean-up keeps the accepted cluster (blue, after the way back) and stops the other', async () => {
    const g = green!;
    const bLeader = await leaderCfg();
    const cwd = workdir({ 'inv.yml': inventory(g) });
    const r = await runCli(
      [
        'run',
        CLEANUP,
        '-i',
        'inv.yml',
        '-e',
        'accepted=blue',
        '-e',
        'stop_retired=true',
        '--yes',
        '--output',
        'json',
      ],
      { cwd, env },
    );
    expect(r.code, r.stdout.slice(-3000) + r.stderr).toBe(0);
    expect(await blueState(bLeader)).toEqual({ pubs: '', slots: '', ignore_slots: null });
    const [sub] = await sql<{ n: string }>(bLeader, 'select count(*)::text as n from pg_subscription');
    expect(sub!.n).toBe('0');
    for (const m of g.members)
      await expect(httpRequest('GET', `${m.restUrl}/patroni`, undefined, 1000)).rejects.toThrow();
    expect(existsSync(`${g.members[0]!.memberDir}/data13`)).toBe(false);
    // Blue takes writes as before.
    await sql(bLeader, "insert into orders (note) values ('after the clean-up')");
  }, 300_000);
});

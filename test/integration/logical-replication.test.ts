// pg.publication, pg.logical_slot and pg.subscription between a real PostgreSQL 13 (publisher)
// and 15 (subscriber), as a blue-green upgrade uses them: the subscriber already holds every row
// up to the slot's consistent point (as a physical copy recovered to it would), subscribes without
// copying data, and receives exactly what the publisher commits after that point. A failure after
// them undoes all three on both servers; the publisher's password stays out of the plan, the
// journal and the subscriber's server log.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from '../../tools/testenv/checks.js';
import { type PgServer, startPostgres } from '../../tools/testenv/index.js';
import { events, journalOf, outputsOf, runCli, workdir } from './cli.js';

const PASSWORD = 'blue-pub-Secret-5501';
let blue: PgServer;
let green: PgServer;

const at = (s: PgServer) => ({ host: s.socketDir, port: s.port, user: 'postgres', database: 'app' });

beforeAll(async () => {
  [blue, green] = await Promise.all([
    startPostgres({ version: 13, password: PASSWORD, settings: { wal_level: 'logical' } }),
    startPostgres({ version: 15, settings: { log_statement: 'all' } }),
  ]);
  for (const s of [blue, green]) {
    await sql({ ...at(s), database: 'postgres' }, 'create database app');
    await sql(at(s), 'create table orders (id int primary key, note text not null)');
    // Both hold rows 1..10: the subscriber as a copy recovered to the switch point would.
    await sql(at(s), "insert into orders select g, 'before ' || g from generate_series(1, 10) g");
    await sql(at(s), 'create sequence order_no');
    await sql(at(s), 'create sequence unused_no');
  }
  // Blue handed out 50 order numbers: logical replication does not carry that.
  await sql(at(blue), "select nextval('order_no') from generate_series(1, 50)");
}, 90_000);
afterAll(async () => {
  await Promise.all([blue?.stop(), green?.stop()]);
});

const inventory = () => `hosts:
  blue:
    transport: local
    pg: { host: 127.0.0.1, port: ${blue.port}, user: postgres, database: app, sslmode: disable, password: { env: BLUE_PW } }
  green:
    transport: local
    pg: { host: ${green.socketDir}, port: ${green.port}, user: postgres, database: app, sslmode: disable }
`;

const playbook = (tail: string) => `
- name: publish on blue
  hosts: blue
  steps:
    - pg.publication: { name: bg_pub }
    - id: slot
      pg.logical_slot: { name: bg_slot }
- name: subscribe on green
  hosts: green
  steps:
    - id: sub
      pg.subscription:
        name: bg_sub
        source: blue
        publication: bg_pub
        slot_name: bg_slot
        origin_lsn: "{{ hostvars.blue.slot.consistent_lsn }}"
- name: writes on blue after the switch point
  hosts: blue
  steps:
    - pg.query: "insert into orders select g, 'after ' || g from generate_series(11, 15) g"
- name: they reach green
  hosts: green
  steps:
    - wait_for:
        sql: "select count(*) = 15 from orders"
        timeout: 30
${tail}`;

const env = { BLUE_PW: PASSWORD };

async function catalogs() {
  const [pub] = await sql<{ n: string }>(at(blue), 'select count(*)::text as n from pg_publication');
  const [slot] = await sql<{ n: string }>(at(blue), 'select count(*)::text as n from pg_replication_slots');
  const [sub] = await sql<{ n: string }>(at(green), 'select count(*)::text as n from pg_subscription');
  return { publications: pub!.n, slots: slot!.n, subscriptions: sub!.n };
}

describe('logical replication steps, 13 → 15', () => {
  it('a failure after them undoes subscription, slot and publication on both servers', async () => {
    const cwd = workdir({
      'inv.yml': inventory(),
      'pb.yml': playbook(`    - name: a later step fails
      shell: "false"
`),
    });
    const r = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json'], { cwd, env });
    expect(r.code, r.stdout + r.stderr).toBe(1);
    const ev = events(r.stdout);
    // It streamed (the wait saw rows 11..15 on green) before the failure.
    expect(ev.some((e) => e.type === 'step_finished' && e.stepType === 'wait_for' && e.status === 'ok')).toBe(
      true,
    );
    const undone = ev.filter((e) => e.type === 'undo_finished' && e.ok === true).map((e) => e.title);
    expect(undone).toEqual(expect.arrayContaining(['pg.subscription', 'pg.logical_slot', 'pg.publication']));
    expect(await catalogs()).toEqual({ publications: '0', slots: '0', subscriptions: '0' });
    // Back to the start for the next test: blue's rows 11..15 were not undone (a query has no undo).
    await sql(at(blue), 'delete from orders where id > 10');
    await sql(at(green), 'delete from orders where id > 10');
  });

  it('streams what blue commits after the slot point, without copying data; no password in plan, journal or log', async () => {
    const cwd = workdir({ 'inv.yml': inventory(), 'pb.yml': playbook('') });
    const plan = await runCli(['plan', 'pb.yml', '-i', 'inv.yml'], { cwd, env });
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout).toContain(
      `CREATE SUBSCRIPTION bg_sub CONNECTION 'host=''127.0.0.1'' port=''${blue.port}'' user=''postgres'' dbname=''app'' sslmode=''disable'' password=''***''' PUBLICATION bg_pub WITH (create_slot = false, slot_name = 'bg_slot', copy_data = false, enabled = false)`,
    );
    const r = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json'], { cwd, env });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const slot = outputsOf<{ consistent_lsn: string }>(events(r.stdout), 'slot');
    expect(slot.consistent_lsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    // The subscription's origin starts at the slot's consistent point.
    const [origin] = await sql<{ lsn: string }>(
      at(green),
      "select remote_lsn::text as lsn from pg_replication_origin_status s join pg_subscription p on s.external_id = 'pg_' || p.oid where p.subname = 'bg_sub'",
    );
    expect(origin).toBeDefined();
    // Every row once, the same on both sides, and a later write too.
    await sql(at(blue), "update orders set note = 'changed on blue' where id = 3");
    const same = async () => {
      const q = "select string_agg(id || ':' || note, ',' order by id) as t from orders";
      const [[b], [g]] = await Promise.all([
        sql<{ t: string }>(at(blue), q),
        sql<{ t: string }>(at(green), q),
      ]);
      return { b: b!.t, g: g!.t };
    };
    const deadline = Date.now() + 20_000;
    let last = await same();
    while (last.b !== last.g && Date.now() < deadline) {
      await new Promise((res) => setTimeout(res, 200));
      last = await same();
    }
    expect(last.g).toBe(last.b);
    expect(last.g.split(',')).toHaveLength(15);
    expect(last.g).toContain('3:changed on blue');
    // The password: never in the plan, the run's output or journal, nor green's statement log.
    expect(plan.stdout + r.stdout + r.stderr).not.toContain(PASSWORD);
    expect(JSON.stringify(journalOf(cwd))).not.toContain(PASSWORD);
    const logs = readFileSync(green.logFile, 'utf8');
    // It logs every statement (log_statement = all), the subscription's session excepted.
    expect(logs).toContain('create table orders');
    expect(logs).toContain("SET log_statement = 'none'");
    expect(logs).not.toContain('CREATE SUBSCRIPTION');
    expect(logs).not.toContain(PASSWORD);
  });

  it('switchover pieces: catch-up proven on the publisher, sequences copied with a margin (undone on failure)', async () => {
    const seq = async (name: string) =>
      (
        await sql<{ v: string; c: boolean }>(
          at(green),
          `select last_value::text as v, is_called as c from ${name}`,
        )
      )[0]!;
    const pb = (tail: string) => `
- name: the last write, then proof green has it
  hosts: blue
  steps:
    - pg.query: "insert into orders values (16, 'last before the pause')"
    - id: caught
      pg.logical_catch_up: { slot: bg_slot, timeout: 20 }
- name: sequences
  hosts: green
  steps:
    - id: seqs
      pg.copy_sequences: { source: blue, margin: 100 }
${tail}`;
    const failing = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json'], {
      cwd: workdir({ 'inv.yml': inventory(), 'pb.yml': pb('    - shell: "false"\n') }),
      env,
    });
    expect(failing.code, failing.stdout + failing.stderr).toBe(1);
    // Undone: never used on green, as before.
    expect(await seq('order_no')).toEqual({ v: '1', c: false });
    const r = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json'], {
      cwd: workdir({ 'inv.yml': inventory(), 'pb.yml': pb('').replace('values (16,', 'values (17,') }),
      env,
    });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const ev = events(r.stdout);
    const caught = outputsOf<{ target_lsn: string; confirmed_lsn: string }>(ev, 'caught');
    for (const lsn of [caught.target_lsn, caught.confirmed_lsn])
      expect(lsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    const [cmp] = await sql<{ ok: boolean }>(
      at(blue),
      `select '${caught.confirmed_lsn}'::pg_lsn >= '${caught.target_lsn}'::pg_lsn as ok`,
    );
    expect(cmp!.ok).toBe(true);
    // Proven before anything on green was looked at: the row is there at once.
    const [row] = await sql<{ note: string }>(at(green), 'select note from orders where id = 17');
    expect(row?.note).toBe('last before the pause');
    expect(await seq('order_no')).toEqual({ v: '150', c: true });
    expect(await seq('unused_no')).toEqual({ v: '1', c: false });
    expect(outputsOf<{ skipped: string[] }>(ev, 'seqs').skipped).toEqual(['public.unused_no']);

    // With the subscription disabled, the catch-up cannot be proven: it fails, saying how far behind.
    await sql(at(green), 'alter subscription bg_sub disable');
    const behind = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json'], {
      cwd: workdir({
        'inv.yml': inventory(),
        'pb.yml': pb('').replace('values (16,', 'values (18,').replace('timeout: 20', 'timeout: 2'),
      }),
      env,
    });
    expect(behind.code).toBe(1);
    expect(behind.stdout).toMatch(
      /slot bg_slot has confirmed [0-9A-F/]+, \d+ bytes short of [0-9A-F/]+, after 2 s/,
    );
    await sql(at(green), 'alter subscription bg_sub enable');
  });
});

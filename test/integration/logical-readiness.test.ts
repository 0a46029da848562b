// pg.logical_readiness on a real PostgreSQL 13 (a blue-green source) and 15 (its target): what
// logical replication would not carry is refused by name until allowed, sequences are listed with
// their values, and the schema fingerprint is equal on both majors for the same schema and differs
// once DDL ran on one side.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from '../../tools/testenv/checks.js';
import { type PgServer, startPostgres } from '../../tools/testenv/index.js';
import { events, outputsOf, runCli, workdir } from './cli.js';

let s13: PgServer;
let s15: PgServer;

// The same schema on both sides: one table that replicates, one without any identity, one with
// REPLICA IDENTITY FULL (it replicates), one unlogged, a sequence in use, a large object (13 only).
const SCHEMA = [
  'create table orders (id bigserial primary key, note text not null, at timestamptz)',
  'create table events_log (at timestamptz, payload jsonb)',
  'create table audit (at timestamptz, who text)',
  'alter table audit replica identity full',
  'create unlogged table scratch (k int primary key)',
  'create schema "Odd Schema"',
  'create table "Odd Schema"."Mixed Case" (id int primary key)',
];

const conn = (s: PgServer, database = 'postgres') => ({
  host: s.socketDir,
  port: s.port,
  user: 'postgres',
  database,
});

beforeAll(async () => {
  [s13, s15] = await Promise.all([startPostgres({ version: 13 }), startPostgres({ version: 15 })]);
  for (const s of [s13, s15]) {
    await sql(conn(s), 'create database app');
    for (const q of SCHEMA) await sql(conn(s, 'app'), q);
  }
  await sql(conn(s13, 'app'), "insert into orders (note) select 'n' || g from generate_series(1, 42) g");
  await sql(conn(s13, 'app'), "select lo_from_bytea(0, 'blob'::bytea)");
}, 90_000);
afterAll(async () => {
  await Promise.all([s13?.stop(), s15?.stop()]);
});

const inventory = () => `hosts:
  blue:
    transport: local
    pg: { host: ${s13.socketDir}, port: ${s13.port}, user: postgres, sslmode: disable }
  green:
    transport: local
    pg: { host: ${s15.socketDir}, port: ${s15.port}, user: postgres, sslmode: disable }
`;

const playbook = (hosts: string, params: string) => `
- name: readiness
  hosts: ${hosts}
  steps:
    - id: ready
      pg.logical_readiness: { databases: [app], ${params} }
`;

async function run(hosts: string, params: string) {
  const r = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json'], {
    cwd: workdir({ 'inv.yml': inventory(), 'pb.yml': playbook(hosts, params) }),
  });
  return { ...r, ev: events(r.stdout) };
}

type Ready = {
  fingerprint: string;
  problems: string[];
  databases: {
    database: string;
    tables: number;
    no_replica_identity: string[];
    unlogged: string[];
    large_objects: number;
    sequences: { name: string; last_value: string | null }[];
  }[];
};

describe('pg.logical_readiness', () => {
  it('refuses, by database and table, what logical replication would not carry', async () => {
    const r = await run('blue', '');
    expect(r.code).toBe(1);
    const failed = r.ev.find((e) => e.type === 'step_finished' && e.status === 'failed');
    const error = String(failed?.error);
    expect(error).toContain('app: table public.events_log has no primary key or replica identity');
    expect(error).toContain('app: table public.scratch is unlogged');
    expect(error).toContain('app: 1 large object(s)');
    // REPLICA IDENTITY FULL and a primary key both replicate: not named.
    expect(error).not.toContain('public.audit');
    expect(error).not.toContain('orders');
    expect(error).toContain('allow: [no_replica_identity, unlogged, large_objects]');
  });

  it('allowed, it names what it accepted, lists the sequences, and the fingerprints agree across majors', async () => {
    const r = await run('blue:green', 'allow: [no_replica_identity, unlogged, large_objects]');
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const [blue, green] = ['blue', 'green'].map(
      (h) =>
        r.ev.find(
          (e) => e.type === 'step_finished' && e.host === h && (e.names as string[]).includes('ready'),
        )!.outputs as Ready,
    );
    const b = blue!.databases[0]!;
    expect(b.database).toBe('app');
    expect(b.tables).toBe(5);
    expect(b.no_replica_identity).toEqual(['public.events_log']);
    expect(b.unlogged).toEqual(['public.scratch']);
    expect(b.large_objects).toBe(1);
    expect(b.sequences).toEqual([{ name: 'public.orders_id_seq', last_value: '42' }]);
    expect(blue!.problems).toHaveLength(3);
    // The same schema on PostgreSQL 13 and 15: the same fingerprint (the data and the large
    // object differ, which the fingerprint does not cover).
    expect(green!.databases[0]!.large_objects).toBe(0);
    expect(green!.databases[0]!.sequences).toEqual([{ name: 'public.orders_id_seq', last_value: null }]);
    expect(green!.fingerprint).toBe(blue!.fingerprint);
  });

  it('DDL on one side changes its fingerprint', async () => {
    const before = outputsOf<Ready>(
      (await run('green', 'allow: [no_replica_identity, unlogged]')).ev,
      'ready',
    );
    await sql(conn(s15, 'app'), 'alter table audit add column reason text');
    const after = outputsOf<Ready>(
      (await run('green', 'allow: [no_replica_identity, unlogged]')).ev,
      'ready',
    );
    expect(after.fingerprint).not.toBe(before.fingerprint);
    await sql(conn(s15, 'app'), 'alter table audit drop column reason');
    const back = outputsOf<Ready>((await run('green', 'allow: [no_replica_identity, unlogged]')).ev, 'ready');
    // A dropped column leaves no trace in the fingerprint: the schemas are equal again.
    expect(back.fingerprint).toBe(before.fingerprint);
  });
});

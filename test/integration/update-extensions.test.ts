// pg.update_extensions on a real PostgreSQL 15 with extensions installed at older versions in two
// databases (as pg_upgrade leaves them): `only_list` changes nothing; the run brings each to its
// default version, read back from the catalogs afterwards.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from '../../tools/testenv/checks.js';
import { type PgServer, startPostgres } from '../../tools/testenv/index.js';
import { events, outputsOf, runCli, workdir } from './cli.js';

let s: PgServer;
beforeAll(async () => {
  s = await startPostgres({ version: 15 });
  const c = { host: s.socketDir, port: s.port, user: 'postgres', database: 'postgres' };
  await sql(c, 'create database app2');
  await sql(c, "create extension pg_trgm version '1.5'");
  await sql({ ...c, database: 'app2' }, "create extension pg_trgm version '1.4'");
  await sql({ ...c, database: 'app2' }, "create extension hstore version '1.7'");
}, 60_000);
afterAll(async () => {
  await s?.stop();
});

async function versions(): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const database of ['postgres', 'app2']) {
    const rows = await sql<{ extname: string; extversion: string }>(
      { host: s.socketDir, port: s.port, user: 'postgres', database },
      "select extname, extversion from pg_extension where extname <> 'plpgsql' order by 1",
    );
    for (const r of rows) out[`${database}.${r.extname}`] = r.extversion;
  }
  return out;
}

describe('pg.update_extensions', () => {
  it('lists, then updates every outdated extension in every database to its default version', async () => {
    const inv = `hosts:
  db:
    transport: local
    pg: { host: ${s.socketDir}, port: ${s.port}, user: postgres, sslmode: disable }
`;
    const pb = (extra: string) => `
- name: extensions
  hosts: db
  steps:
    - id: ext
      pg.update_extensions: { ${extra} }
`;
    const before = await versions();
    expect(before).toEqual({ 'postgres.pg_trgm': '1.5', 'app2.pg_trgm': '1.4', 'app2.hstore': '1.7' });
    const listed = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json'], {
      cwd: workdir({ 'inv.yml': inv, 'pb.yml': pb('only_list: true') }),
    });
    expect(listed.code, listed.stdout + listed.stderr).toBe(0);
    expect(await versions()).toEqual(before);
    const [row] = await sql<{ v: string }>(
      { host: s.socketDir, port: s.port, user: 'postgres', database: 'postgres' },
      "select default_version as v from pg_available_extensions where name = 'pg_trgm'",
    );
    const trgm = row!.v;
    const r = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json'], {
      cwd: workdir({ 'inv.yml': inv, 'pb.yml': pb('') }),
    });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const out = outputsOf<{ updates: { database: string; extension: string; from: string; to: string }[] }>(
      events(r.stdout),
      'ext',
    );
    const after = await versions();
    expect(after['postgres.pg_trgm']).toBe(trgm);
    expect(after['app2.pg_trgm']).toBe(trgm);
    expect(after['app2.hstore']).not.toBe('1.7');
    expect(out.updates.map((u) => `${u.database}.${u.extension} ${u.from}→${u.to}`).sort()).toEqual(
      [
        `app2.hstore 1.7→${after['app2.hstore']}`,
        `app2.pg_trgm 1.4→${trgm}`,
        `postgres.pg_trgm 1.5→${trgm}`,
      ].sort(),
    );
  }, 60_000);
});

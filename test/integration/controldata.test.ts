// pg.controldata on real PostgreSQL 13 and 15: the facts an upgrade compares between nodes agree
// with what the running server says of itself, and are still readable once it is stopped.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PgServer, startPostgres } from '../../tools/testenv/index.js';
import { events, outputsOf, runCli, workdir } from './cli.js';

const servers: Record<number, PgServer> = {};
beforeAll(async () => {
  [servers[13], servers[15]] = await Promise.all([
    startPostgres({ version: 13 }),
    startPostgres({ version: 15 }),
  ]);
}, 60_000);
afterAll(async () => {
  await Promise.all(Object.values(servers).map((s) => s.stop()));
});

const inventory = (s: PgServer) => `
hosts:
  db: { transport: local, vars: { pgdata: ${s.dataDir}, pg_bin_dir: ${s.binDir} } }
`;
const PLAYBOOK = '- name: c\n  hosts: db\n  steps:\n    - id: c\n      pg.controldata: {}\n';

describe.each([13, 15])('pg.controldata on PostgreSQL %i', (version) => {
  it('reports version, identifier, timeline, checksums and sizes as the server does', async () => {
    const s = servers[version]!;
    const r = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json'], {
      cwd: workdir({ 'pb.yml': PLAYBOOK, 'inv.yml': inventory(s) }),
    });
    expect(r.code, r.stderr).toBe(0);
    const c = outputsOf<Record<string, unknown>>(events(r.stdout), 'c');
    const db = new pg.Client({ host: '127.0.0.1', port: s.port, user: 'postgres', database: 'postgres' });
    await db.connect();
    try {
      const sys = (
        await db.query(
          'select system_identifier::text as id, catalog_version_no::text as cat from pg_control_system()',
        )
      ).rows[0];
      const cp = (await db.query('select timeline_id from pg_control_checkpoint()')).rows[0];
      // pg_settings.setting is in base units (bytes), unlike current_setting's "16MB".
      const set = (name: string) =>
        db
          .query('select setting as v from pg_settings where name = $1', [name])
          .then((q) => q.rows[0].v as string);
      expect(c).toMatchObject({
        pg_version: String(version),
        system_identifier: sys.id,
        catalog_version: sys.cat,
        cluster_state: 'in production',
        timeline: cp.timeline_id,
        checksums: (await set('data_checksums')) === 'on',
        block_size: Number(await set('block_size')),
        wal_segment_size: Number(await set('wal_segment_size')),
      });
      expect(c.checkpoint_lsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    } finally {
      await db.end();
    }
  });
});

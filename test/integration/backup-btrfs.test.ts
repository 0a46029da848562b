// The shipped snapshot-backup playbook with the btrfs provider: PGDATA on a btrfs subvolume
// (loop device), a read-only snapshot under a writer, labels beside it, a restore that starts.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BtrfsFs, createBtrfs, type PgServer, startPostgres } from '../../tools/testenv/index.js';
import { events, runCli, workdir } from './cli.js';

const PLAYBOOK = fileURLToPath(new URL('../../playbooks/snapshot-backup.yml', import.meta.url));
let fs: BtrfsFs;
let server: PgServer;

beforeAll(async () => {
  fs = await createBtrfs({ sizeGiB: 2 });
  const data = await fs.createSubvolume('pgdata');
  await fs.createSubvolume('snapshots');
  server = await startPostgres({ version: 15, dataDir: data });
});
afterAll(async () => {
  await server?.stop();
  await fs?.destroy();
});

describe('snapshot-backup.yml with btrfs', () => {
  it('takes a read-only snapshot, keeps the labels beside it, and the restore reaches consistency', async () => {
    const c = new pg.Client({ host: server.host, port: server.port, user: 'postgres', database: 'postgres' });
    await c.connect();
    await c.query('create table w (id bigserial primary key)');
    let running = true;
    const acked: { id: number; at: number }[] = [];
    const writer = (async () => {
      while (running)
        acked.push({
          id: Number((await c.query('insert into w default values returning id')).rows[0].id),
          at: Date.now(),
        });
    })();
    const root = join(fs.mountPoint, 'snapshots');
    const inv = `
hosts:
  db:
    transport: local
    pg: { host: 127.0.0.1, port: ${server.port}, user: postgres, sslmode: disable }
    vars:
      backup_root: ${root}/labels
      snapshot_provider: btrfs
      snapshot_root: ${root}
      verify_root: ${root}
      archive_dir: ${server.archiveDir}
      pg_bin_dir: ${server.binDir}
      pg_os_user: pgrb
      verify_probe_sql: "select count(*) as rows, max(id) as max_id from w"
`;
    let r: Awaited<ReturnType<typeof runCli>>;
    try {
      r = await runCli(['run', PLAYBOOK, '-i', 'inv.yml', '--output', 'json'], {
        cwd: workdir({ 'inv.yml': inv }),
      });
    } finally {
      running = false;
      await writer;
      await c.end();
    }
    expect(
      r.stdout
        .split('\n')
        .filter((l) => l.includes('"status":"failed"'))
        .join('\n'),
    ).toBe('');
    expect(r.code).toBe(0);
    const ev = events(r.stdout);
    const out = (id: string) =>
      ev.find((e) => e.type === 'step_finished' && (e.names as string[]).includes(id))!.outputs as Record<
        string,
        unknown
      >;
    const snap = out('snap') as { provider: string; data: string };
    expect(snap.provider).toBe('btrfs');
    const labels = out('labels') as { dir: string };
    const stop = out('stop') as { labelfile: string };
    expect(readFileSync(join(labels.dir, 'backup_label'), 'utf8')).toBe(stop.labelfile);
    // The snapshot is read-only: the labels could not be inside it, and are not.
    const { execFileSync } = await import('node:child_process');
    expect(execFileSync('btrfs', ['property', 'get', snap.data, 'ro']).toString().trim()).toBe('ro=true');
    const verify = out('verify') as { checks: { probe: { rows: string; max_id: string }[] } };
    const stopCalled = Date.parse(
      ev.find((e) => e.type === 'step_started' && e.stepType === 'pg.backup_stop')!.ts as string,
    );
    const lastBefore = acked.filter((a) => a.at < stopCalled).at(-1)!.id;
    expect(Number(verify.checks.probe[0]!.max_id)).toBeGreaterThanOrEqual(lastBefore);
    expect(Number(verify.checks.probe[0]!.rows)).toBe(Number(verify.checks.probe[0]!.max_id));
  });
});

// GCP persistent-disk snapshots through the real @google-cloud/compute client, against the Compute
// emulator whose disks are directories: a PostgreSQL 15 data directory lives on an emulated disk,
// the shipped snapshot-backup playbook snapshots it under a concurrent writer, and a disk made
// from the snapshot restores to consistency. Faults: a 503 retried, a create retried with the same
// requestId, and the client never loaded by validate or plan.
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ComputeEmulator } from '../../tools/gcp-compute-emulator/index.js';
import { type PgServer, SERVER_USER } from '../../tools/testenv/index.js';
import { CLI, events, outputsOf, runCli, workdir } from './cli.js';
import { startDb1OnEmulatedDisk } from './gce-db1.js';

const PLAYBOOK = fileURLToPath(new URL('../../playbooks/snapshot-backup.yml', import.meta.url));
const RECORD = fileURLToPath(new URL('./fixtures/record-imports.mjs', import.meta.url));
const ZONE = 'europe-west1-b';

let root: string;
let gce: ComputeEmulator;
let s: PgServer;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'pgrb-gcp-'));
  chmodSync(root, 0o755);
  // The data disk is a directory; PGDATA is its data/ subdirectory, as on a mounted disk.
  ({ gce, s } = await startDb1OnEmulatedDisk(root, ZONE, { operationDelayMs: 100, waitMaxMs: 400 }));
}, 60_000);
afterAll(async () => {
  await s?.stop();
  await gce?.stop();
  if (root) rmSync(root, { recursive: true, force: true });
});

const inventory = (extra = '') => `
hosts:
  db1:
    transport: local
    pg: { host: 127.0.0.1, port: ${s.port}, user: postgres, sslmode: disable }
    gcp: { project: ${gce.project}, zone: ${ZONE}, endpoint: { host: 127.0.0.1, port: ${gce.port}, protocol: http }${extra} }
    vars:
      backup_root: ${root}/backups
      archive_dir: ${s.archiveDir}
      pg_bin_dir: ${s.binDir}
      pg_os_user: ${SERVER_USER}
      snapshot_provider: gcp
`;

async function startWriter() {
  const c = new pg.Client({ host: '127.0.0.1', port: s.port, user: 'postgres', database: 'postgres' });
  await c.connect();
  await c.query('create table if not exists t (id bigserial primary key, at timestamptz default now())');
  const acked: { id: number; at: number }[] = [];
  let running = true;
  const loop = (async () => {
    while (running)
      acked.push({
        id: Number((await c.query('insert into t default values returning id')).rows[0].id),
        at: Date.now(),
      });
  })();
  return {
    acked,
    async stop() {
      running = false;
      await loop;
      await c.end();
    },
  };
}

const failedLines = (out: string) =>
  out
    .split('\n')
    .filter((l) => l.includes('"failed"'))
    .join('\n');

describe('gcp.snapshot against the Compute emulator', () => {
  it('backs up PostgreSQL 15 on an emulated disk under a writer; a disk from the snapshot restores to consistency', async () => {
    const writer = await startWriter();
    let r: Awaited<ReturnType<typeof runCli>>;
    try {
      await new Promise((res) => setTimeout(res, 300));
      r = await runCli(['run', PLAYBOOK, '-i', 'inv.yml', '--output', 'json'], {
        cwd: workdir({ 'inv.yml': inventory() }),
      });
    } finally {
      await writer.stop();
    }
    expect(failedLines(r.stdout), r.stderr.slice(-2000)).toBe('');
    expect(r.code).toBe(0);
    const ev = events(r.stdout);
    const snap = outputsOf<{
      snapshots: { name: string; disk: string; device_name: string; status: string }[];
    }>(ev, 'gcp_snap');
    // Discovered from instances.get: the data disk, not the boot disk.
    expect(snap.snapshots.map((x) => [x.disk, x.device_name, x.status])).toEqual([
      ['db1-data', 'pgdata', 'READY'],
    ]);
    const stop = outputsOf<{ lsn: string; labelfile: string; start_lsn: string }>(ev, 'stop');
    const inEmulator = gce.snapshots().find((x) => x.name === snap.snapshots[0]!.name)!;
    expect(inEmulator.status).toBe('READY');
    expect(inEmulator.labels).toMatchObject({
      'pgrb-backup': expect.stringMatching(/^db1-/),
      'pgrb-host': 'db1',
      'pgrb-stop-lsn': stop.lsn.toLowerCase().replace('/', '-'),
      'pgrb-start-lsn': stop.start_lsn.toLowerCase().replace('/', '-'),
    });
    expect(inEmulator.labels!['pgrb-run']).toMatch(/^\d{8}-\d{6}-[a-z0-9]+$/);
    // The labels are stored with the backup, byte for byte, and the manifest names the snapshot.
    const labels = outputsOf<{ dir: string }>(ev, 'labels');
    expect(readFileSync(join(labels.dir, 'backup_label'), 'utf8')).toBe(stop.labelfile);
    const manifest = JSON.parse(readFileSync(join(labels.dir, 'manifest.json'), 'utf8'));
    expect(manifest.snapshots).toEqual([
      expect.objectContaining({ provider: 'gcp', id: snap.snapshots[0]!.name }),
    ]);

    // Restore: a disk from the snapshot, attached, then the labels placed and PostgreSQL started.
    const restored = 'db1-data-restore';
    const v = await runCli(['run', 'restore.yml', '-i', 'inv.yml', '--output', 'json'], {
      cwd: workdir({
        'inv.yml': inventory(),
        'restore.yml': `
- name: restore from the disk snapshot
  hosts: db1
  steps:
    - id: disk
      gcp.disk_from_snapshot: { snapshot: ${snap.snapshots[0]!.name}, disk: ${restored}, keep: true }
    - id: attach
      gcp.attach_disk: { disk: ${restored}, device_name: restore }
    - id: verify
      backup.verify:
        from: ${labels.dir}
        data: ${join(root, 'gce', 'disks', ZONE, restored, 'data')}
        scratch: ${root}/verify
        archive_dir: ${s.archiveDir}
        run_as: ${SERVER_USER}
        checks: { rows: "select max(id) as max, count(*) as n from t" }
`,
      }),
    });
    expect(failedLines(v.stdout), v.stderr.slice(-2000)).toBe('');
    expect(v.code).toBe(0);
    const vev = events(v.stdout);
    expect(gce.disks().find((d) => d.name === restored)).toMatchObject({ status: 'READY' });
    expect(
      gce
        .instances()
        .find((i) => i.name === 'db1')!
        .disks!.map((d) => d.deviceName),
    ).toContain('restore');
    const rows = outputsOf<{ checks: { rows: { max: string; n: string }[] } }>(vev, 'verify').checks.rows[0]!;
    const stopCalled = Date.parse(
      ev.find((e) => e.type === 'step_started' && e.stepType === 'pg.backup_stop')!.ts as string,
    );
    const lastBefore = writer.acked.filter((a) => a.at < stopCalled).at(-1)!.id;
    expect(lastBefore).toBeGreaterThan(10);
    expect(Number(rows.max)).toBeGreaterThanOrEqual(lastBefore);
    expect(Number(rows.n)).toBe(Number(rows.max));
  }, 180_000);

  it('a 503 on the first disks.get is retried and succeeds; a create retried after a lost answer makes no second snapshot', async () => {
    gce.inject({ method: 'GET', path: /\/disks\/db1-data$/, status: 503, times: 1 });
    // The snapshot is made, but the answer is lost: the retry carries the same requestId.
    gce.inject({
      method: 'POST',
      path: /\/disks\/db1-data\/createSnapshot$/,
      status: 503,
      times: 1,
      afterHandling: true,
    });
    const before = gce.requests().length;
    const r = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json'], {
      cwd: workdir({
        // Disks named in the inventory this time (the restore disk of the test before is attached too).
        'inv.yml': inventory(', disks: [{ name: db1-data, device_name: pgdata, pgdata: true }]'),
        'pb.yml': `
- name: snapshot only
  hosts: db1
  steps:
    - id: snap
      gcp.snapshot: { backup_id: faults, keep: true }
`,
      }),
    });
    expect(failedLines(r.stdout), r.stderr.slice(-2000)).toBe('');
    expect(r.code).toBe(0);
    const reqs = gce.requests().slice(before);
    const gets = reqs.filter((q) => q.method === 'GET' && q.path.endsWith('/disks/db1-data'));
    expect(gets.map((q) => q.status).slice(0, 2)).toEqual([503, 200]);
    const creates = reqs.filter(
      (q) =>
        q.path.endsWith('/createSnapshot') &&
        (q.body as { name?: string } | undefined)?.name?.includes('faults'),
    );
    expect(creates.map((q) => q.status)).toEqual([503, 200]);
    expect(creates[0]!.query.requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(creates[1]!.query.requestId).toBe(creates[0]!.query.requestId);
    expect(gce.snapshots().filter((x) => x.labels?.['pgrb-backup'] === 'faults')).toHaveLength(1);
    const log = events(r.stdout)
      .filter((e) => e.type === 'step_output')
      .map((e) => e.text)
      .join('\n');
    expect(log).toContain('retrying');
  }, 60_000);

  it('validate and plan never load the client; a run loads it', async () => {
    const cwd = workdir({
      'inv.yml': inventory(),
      'pb.yml': '- name: s\n  hosts: db1\n  steps:\n    - gcp.snapshot: { backup_id: lazy }\n',
    });
    // Asynchronously: the emulator answers from this very process.
    const loaded = async (args: string[]) => {
      const log = join(cwd, `imports-${args[0]}.log`);
      const { spawn } = await import('node:child_process');
      const p = spawn(process.execPath, ['--import', RECORD, CLI, ...args], {
        cwd,
        env: { ...process.env, PGRB_IMPORT_LOG: log },
        stdio: 'ignore',
      });
      const code = await new Promise<number | null>((res) => p.on('close', res));
      const urls = existsSync(log) ? readFileSync(log, 'utf8') : '';
      return {
        code,
        google: urls.split('\n').filter((u) => /google-cloud\/compute|google-gax/.test(u)).length,
      };
    };
    expect(await loaded(['validate', 'pb.yml', '-i', 'inv.yml'])).toEqual({ code: 0, google: 0 });
    expect(await loaded(['plan', 'pb.yml', '-i', 'inv.yml'])).toEqual({ code: 0, google: 0 });
    const run = await loaded(['run', 'pb.yml', '-i', 'inv.yml']);
    expect(run.code).toBe(0);
    expect(run.google).toBeGreaterThan(0);
  }, 60_000);
  it('a failed run deletes the snapshots it took (undo); keep: true leaves them', async () => {
    const play = (keep: boolean) => `
- name: snapshot, then fail
  hosts: db1
  steps:
    - id: snap
      gcp.snapshot: { backup_id: undo-${keep}, keep: ${keep} }
    - shell: "exit 3"
`;
    const inv = inventory(', disks: [{ name: db1-data, device_name: pgdata }]');
    const r = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json'], {
      cwd: workdir({ 'inv.yml': inv, 'pb.yml': play(false) }),
    });
    expect(r.code).toBe(1);
    expect(events(r.stdout).find((e) => e.type === 'undo_finished')).toMatchObject({
      title: 'gcp.snapshot',
      ok: true,
    });
    expect(gce.snapshots().filter((x) => x.labels?.['pgrb-backup'] === 'undo-false')).toEqual([]);
    expect(gce.snapshotDir('pgrb-undo-false-db1-data')).toBeUndefined();
    const kept = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json'], {
      cwd: workdir({ 'inv.yml': inv, 'pb.yml': play(true) }),
    });
    expect(kept.code).toBe(1);
    expect(
      gce
        .snapshots()
        .filter((x) => x.labels?.['pgrb-backup'] === 'undo-true')
        .map((x) => x.status),
    ).toEqual(['READY']);
  }, 60_000);

  it('a failure after the labels keeps the snapshots with their stop-LSN labels (a complete backup); the summary prints how to delete them', async () => {
    const cwd = workdir({
      'inv.yml': inventory(', disks: [{ name: db1-data, device_name: pgdata }]'),
      'pb.yml': `
- name: gcp backup, then fail
  hosts: db1
  steps:
    - id: start
      pg.backup_start: { label: kept-gcp }
    - id: snap
      gcp.snapshot: { backup_id: kept-gcp }
    - id: stop
      pg.backup_stop: { archive_dir: "{{ archive_dir }}" }
    - gcp.label_snapshots: { snapshots: "{{ snap }}", labels: { pgrb-stop-lsn: "{{ stop.lsn }}" } }
    - backup.write_labels: { to: "{{ backup_root }}/kept-gcp", from: "{{ stop }}", snapshots: ["{{ snap }}"] }
    - shell: "exit 3"
`,
    });
    const r = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json'], { cwd });
    expect(r.code).toBe(1);
    const ev = events(r.stdout);
    expect(ev.filter((e) => e.type === 'undo_kept').map((e) => e.title)).toEqual([
      'gcp.snapshot',
      'gcp.label_snapshots',
      'backup.write_labels',
    ]);
    expect(ev.filter((e) => e.type === 'undo_started').map((e) => e.title)).toEqual(['pg.backup_start']);
    const kept = gce.snapshots().filter((x) => x.labels?.['pgrb-backup'] === 'kept-gcp');
    expect(kept.map((x) => [x.name, x.status])).toEqual([['pgrb-kept-gcp-db1-data', 'READY']]);
    expect(kept[0]!.labels?.['pgrb-stop-lsn']).toMatch(/^\d+-[0-9a-f]+$/);
    const summary = (ev.find((e) => e.type === 'run_finished')!.summary as string[]).join('\n');
    expect(summary).toContain(
      `manifest status complete, not proven to restore by this run). To delete it: gcloud compute snapshots delete pgrb-kept-gcp-db1-data --project ${gce.project} && rm -rf -- ${root}/backups/kept-gcp`,
    );
  }, 60_000);

  it('resume of a backup whose snapshot step timed out finds its snapshot instead of making another', async () => {
    const cwd = workdir({
      'inv.yml': inventory(', disks: [{ name: db1-data, device_name: pgdata }]'),
      'pb.yml': `
- name: slow snapshot
  hosts: db1
  steps:
    - id: snap
      gcp.snapshot: { backup_id: resumed, timeout: 1 }
`,
    });
    gce.slowOperations(3000);
    let first: Awaited<ReturnType<typeof runCli>>;
    try {
      first = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json'], { cwd });
    } finally {
      gce.slowOperations(0);
    }
    expect(first.code).toBe(1);
    const err = String(events(first.stdout).find((e) => e.type === 'step_finished')!.error);
    // The timeout names the disk and the operation.
    expect(err).toMatch(
      /snapshot pgrb-resumed-db1-data of disk db1-data: operation \S+ \(createSnapshot on projects\/pgrb-lab\/zones\/europe-west1-b\/disks\/db1-data\) not DONE within 1s/,
    );
    const runId = String(events(first.stdout).find((e) => e.type === 'run_started')!.runId);
    // Let the slow operation finish, then resume: the step runs again and adopts the snapshot.
    await new Promise((res) => setTimeout(res, 3500));
    const before = gce.requests().filter((q) => q.path.endsWith('/createSnapshot')).length;
    const again = await runCli(['resume', runId, '--output', 'json'], { cwd });
    expect(failedLines(again.stdout), again.stderr).toBe('');
    expect(again.code).toBe(0);
    expect(gce.requests().filter((q) => q.path.endsWith('/createSnapshot')).length).toBe(before);
    expect(gce.snapshots().filter((x) => x.labels?.['pgrb-backup'] === 'resumed')).toHaveLength(1);
    const log = events(again.stdout)
      .filter((e) => e.type === 'step_output')
      .map((e) => e.text)
      .join('\n');
    expect(log).toContain('already exists from this run');
  }, 60_000);

  it('regional disks are snapshotted through regionDisks, and a detached disk is re-attached by the undo', async () => {
    await gce.addDisk({ name: 'db1-wal', region: 'europe-west1', sizeGb: 10 });
    // detach_disk always asks: --yes answers.
    const r = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json', '--yes'], {
      cwd: workdir({
        'inv.yml': inventory(', disks: [{ name: db1-wal, region: europe-west1 }]'),
        'pb.yml': `
- name: regional
  hosts: db1
  steps:
    - id: snap
      gcp.snapshot: { backup_id: regional, keep: true }
    - id: detach
      gcp.detach_disk: { device_name: pgdata }
    - shell: "exit 1"
`,
      }),
    });
    expect(r.code).toBe(1);
    expect(
      outputsOf<{ snapshots: { region: string }[] }>(events(r.stdout), 'snap').snapshots[0]!.region,
    ).toBe('europe-west1');
    expect(
      gce.requests().some((q) => q.path.endsWith('/regions/europe-west1/disks/db1-wal/createSnapshot')),
    ).toBe(true);
    // The undo of the detach attached the disk again under its device name.
    expect(
      gce
        .instances()
        .find((i) => i.name === 'db1')!
        .disks!.map((d) => d.deviceName),
    ).toContain('pgdata');
    expect(gce.requests().filter((q) => q.path.endsWith('/instances/db1/detachDisk'))).toHaveLength(1);
  }, 60_000);
  it('gcp.detach_disk refuses the disk the inventory marks pgdata, and detaches from the instance it names', async () => {
    const pb = (extra: string) => `
- name: detach
  hosts: db1
  steps:
    - id: detach
      gcp.detach_disk: { device_name: pgdata${extra} }
`;
    const guarded = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json', '--yes'], {
      cwd: workdir({
        'inv.yml': inventory(', disks: [{ name: db1-data, device_name: pgdata, pgdata: true }]'),
        'pb.yml': pb(''),
      }),
    });
    expect(guarded.code).toBe(1);
    expect(String(events(guarded.stdout).find((e) => e.type === 'step_finished')!.error)).toContain(
      'which the inventory marks pgdata: true: refusing to detach it',
    );
    expect(
      gce
        .instances()
        .find((i) => i.name === 'db1')!
        .disks!.map((d) => d.deviceName),
    ).toContain('pgdata');

    // Another instance, named in the step: its own disk is the one looked up and detached.
    await gce.addDisk({ name: 'restore-vm-data', zone: ZONE, sizeGb: 10 });
    await gce.addInstance({
      name: 'restore-vm',
      zone: ZONE,
      disks: [{ deviceName: 'pgdata', disk: 'restore-vm-data' }],
    });
    const other = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json', '--yes'], {
      cwd: workdir({ 'inv.yml': inventory(), 'pb.yml': pb(', instance: restore-vm') }),
    });
    expect(failedLines(other.stdout), other.stderr).toBe('');
    expect(outputsOf<{ source: string }>(events(other.stdout), 'detach').source).toMatch(
      /\/disks\/restore-vm-data$/,
    );
    expect(gce.instances().find((i) => i.name === 'restore-vm')!.disks ?? []).toEqual([]);
    expect(
      gce
        .instances()
        .find((i) => i.name === 'db1')!
        .disks!.map((d) => d.deviceName),
    ).toContain('pgdata');
  }, 60_000);
});

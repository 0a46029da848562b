// The shipped GCP restore proof end to end: snapshot-backup.yml with the gcp provider backs up a
// PostgreSQL 15 whose PGDATA is on an emulated disk, then gcp-restore-verify.yml makes a disk from
// the snapshot, attaches it to a scratch instance, bind-mounts the emulator's disk directory (the
// stand-in for /dev/disk/by-id/google-DEVICE), recovers to consistency, and detaches and deletes
// the disk — after a failed proof too. Real @google-cloud/compute client, real PostgreSQL, real
// mounts (root); what is left is asked of the emulator and of /proc/self/mounts.
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ComputeEmulator } from '../../tools/gcp-compute-emulator/index.js';
import { type PgServer, SERVER_USER } from '../../tools/testenv/index.js';
import { events, outputsOf, runCli, workdir } from './cli.js';
import { startDb1OnEmulatedDisk } from './gce-db1.js';

const BACKUP = fileURLToPath(new URL('../../playbooks/snapshot-backup.yml', import.meta.url));
const RESTORE = fileURLToPath(new URL('../../playbooks/gcp-restore-verify.yml', import.meta.url));
const ZONE = 'europe-west1-b';
const ROWS = 500;

let root: string;
let gce: ComputeEmulator;
let s: PgServer;
let backupDir: string;
let cwd: string;

const inventory = () => `
hosts:
  db1:
    transport: local
    pg: { host: 127.0.0.1, port: ${s.port}, user: postgres, sslmode: disable }
    gcp: { project: ${gce.project}, zone: ${ZONE}, endpoint: { host: 127.0.0.1, port: ${gce.port}, protocol: http } }
    vars:
      backup_root: ${root}/backups
      archive_dir: ${s.archiveDir}
      pg_bin_dir: ${s.binDir}
      pg_os_user: ${SERVER_USER}
      snapshot_provider: gcp
  scratch:
    transport: local
    gcp: { project: ${gce.project}, zone: ${ZONE}, instance: restore-vm, endpoint: { host: 127.0.0.1, port: ${gce.port}, protocol: http } }
    vars:
      archive_dir: ${s.archiveDir}
      pg_bin_dir: ${s.binDir}
      pg_os_user: ${SERVER_USER}
      gcp_restore_pgdata_subdir: data
      gcp_restore_emulator_disks: ${root}/gce/disks/${ZONE}
      gcp_restore_mount_root: ${root}/mnt
      verify_root: ${root}/verify
groups:
  gcp_restore: { hosts: [scratch] }
`;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'pgrb-gcpr-'));
  chmodSync(root, 0o755);
  ({ gce, s } = await startDb1OnEmulatedDisk(root, ZONE, { operationDelayMs: 50, waitMaxMs: 400 }));
  await gce.addDisk({ name: 'restore-vm-boot', zone: ZONE, sizeGb: 10 });
  await gce.addInstance({
    name: 'restore-vm',
    zone: ZONE,
    disks: [{ deviceName: 'boot', disk: 'restore-vm-boot', boot: true }],
  });
  const c = new pg.Client({ host: '127.0.0.1', port: s.port, user: 'postgres', database: 'postgres' });
  await c.connect();
  await c.query(`create table t as select g as id from generate_series(1, ${ROWS}) g`);
  await c.end();
  cwd = workdir({ 'inv.yml': inventory() });
  const r = await runCli(['run', BACKUP, '-i', 'inv.yml', '--limit', 'db1', '--output', 'json'], { cwd });
  if (r.code !== 0) throw new Error(`snapshot-backup.yml failed:\n${r.stdout.slice(-3000)}\n${r.stderr}`);
  backupDir = outputsOf<{ dir: string }>(events(r.stdout), 'labels').dir;
}, 90_000);

afterAll(async () => {
  await s?.stop();
  await gce?.stop();
  if (root) rmSync(root, { recursive: true, force: true });
});

const restoreDisks = () => gce.disks().filter((d) => d.name.startsWith('pgrb-restore-'));
const scratchAttached = () =>
  (gce.instances().find((i) => i.name === 'restore-vm')!.disks ?? []).map((d) => d.deviceName);
const mountsUnder = (dir: string) =>
  readFileSync('/proc/self/mounts', 'utf8')
    .split('\n')
    .filter((l) => l.split(' ')[1]?.startsWith(dir));
const manifest = (dir = backupDir) => JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
const failedLines = (out: string) =>
  out
    .split('\n')
    .filter((l) => l.includes('"failed"'))
    .join('\n');
const restore = (...extra: string[]) =>
  runCli(['run', RESTORE, '-i', 'inv.yml', '-e', `backup_dir=${backupDir}`, '--output', 'json', ...extra], {
    cwd,
  });

describe('gcp-restore-verify.yml against the Compute emulator', () => {
  it('plan shows the Compute calls: the disk from the snapshot, the attach, the detach and delete', async () => {
    const r = await runCli(['plan', RESTORE, '-i', 'inv.yml', '-e', `backup_dir=${backupDir}`], { cwd });
    expect(r.code, r.stderr).toBe(0);
    const base = `http://127.0.0.1:${gce.port}/compute/v1/projects/${gce.project}/zones/${ZONE}`;
    expect(r.stdout).toContain(`cat ${backupDir}/manifest.json`);
    expect(r.stdout).toContain(`POST ${base}/disks?requestId={uuid}`);
    expect(r.stdout).toContain(`POST ${base}/instances/restore-vm/attachDisk?requestId={uuid}`);
    // The emulator's stand-in for /dev/disk/by-id/google-DEVICE: the disk's directory, bind-mounted.
    expect(r.stdout).toContain(
      `mount -o bind -- '${root}/gce/disks/${ZONE}/pgrb-restore-scratch-(known after apply)'`,
    );
    expect(r.stdout).toContain(
      `DELETE ${base}/disks/pgrb-restore-scratch-(known after apply)?requestId={uuid}`,
    );
    // Nothing was asked of the emulator beyond what the backup did.
    expect(gce.requests().filter((q) => q.path.includes('pgrb-restore'))).toEqual([]);
  });

  it('refuses a backup without a GCP snapshot before anything is created', async () => {
    const copyOnly = join(root, 'backups', 'copy-only');
    cpSync(backupDir, copyOnly, { recursive: true });
    const m = manifest(copyOnly);
    m.snapshots = [{ provider: 'copy', id: '/somewhere', data: '/somewhere' }];
    writeFileSync(join(copyOnly, 'manifest.json'), JSON.stringify(m));
    const before = gce.requests().length;
    const r = await runCli(
      ['run', RESTORE, '-i', 'inv.yml', '-e', `backup_dir=${copyOnly}`, '--output', 'json'],
      { cwd },
    );
    expect(r.code).toBe(1);
    const err = String(events(r.stdout).find((e) => e.type === 'step_finished' && e.error)!.error);
    expect(err).toContain(
      `the backup in ${copyOnly} has no GCP disk snapshot (its manifest names only copy snapshots)`,
    );
    const mutating = gce
      .requests()
      .slice(before)
      .filter((q) => q.method !== 'GET');
    expect(mutating).toEqual([]);
    expect(restoreDisks()).toEqual([]);

    // Two disks' snapshots, none marked pgdata: which one to restore is asked for, not guessed.
    const twoDisks = join(root, 'backups', 'two-disks');
    cpSync(backupDir, twoDisks, { recursive: true });
    const m2 = manifest(twoDisks);
    const first = m2.snapshots[0].snapshots[0];
    m2.snapshots[0].snapshots.push({ ...first, name: 'pgrb-other-db1-wal', disk: 'db1-wal' });
    writeFileSync(join(twoDisks, 'manifest.json'), JSON.stringify(m2));
    const two = await runCli(
      ['run', RESTORE, '-i', 'inv.yml', '-e', `backup_dir=${twoDisks}`, '--output', 'json'],
      { cwd },
    );
    expect(two.code).toBe(1);
    expect(String(events(two.stdout).find((e) => e.type === 'step_finished' && e.error)!.error)).toContain(
      `has 2 disk snapshots (${first.name} (disk db1-data), pgrb-other-db1-wal (disk db1-wal)) and none is marked pgdata: say which disk held PGDATA`,
    );
    expect(
      gce
        .requests()
        .slice(before)
        .filter((q) => q.method !== 'GET'),
    ).toEqual([]);
  });

  it('gcp.delete_disk refuses a disk this run did not make', async () => {
    const r = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json'], {
      cwd: workdir({
        'inv.yml': inventory(),
        'pb.yml': '- name: d\n  hosts: scratch\n  steps:\n    - gcp.delete_disk: { disk: restore-vm-boot }\n',
      }),
    });
    expect(r.code).toBe(1);
    expect(String(events(r.stdout).find((e) => e.type === 'step_finished' && e.error)!.error)).toMatch(
      /^disk restore-vm-boot was not made by this run \(its label pgrb-run is missing, this run is "\d{8}-\d{6}-[a-z0-9]+"\): refusing to delete it/,
    );
    expect(gce.disks().find((d) => d.name === 'restore-vm-boot')).toMatchObject({ status: 'READY' });
    expect(scratchAttached()).toEqual(['boot']);
  });

  it('a failed check: exit 1, the disk it made detached and deleted, nothing mounted, the manifest verify_failed', async () => {
    const before = gce.requests().length;
    const r = await restore('-e', 'verify_probe_sql=select * from no_such_table');
    expect(r.code).toBe(1);
    const ev = events(r.stdout);
    const made = outputsOf<{ name: string }>(ev, 'disk').name;
    expect(made).toMatch(/^pgrb-restore-scratch-\d{8}-\d{6}-[a-z0-9]+$/);
    const reqs = gce.requests().slice(before);
    // It got as far as a disk attached to the scratch instance...
    expect(reqs.some((q) => q.method === 'POST' && q.path.endsWith(`/instances/restore-vm/attachDisk`))).toBe(
      true,
    );
    // ...and the always clean-up detached and deleted it; the undo found nothing left to do.
    expect(
      reqs.filter((q) => q.path.endsWith('/instances/restore-vm/detachDisk')).map((q) => q.status),
    ).toEqual([200]);
    expect(
      reqs.filter((q) => q.method === 'DELETE' && q.path.endsWith(`/disks/${made}`)).map((q) => q.status),
    ).toContain(200);
    expect(outputsOf<{ detached: string[]; deleted: boolean }>(ev, 'deleted')).toEqual({
      name: made,
      detached: [`restore-vm:${made}`],
      deleted: true,
    });
    // The undo of the mount, the attach and the disk ran after the clean-up, and found it done.
    const undone = ev.filter((e) => e.type === 'undo_finished');
    expect(undone.length).toBe(3);
    expect(undone.every((e) => e.ok === true)).toBe(true);
    const log = ev
      .filter((e) => e.type === 'step_output')
      .map((e) => e.text)
      .join('\n');
    expect(log).toContain(`${made}: no longer attached to restore-vm as ${made}, nothing to detach`);
    expect(restoreDisks()).toEqual([]);
    expect(scratchAttached()).toEqual(['boot']);
    expect(mountsUnder(root)).toEqual([]);
    expect(existsSync(join(root, 'mnt')) ? readdirSync(join(root, 'mnt')) : []).toEqual([]);
    const m = manifest();
    expect(m.status).toBe('verify_failed');
    expect(m.verify).toMatchObject({ status: 'failed', reason: expect.stringContaining('no_such_table') });
  }, 60_000);

  it('restores to consistency (exit 0), then nothing is left: no restore disk, nothing attached or mounted; the manifest records the proof', async () => {
    const r = await restore('-e', 'verify_probe_sql=select count(*) as n, max(id) as max from t');
    expect(failedLines(r.stdout), r.stderr.slice(-2000)).toBe('');
    expect(r.code).toBe(0);
    const ev = events(r.stdout);
    const snaps = outputsOf<{ pgdata: { name: string; disk: string } }>(ev, 'snaps');
    expect(snaps.pgdata.disk).toBe('db1-data');
    expect(manifest().snapshots[0].snapshots[0].name).toBe(snaps.pgdata.name);
    const verify = outputsOf<{ consistent_lsn: string; checks: { probe: { n: number; max: number }[] } }>(
      ev,
      'verify',
    );
    expect(verify.checks.probe).toEqual([{ n: ROWS, max: ROWS }]);
    // A disk of its own (the run id), not the failed run's name.
    const made = outputsOf<{ name: string }>(ev, 'disk').name;
    const runId = String(ev.find((e) => e.type === 'run_started')!.runId);
    expect(made).toBe(`pgrb-restore-scratch-${runId}`);
    expect(restoreDisks()).toEqual([]);
    expect(scratchAttached()).toEqual(['boot']);
    expect(mountsUnder(root)).toEqual([]);
    expect(readdirSync(join(root, 'mnt'))).toEqual([]);
    // The proof succeeded: the backup the failed check marked verify_failed is complete again.
    const m = manifest();
    expect(m.status).toBe('complete');
    expect(m.verify).toMatchObject({ status: 'ok', consistent_lsn: verify.consistent_lsn });
    // The source disk and its snapshot are untouched.
    expect(gce.disks().find((d) => d.name === 'db1-data')).toMatchObject({ status: 'READY' });
    expect(gce.snapshots().find((x) => x.name === snaps.pgdata.name)).toMatchObject({ status: 'READY' });
  }, 60_000);
});

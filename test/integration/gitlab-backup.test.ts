// The shipped snapshot-backup playbook the way GitLab ran it, against a real etcd + Patroni
// cluster: scheduled Chef runs stopped, Patroni paused and verified on every member, the backup
// taken on the leader (found from Patroni, guarded by requires_leader), labels kept, the restore
// proven; then Patroni resumed and Chef re-enabled — also when a step fails.
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ComputeEmulator, startComputeEmulator } from '../../tools/gcp-compute-emulator/index.js';
import {
  type EtcdServer,
  httpRequest,
  type PatroniCluster,
  SERVER_USER,
  startEtcd,
  startPatroniCluster,
} from '../../tools/testenv/index.js';
import { events, journalOf, outputsOf, runCli, workdir } from './cli.js';

const PLAYBOOK = fileURLToPath(new URL('../../playbooks/snapshot-backup.yml', import.meta.url));

let etcd: EtcdServer;
let cluster: PatroniCluster;
let gce: ComputeEmulator;
const ZONE = 'us-east1-c';

beforeAll(async () => {
  etcd = await startEtcd();
  cluster = await startPatroniCluster({ etcd, members: 3 });
  // Each member is also a GCE instance with a data disk (for the gcp provider).
  gce = await startComputeEmulator({
    root: mkdtempSync(join(tmpdir(), 'pgrb-gce-')),
    operationDelayMs: 100,
    waitMaxMs: 400,
  });
  for (const m of cluster.members) {
    await gce.addDisk({ name: `${m.name}-data`, zone: ZONE, sizeGb: 10 });
    await gce.addInstance({
      name: m.name,
      zone: ZONE,
      disks: [{ deviceName: 'pgdata', disk: `${m.name}-data` }],
    });
  }
}, 90_000);
afterAll(async () => {
  await cluster?.stop();
  await etcd?.stop();
  await gce?.stop();
});

function setup() {
  const root = mkdtempSync(join(tmpdir(), 'pgrb-gitlab-'));
  chmodSync(root, 0o755);
  const lock = join(root, 'chef.disabled');
  const hosts = cluster.members
    .map(
      (m) => `  ${m.name}:
    transport: local
    pg: { host: ${m.socketDir}, port: ${m.pgPort}, user: postgres, sslmode: disable }
    patroni: { url: "${m.restUrl}", timeout: 2 }
    gcp: { project: ${gce.project}, zone: ${ZONE}, endpoint: { host: 127.0.0.1, port: ${gce.port}, protocol: http } }
    vars:
      backup_root: ${root}/backups
      archive_dir: ${cluster.archiveDir}
      pg_bin_dir: ${cluster.binDir}
      pg_os_user: ${SERVER_USER}
      chef_managed: true
      chef_lock_file: ${lock}`,
    )
    .join('\n');
  return { root, lock, cwd: workdir({ 'inv.yml': `hosts:\n${hosts}\n` }) };
}

async function pausedOn(): Promise<boolean[]> {
  return Promise.all(
    cluster.members.map(
      async (m) => JSON.parse((await httpRequest('GET', `${m.restUrl}/patroni`)).body).pause === true,
    ),
  );
}

describe('snapshot-backup.yml on a Patroni cluster with Chef', () => {
  it('without --limit on three members: disables Chef, pauses Patroni once, backs up the leader only, proves the restore, then resumes and re-enables', async () => {
    const leader = await cluster.leader();
    const { root, lock, cwd } = setup();
    // plan --check already plans the backup on the leader alone.
    const checked = await runCli(['plan', PLAYBOOK, '-i', 'inv.yml', '--check', '--format', 'json'], { cwd });
    expect(checked.code, checked.stderr).toBe(0);
    const planned = JSON.parse(checked.stdout).plays[0];
    expect(planned.hosts).toEqual([leader]);
    const r = await runCli(['run', PLAYBOOK, '-i', 'inv.yml', '--output', 'json'], { cwd });
    expect(
      r.code,
      r.stdout
        .split('\n')
        .filter((l) => l.includes('"failed"'))
        .join('\n') + r.stderr,
    ).toBe(0);
    const ev = events(r.stdout);
    expect(ev.find((e) => e.type === 'play_started')).toMatchObject({ hosts: [leader] });
    const order = ev.filter((e) => e.type === 'step_finished' && e.status === 'ok').map((e) => e.stepType);
    expect(order).toEqual([
      'chef.disable',
      'patroni.pause',
      'pg.backup_start',
      'fs.snapshot',
      'pg.backup_stop',
      'backup.write_labels',
      'backup.verify',
      'patroni.resume',
      'chef.enable',
      'shell',
    ]);
    expect(outputsOf(ev, 'chef_off')).toMatchObject({ disabled_by_run: true, mode: 'lock_file' });
    expect(outputsOf(ev, 'pause')).toMatchObject({ paused_by_run: true });
    // The backup steps ran only after Patroni confirmed the host still led.
    expect(
      ev.filter((e) => e.type === 'step_output' && String(e.text).startsWith('leader confirmed')),
    ).toHaveLength(2);
    const labels = outputsOf<{ dir: string }>(ev, 'labels');
    const manifest = JSON.parse(readFileSync(join(labels.dir, 'manifest.json'), 'utf8'));
    expect(manifest.status).not.toBe('void');
    expect(readFileSync(join(labels.dir, 'backup_label'), 'utf8')).toMatch(/^START WAL LOCATION: /);
    expect(outputsOf(ev, 'verify')).toBeTruthy();
    // Clean-up done: nothing paused, no lock left.
    expect(await pausedOn()).toEqual([false, false, false]);
    expect(existsSync(lock)).toBe(false);
    // One pause, one backup: the truth on disk is one backup directory, the leader's.
    expect(ev.filter((e) => e.type === 'step_started' && e.stepType === 'patroni.pause')).toHaveLength(1);
    expect(
      readdirSync(join(root, 'backups')).filter((d) => !d.endsWith('.snap') && !d.endsWith('.verify')),
    ).toEqual([`${leader}-${String(ev.find((e) => e.type === 'run_started')?.runId)}`]);
  }, 120_000);

  it('a failing restore proof keeps the backup marked verify_failed, and still resumes Patroni and re-enables Chef', async () => {
    const { lock, cwd } = setup();
    const r = await runCli(
      [
        'run',
        PLAYBOOK,
        '-i',
        'inv.yml',
        '--limit',
        'patroni_leader',
        '--output',
        'json',
        '-e',
        'verify_probe_sql=select 1/0 as boom',
      ],
      { cwd },
    );
    expect(r.code).toBe(1);
    const ev = events(r.stdout);
    const failed = ev.find((e) => e.type === 'step_finished' && e.status === 'failed')!;
    expect(failed.stepType).toBe('backup.verify');
    const journal = journalOf(cwd);
    const undone = journal.filter((e) => e.type === 'undo_finished').map((e) => [e.title, e.ok]);
    expect(undone).toEqual(
      expect.arrayContaining([['Stop scheduled Chef runs (one could revert the Patroni pause)', true]]),
    );
    // The backup is complete, only unproven: kept, with its copy, and the manifest says why.
    expect(journal.filter((e) => e.type === 'undo_kept').map((e) => e.title)).toEqual([
      'Snapshot PGDATA',
      'Keep the labels with the backup',
    ]);
    const labels = ev.find((e) => e.type === 'step_finished' && e.stepType === 'backup.write_labels')!
      .outputs as { dir: string };
    const manifest = JSON.parse(readFileSync(join(labels.dir, 'manifest.json'), 'utf8'));
    expect(manifest.status).toBe('verify_failed');
    expect(manifest.verify.reason).toContain('division by zero');
    expect(existsSync(join(`${labels.dir}.snap`, 'data', 'PG_VERSION'))).toBe(true);
    const summary = (ev.find((e) => e.type === 'run_finished')!.summary as string[]).join('\n');
    expect(summary).toContain(`kept in ${labels.dir} on `);
    expect(summary).toContain('manifest status verify_failed: check failed on the restored copy');
    const resume = ev.find((e) => e.type === 'step_finished' && e.stepType === 'patroni.resume')!;
    expect(resume).toMatchObject({ status: 'ok', outputs: { resumed: true } });
    expect(await pausedOn()).toEqual([false, false, false]);
    expect(existsSync(lock)).toBe(false);
  }, 120_000);
  it('gcp provider: a snapshot operation ending in QUOTA_EXCEEDED fails the step with that reason; the backup is stopped, Patroni resumed, Chef re-enabled', async () => {
    const { lock, cwd } = setup();
    gce.failOperations({
      match: /createSnapshot/,
      code: 'QUOTA_EXCEEDED',
      message: "Quota 'SNAPSHOTS' exceeded.  Limit: 0.0 globally.",
    });
    const r = await runCli(
      [
        'run',
        PLAYBOOK,
        '-i',
        'inv.yml',
        '--limit',
        'patroni_leader',
        '--output',
        'json',
        '-e',
        'snapshot_provider=gcp',
      ],
      { cwd },
    );
    expect(r.code).toBe(1);
    const ev = events(r.stdout);
    const failed = ev.find((e) => e.type === 'step_finished' && e.status === 'failed')!;
    expect(failed.stepType).toBe('gcp.snapshot');
    expect(String(failed.error)).toContain('QUOTA_EXCEEDED');
    expect(String(failed.error)).toContain("Quota 'SNAPSHOTS' exceeded");
    const undone = journalOf(cwd)
      .filter((e) => e.type === 'undo_finished')
      .map((e) => [e.title, e.ok]);
    expect(undone).toEqual([
      ['Start the backup on a held session', true],
      ['Pause Patroni (no failover while the backup runs)', true],
      ['Stop scheduled Chef runs (one could revert the Patroni pause)', true],
    ]);
    const resume = ev.find((e) => e.type === 'step_finished' && e.stepType === 'patroni.resume')!;
    expect(resume).toMatchObject({ status: 'ok', outputs: { resumed: true } });
    expect(await pausedOn()).toEqual([false, false, false]);
    expect(existsSync(lock)).toBe(false);
    expect(gce.snapshots()).toEqual([]);
  }, 120_000);
});

// Issue 16, item 2: a restore proof that fails keeps the backup it could not prove. The shipped
// snapshot-backup.yml on real PostgreSQL 15, its proof failing for an environmental reason (the
// scratch server's socket taken by another process): the run fails, the backup's copy, labels and
// manifest stay, the manifest says `verify_failed` with the reason, the summary says where it is
// and how to delete it. Proving it again succeeds once the socket is free and marks it complete;
// the printed command deletes it. Before the labels are written, a copy is still undone.
import { execSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lookupUser, type PgServer, SERVER_USER, spawnAs, startPostgres } from '../../tools/testenv/index.js';
import { events, journalOf, runCli, waitUntil, workdir } from './cli.js';

const BACKUP = fileURLToPath(new URL('../../playbooks/snapshot-backup.yml', import.meta.url));
const RESTORE_VERIFY = fileURLToPath(new URL('../../playbooks/restore-verify.yml', import.meta.url));

let s: PgServer;
beforeAll(async () => {
  s = await startPostgres({ version: 15 });
});
afterAll(async () => {
  await s?.stop();
});

function scratchRoot(): string {
  const d = mkdtempSync(join(tmpdir(), 'pgrb-keep-'));
  chmodSync(d, 0o755);
  return d;
}

const inventory = (root: string) => `
hosts:
  db:
    transport: local
    pg: { host: 127.0.0.1, port: ${s.port}, user: postgres, sslmode: disable }
    vars:
      backup_root: ${root}/backups
      archive_dir: ${s.archiveDir}
      pg_bin_dir: ${s.binDir}
      pg_os_user: pgrb
`;

/** The summary of the run, one string. */
const summaryOf = (ev: Record<string, unknown>[]) =>
  (ev.find((e) => e.type === 'run_finished')!.summary as string[]).join('\n');

const manifestOf = (dir: string) => JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));

/**
 * Another server's socket where the proof's scratch server would listen: a process of the server
 * user listening on the Unix socket, with the lock file naming it, as a running postmaster leaves
 * them. PostgreSQL refuses to start on it ("lock file ... already exists").
 */
async function occupySocket(scratch: string): Promise<{ close(): Promise<void> }> {
  const dir = `/tmp/.pgrb-${createHash('sha1').update(scratch).digest('hex').slice(0, 12)}`;
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const { uid, gid } = await lookupUser(SERVER_USER);
  chownSync(dir, uid, gid);
  const sock = join(dir, '.s.PGSQL.5432');
  const holder = await spawnAs(
    SERVER_USER,
    [
      process.execPath,
      '-e',
      `require('net').createServer((c) => c.destroy()).listen(${JSON.stringify(sock)}, () =>
        require('fs').writeFileSync(${JSON.stringify(`${sock}.lock`)}, process.pid + '\\n' + ${JSON.stringify(dir)} + '\\n'))`,
    ],
    { dieWithParent: true },
  );
  await waitUntil('the socket holder never wrote its lock file', () => existsSync(`${sock}.lock`));
  return {
    close: async () => {
      const gone = new Promise((res) => holder.once('exit', res));
      holder.kill('SIGTERM');
      await gone;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

describe('a restore proof that fails keeps the backup (issue 16)', () => {
  it('snapshot-backup.yml, the scratch socket in use: exit 1, copy, labels and a verify_failed manifest kept, the summary says where; proven later, then deleted by the printed command', async () => {
    const root = scratchRoot();
    const id = 'kept-socket';
    const dir = join(root, 'backups', id);
    const snap = `${dir}.snap`;
    const taken = await occupySocket(`${dir}.verify`);
    const cwd = workdir({ 'inv.yml': inventory(root) });
    let r: Awaited<ReturnType<typeof runCli>>;
    try {
      r = await runCli(['run', BACKUP, '-i', 'inv.yml', '--output', 'json', '-e', `backup_id=${id}`], {
        cwd,
      });
    } finally {
      await taken.close();
    }
    expect(r.code, r.stdout.slice(-3000) + r.stderr).toBe(1);
    const ev = events(r.stdout);
    const failed = ev.find((e) => e.type === 'step_finished' && e.status === 'failed')!;
    expect(failed.stepType).toBe('backup.verify');
    expect(String(failed.error)).toContain('lock file');
    expect(String(failed.error)).toContain(
      `the backup is kept, marked verify_failed in ${dir}/manifest.json`,
    );

    // Everything of the backup is still there: the copy (pg_control last included), the labels,
    // and a manifest that says why it is unproven.
    expect(existsSync(join(snap, 'data', 'PG_VERSION'))).toBe(true);
    expect(existsSync(join(snap, 'data', 'global', 'pg_control'))).toBe(true);
    expect(readFileSync(join(dir, 'backup_label'), 'utf8')).toContain(`pgrunbook ${id}`);
    const m = manifestOf(dir);
    expect(m.status).toBe('verify_failed');
    expect(m.verify).toMatchObject({ status: 'failed' });
    expect(m.verify.reason).toContain('lock file');
    expect(m.snapshots[0]).toMatchObject({ provider: 'copy', id: snap });
    // The proof's own scratch copy is gone: only the backup is kept.
    expect(existsSync(`${dir}.verify`)).toBe(false);

    // The journal says truthfully what was kept and that no undo removed it.
    const journal = journalOf(cwd);
    const kept = journal.filter((e) => e.type === 'undo_kept').map((e) => e.title);
    expect(kept.sort()).toEqual(['Keep the labels with the backup', 'Snapshot PGDATA']);
    expect(journal.filter((e) => e.type === 'undo_started').map((e) => e.title)).not.toContain(
      'Snapshot PGDATA',
    );

    // The summary: where, the manifest's status and reason, and how to delete it.
    const summary = summaryOf(ev);
    expect(summary).toContain('Kept, not undone');
    expect(summary).toContain(
      `backup ${id} kept in ${dir} on db (${dir}/manifest.json: manifest status verify_failed:`,
    );
    expect(summary).toMatch(/manifest status verify_failed: [^\n]*lock file/);
    const del = summary.match(/To delete it: (.*)$/m)?.[1];
    expect(del).toBe(`rm -rf -- ${snap} && rm -rf -- ${dir}`);

    // Proving it again, the socket free now: it restores, and the manifest says complete again.
    const again = await runCli(
      ['run', RESTORE_VERIFY, '-i', 'inv.yml', '--output', 'json', '-e', `backup_dir=${dir}`],
      { cwd: workdir({ 'inv.yml': inventory(root) }) },
    );
    expect(again.code, again.stdout.slice(-3000)).toBe(0);
    const proven = manifestOf(dir);
    expect(proven.status).toBe('complete');
    expect(proven.verify).toMatchObject({ status: 'ok' });
    expect(proven.verify.consistent_lsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);

    // The explicit clean-up the summary printed removes all of it.
    execSync(del!, { shell: '/bin/sh' });
    expect(existsSync(dir)).toBe(false);
    expect(existsSync(snap)).toBe(false);
  }, 180_000);

  it('before the labels a copy is undone; after them a later failure keeps the backup complete', async () => {
    const root = scratchRoot();
    const pb = (failAfterLabels: boolean) => `
- name: backup, then fail
  hosts: db
  steps:
    - id: start
      pg.backup_start: { label: "keep-{{ run.id }}" }
    - id: snap
      fs.snapshot: { provider: copy, to: "${root}/b.snap" }
    - id: stop
      pg.backup_stop: { archive_dir: "${s.archiveDir}" }
${
  failAfterLabels
    ? `    - id: labels
      backup.write_labels: { to: "${root}/b", from: "{{ stop }}", snapshots: ["{{ snap }}"], backup_id: b }
`
    : ''
}    - name: fail on purpose
      shell: "exit 3"
`;
    // Without labels the copy is not a backup: the undo removes it.
    const before = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json'], {
      cwd: workdir({ 'inv.yml': inventory(root), 'pb.yml': pb(false) }),
    });
    expect(before.code).toBe(1);
    const bev = events(before.stdout);
    expect(bev.filter((e) => e.type === 'undo_finished' && e.ok).map((e) => e.title)).toContain(
      'fs.snapshot',
    );
    expect(bev.some((e) => e.type === 'undo_kept')).toBe(false);
    expect(existsSync(join(root, 'b.snap', 'data'))).toBe(false);
    expect(summaryOf(bev)).not.toContain('Kept');

    // With labels written it is a complete backup: kept, and the manifest still says complete.
    const after = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json'], {
      cwd: workdir({ 'inv.yml': inventory(root), 'pb.yml': pb(true) }),
    });
    expect(after.code).toBe(1);
    const aev = events(after.stdout);
    // Both kept by the labels step: the copy when the manifest said complete, then the labels.
    const labelsAt = aev.find(
      (e) => e.type === 'step_finished' && e.stepType === 'backup.write_labels',
    )!.address;
    expect(aev.filter((e) => e.type === 'undo_kept').map((e) => [e.title, e.by])).toEqual([
      ['fs.snapshot', labelsAt],
      ['backup.write_labels', labelsAt],
    ]);
    expect(aev.filter((e) => e.type === 'undo_started').map((e) => e.title)).not.toContain('fs.snapshot');
    expect(existsSync(join(root, 'b.snap', 'data', 'PG_VERSION'))).toBe(true);
    expect(manifestOf(join(root, 'b')).status).toBe('complete');
    expect(summaryOf(aev)).toContain(
      `backup b kept in ${root}/b on db (${root}/b/manifest.json: manifest status complete, not proven to restore by this run). To delete it: rm -rf -- ${root}/b.snap && rm -rf -- ${root}/b`,
    );
  }, 120_000);
});

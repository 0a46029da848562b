// Issue 16, item 2, in process: which undo entries a completed backup keeps (UndoStack.takeFor),
// and the manifest of a kept backup on a real local transport: who may read a verify_failed one,
// how a proof is recorded in it, and the line a failed run's summary prints about it.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LocalTransport } from '../../../src/connections/local.js';
import { type UndoEntry, UndoStack } from '../../../src/runner/compensation.js';
import { describeKept, readCheckedManifest, recordVerify } from '../../../src/steps/backup/manifest.js';

const root = mkdtempSync(join(tmpdir(), 'pgrb-manifest-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const t = new LocalTransport();
const signal = new AbortController().signal;

const entry = (
  address: string,
  host: string,
  params: Record<string, unknown>,
  outputs: unknown,
): UndoEntry => ({
  address,
  title: address,
  host,
  type: 'x',
  params,
  outputs,
  action: 'undo',
  ops: [],
});

describe('UndoStack.takeFor', () => {
  it('takes the entries on the host that registered a kept value or were given one, and no other', () => {
    const snap = { provider: 'copy', id: '/b.snap', data: '/b.snap/data', tablespaces: [] };
    const s = new UndoStack();
    s.push(entry('start', 'a', {}, { lsn: '0/1' }));
    s.push(entry('snap', 'a', { to: '/b.snap' }, snap));
    s.push(entry('label', 'a', { snapshots: { ...snap } }, { labeled: [] }));
    s.push(entry('snap-b', 'b', { to: '/b.snap' }, snap));
    s.push(entry('other', 'a', { to: '/c' }, { ...snap, id: '/c' }));
    // Key order does not matter: a rendered template may order keys differently.
    const reordered = { tablespaces: [], data: '/b.snap/data', id: '/b.snap', provider: 'copy' };
    expect(s.takeFor('a', [reordered, 'a string', null]).map((e) => e.address)).toEqual(['snap', 'label']);
    expect(s.entries.map((e) => e.address)).toEqual(['start', 'snap-b', 'other']);
    expect(s.takeFor('a', [])).toEqual([]);
  });
});

function backup(name: string, status: string, extra: Record<string, unknown> = {}): string {
  const dir = mkdtempSync(join(root, `${name}-`));
  writeFileSync(join(dir, 'backup_label'), 'START WAL LOCATION: 0/2000028\n');
  const sha = '3b5f4b4e1c1c37d9b2d4ad5c2c0c8c9bd2a4c4b0c0b1f7b6a27ff4d0bb1b7f6d';
  writeFileSync(
    join(dir, 'manifest.json'),
    JSON.stringify({
      status,
      backup_id: name,
      snapshots: [],
      files: { backup_label: { sha256: sha } },
      ...extra,
    }),
  );
  return dir;
}

describe('a kept backup’s manifest', () => {
  it('verify_failed: refused for a restore, read by a new proof; a proof that succeeds marks it complete', async () => {
    const dir = backup('vf', 'verify_failed', {
      verify: {
        status: 'failed',
        at: 'then',
        reason: 'did not start:\nFATAL:  lock file "x" already exists',
      },
    });
    await expect(readCheckedManifest(t, dir, signal)).rejects.toThrow(
      /is "verify_failed": its restore proof failed \(did not start: FATAL: {2}lock file "x" already exists\)\. Prove it first/,
    );
    // Past the status it is checked like any other: this label's sha256 is not the recorded one.
    await expect(readCheckedManifest(t, dir, signal, { unproven: true })).rejects.toThrow(
      'does not match the manifest',
    );
    await recordVerify(t, dir, { status: 'ok', at: 'now', consistent_lsn: '0/2000100' }, {});
    const m = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
    expect(m).toMatchObject({ status: 'complete', backup_id: 'vf', verify: { status: 'ok', at: 'now' } });
  });

  it('a failed proof is recorded with its reason; a void manifest is never rewritten', async () => {
    const dir = backup('ok', 'complete');
    await recordVerify(t, dir, { status: 'failed', at: 'now', reason: 'port in use' }, {});
    expect(JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'))).toMatchObject({
      status: 'verify_failed',
      verify: { reason: 'port in use' },
    });
    const voided = backup('void', 'void');
    await expect(recordVerify(t, voided, { status: 'ok', at: 'now' }, {})).rejects.toThrow('says "void"');
    expect(JSON.parse(readFileSync(join(voided, 'manifest.json'), 'utf8')).status).toBe('void');
  });

  it('the summary line names the place, the status with its reason, and a delete command per provider', async () => {
    const dir = backup('gcp', 'verify_failed', {
      verify: { status: 'failed', at: 'then', reason: 'check failed on the restored copy: boom' },
      snapshots: [
        { provider: 'btrfs', id: '/snaps/it' },
        { provider: 'copy', id: "/b/it's.snap" },
        {
          provider: 'gcp',
          id: 'pgrb-a,pgrb-b',
          project: 'p1',
          snapshots: [{ name: 'pgrb-a' }, { name: 'pgrb-b' }],
        },
      ],
    });
    const line = await describeKept(t, dir, { host: 'db1', signal, become: 'sudo' });
    expect(line).toBe(
      `backup gcp kept in ${dir} on db1 (${dir}/manifest.json: manifest status verify_failed: check failed on the restored copy: boom. ` +
        `It was not proven to restore: prove it again with playbooks/restore-verify.yml (-e backup_dir=${dir})). ` +
        `To delete it: sudo btrfs subvolume delete /snaps/it && sudo rm -rf -- '/b/it'\\''s.snap' && ` +
        `gcloud compute snapshots delete pgrb-a pgrb-b --project p1 && sudo rm -rf -- ${dir}`,
    );
  });

  it('a backup of GCP snapshots only is sent to gcp-restore-verify.yml for its proof', async () => {
    const dir = backup('gcp-only', 'verify_failed', {
      verify: { status: 'failed', at: 'then', reason: 'check failed on the restored copy: boom' },
      snapshots: [{ provider: 'gcp', id: 'pgrb-a', project: 'p1', snapshots: [{ name: 'pgrb-a' }] }],
    });
    expect(await describeKept(t, dir, { host: 'db1', signal })).toContain(
      `prove it again with playbooks/gcp-restore-verify.yml (-e backup_dir=${dir})`,
    );
    await expect(readCheckedManifest(t, dir, signal)).rejects.toThrow(
      `Prove it first (playbooks/gcp-restore-verify.yml -e backup_dir=${dir})`,
    );
  });
});

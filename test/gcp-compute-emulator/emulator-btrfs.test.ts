// A disk that is a btrfs subvolume snapshots as a read-only btrfs snapshot and restores as a
// writable one (root only: loop devices and mounts).
import { execFile } from 'node:child_process';
import { access, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ComputeEmulator, startComputeEmulator } from '../../tools/gcp-compute-emulator/index.js';
import { isSubvolume } from '../../tools/gcp-compute-emulator/storage.js';
import { describeTree } from '../../tools/gcp-compute-emulator/tree.js';
import { type BtrfsFs, createBtrfs } from '../../tools/testenv/btrfs.js';

const run = promisify(execFile);
const canBtrfs =
  process.getuid?.() === 0 &&
  (await access('/usr/bin/btrfs').then(
    () => true,
    () => false,
  ));

const P = 'pgrb-lab';
const Z = 'europe-west1-b';

describe.skipIf(!canBtrfs)('btrfs disks', () => {
  let fs: BtrfsFs | undefined;
  let emu: ComputeEmulator | undefined;
  let dataDir = '';

  beforeAll(async () => {
    fs = await createBtrfs({ sizeGiB: 0.5 });
    dataDir = await fs.createSubvolume('pgdata', 'root');
    await writeFile(join(dataDir, 'PG_VERSION'), '15\n');
    emu = await startComputeEmulator({ root: join(fs.mountPoint, 'emu'), operationDelayMs: 10 });
    await emu.addDisk({ name: 'pgdata', zone: Z, dir: dataDir });
  });

  afterAll(async () => {
    await emu?.stop();
    await fs?.destroy();
  });

  it('snapshots a subvolume read-only and restores it writable; delete removes the subvolumes', async () => {
    const m = await import('@google-cloud/compute');
    const { PassThroughClient } = await import('google-auth-library');
    const opts = {
      apiEndpoint: emu!.host,
      port: emu!.port,
      protocol: 'http',
      fallback: 'rest' as const,
      authClient: new PassThroughClient(),
    };
    const disks = new m.DisksClient(opts);
    const snapshots = new m.SnapshotsClient(opts);
    const zoneOps = new m.ZoneOperationsClient(opts);
    const globalOps = new m.GlobalOperationsClient(opts);
    const untilDone = async (op: { name?: string | null; zone?: string | null }) => {
      for (;;) {
        const [r] = op.zone
          ? await zoneOps.wait({ project: P, zone: Z, operation: op.name! })
          : await globalOps.wait({ project: P, operation: op.name! });
        if (r.status === 'DONE') return r;
      }
    };

    const [cs] = await disks.createSnapshot({
      project: P,
      zone: Z,
      disk: 'pgdata',
      snapshotResource: { name: 'snap' },
    });
    expect((await untilDone(cs.latestResponse as never)).error).toBeFalsy();
    const snapDir = emu!.snapshotDir('snap')!;
    expect(await isSubvolume(snapDir)).toBe(true);
    const { stdout } = await run('btrfs', ['property', 'get', snapDir, 'ro']);
    expect(stdout.trim()).toBe('ro=true');
    expect(await describeTree(snapDir)).toEqual(await describeTree(dataDir));

    const [ins] = await disks.insert({
      project: P,
      zone: Z,
      diskResource: { name: 'restored', sourceSnapshot: `global/snapshots/snap` },
    });
    await untilDone(ins.latestResponse as never);
    const restored = emu!.diskDir(Z, 'restored')!;
    expect(await isSubvolume(restored)).toBe(true);
    await writeFile(join(restored, 'backup_label'), 'x');

    const [dd] = await disks.delete({ project: P, zone: Z, disk: 'restored' });
    await untilDone(dd.latestResponse as never);
    const [ds] = await snapshots.delete({ project: P, snapshot: 'snap' });
    await untilDone(ds.latestResponse as never);
    await expect(stat(restored)).rejects.toThrow();
    await expect(stat(snapDir)).rejects.toThrow();
    // The adopted subvolume itself is untouched.
    expect((await stat(join(dataDir, 'PG_VERSION'))).isFile()).toBe(true);
  });
});

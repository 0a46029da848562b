// The GCP tests' database host: a Compute emulator with instance `db1` (a boot disk, and the data
// disk `db1-data` under device name `pgdata`) and a PostgreSQL 15 whose PGDATA is the `data/`
// subdirectory of that disk's directory, as on a mounted persistent disk.
import { chownSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type ComputeEmulator, startComputeEmulator } from '../../tools/gcp-compute-emulator/index.js';
import { lookupUser, type PgServer, SERVER_USER, startPostgres } from '../../tools/testenv/index.js';

/** Starts both under `root` (the emulator's state in root/gce, the disk in root/pg-data-disk). */
export async function startDb1OnEmulatedDisk(
  root: string,
  zone: string,
  emulator: { operationDelayMs: number; waitMaxMs: number },
): Promise<{ gce: ComputeEmulator; s: PgServer }> {
  const gce = await startComputeEmulator({ root: join(root, 'gce'), ...emulator });
  const disk = join(root, 'pg-data-disk');
  const { uid, gid } = await lookupUser(SERVER_USER);
  mkdirSync(join(disk, 'data'), { recursive: true, mode: 0o700 });
  chownSync(disk, uid, gid);
  chownSync(join(disk, 'data'), uid, gid);
  const s = await startPostgres({ version: 15, dataDir: join(disk, 'data') }).catch(async (err: unknown) => {
    await gce.stop();
    throw err;
  });
  await gce.addDisk({ name: 'db1-data', zone, dir: disk, sizeGb: 10 });
  await gce.addDisk({ name: 'db1-boot', zone, sizeGb: 10 });
  await gce.addInstance({
    name: 'db1',
    zone,
    disks: [
      { deviceName: 'boot', disk: 'db1-boot', boot: true },
      { deviceName: 'pgdata', disk: 'db1-data' },
    ],
  });
  return { gce, s };
}

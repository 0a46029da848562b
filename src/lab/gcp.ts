// `pgrunbook lab gcp up|down`: the Compute emulator beside the lab's PostgreSQL, with the lab's
// PGDATA as a persistent disk of an instance "lab", and an inventory that points gcp.* steps at
// it — so the GCP flavour of the snapshot-backup playbook runs on a laptop.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PgrunbookError } from '../errors.js';
import { done, notYet, poll } from '../util/poll.js';

const PROJECT = 'pgrb-lab';
const ZONE = 'europe-west1-b';

/** Starts the emulator (once) and writes inventory-gcp.yml; returns its path. */
export async function labGcpUp(dir: string, pgdata: string, out: (s: string) => void): Promise<string> {
  const pidFile = join(dir, 'gce.pid');
  if (!alive(pidFile)) {
    const script = fileURLToPath(new URL('./gce-emulator.js', import.meta.url));
    if (!existsSync(script))
      throw new PgrunbookError(`lab gcp: the emulator is not built (${script}): npm run build`);
    const seed = join(dir, 'gce-seed.json');
    writeFileSync(
      seed,
      JSON.stringify({
        disks: [
          // The lab's PGDATA is the data disk: its snapshots are copies of it.
          { name: 'lab-data', zone: ZONE, sizeGb: 10, dir: pgdata },
          { name: 'lab-boot', zone: ZONE, sizeGb: 10 },
        ],
        instances: [
          {
            name: 'lab',
            zone: ZONE,
            disks: [
              { deviceName: 'boot', disk: 'lab-boot', boot: true },
              { deviceName: 'pgdata', disk: 'lab-data' },
            ],
          },
        ],
      }),
    );
    const log = join(dir, 'log', 'gce-emulator.log');
    const fd = openSync(log, 'w');
    const child = spawn(
      process.execPath,
      // A free port: the inventory records whichever it got.
      [script, '--root', join(dir, 'gce'), '--port', '0', '--project', PROJECT, '--seed', seed],
      { detached: true, stdio: ['ignore', fd, fd] },
    );
    closeSync(fd);
    child.unref();
    writeFileSync(pidFile, `${child.pid}\n`);
    const failed = () =>
      new PgrunbookError(`lab gcp: the emulator did not start:\n${readFileSync(log, 'utf8').trim()}`);
    await poll(
      () => {
        if (readFileSync(log, 'utf8').includes('"url"')) return done(undefined);
        if (!alive(pidFile)) throw failed();
        return notYet();
      },
      { timeoutMs: 15_000, intervalMs: 100, onTimeout: failed },
    );
  }
  const ready = readFileSync(join(dir, 'log', 'gce-emulator.log'), 'utf8')
    .split('\n')
    .find((l) => l.startsWith('{') && l.includes('"port"'));
  const port = (JSON.parse(ready ?? '{}') as { port?: number }).port;
  if (!port)
    throw new PgrunbookError('lab gcp: the emulator log has no ready line; run lab gcp down, then up');
  const inventory = join(dir, 'inventory-gcp.yml');
  const base = readFileSync(join(dir, 'inventory.yml'), 'utf8');
  writeFileSync(
    inventory,
    base
      .replace(
        '# Written by `pgrunbook lab up`: one local host and its PostgreSQL.',
        '# Written by `pgrunbook lab gcp up`: the lab host as a GCE instance of the local Compute emulator.',
      )
      .replace(
        '    vars:\n',
        `    gcp: { project: ${PROJECT}, zone: ${ZONE}, instance: lab, endpoint: { host: 127.0.0.1, port: ${port}, protocol: http } }\n    vars:\n      snapshot_provider: gcp\n`,
      ),
  );
  out(
    `lab gcp: Compute emulator on http://127.0.0.1:${port} (project ${PROJECT}, instance lab, disk lab-data = ${pgdata})\nlab gcp: inventory ${inventory}\n`,
  );
  return inventory;
}

/** Stops the emulator if it runs. */
export function labGcpDown(dir: string): boolean {
  const pidFile = join(dir, 'gce.pid');
  if (!alive(pidFile)) return false;
  try {
    process.kill(Number(readFileSync(pidFile, 'utf8')), 'SIGTERM');
  } catch {
    // already gone
  }
  rmSync(pidFile, { force: true });
  return true;
}

/** The pid file names a running emulator of this lab (not a process that reused the pid). */
function alive(pidFile: string): boolean {
  if (!existsSync(pidFile)) return false;
  const pid = Number(readFileSync(pidFile, 'utf8'));
  try {
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    if (cmd.includes('gce-emulator.js') && cmd.includes(dirname(pidFile)) && !/^\d+ \(.*\) Z/.test(stat))
      return true;
  } catch {
    // no such process
  }
  rmSync(pidFile, { force: true });
  return false;
}

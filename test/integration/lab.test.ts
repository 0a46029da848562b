// The README's main job on the embedded local lab — `lab up`, `lab demo`, and the GCP flavour
// with `lab gcp up` — in a scratch directory, then `lab down` leaves nothing running.
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { events, outputsOf, runCli, waitUntil, workdir } from './cli.js';

const PLAYBOOK = fileURLToPath(new URL('../../playbooks/snapshot-backup.yml', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'pgrb-lab-'));
chmodSync(dir, 0o755);
const cwd = workdir();
const lab = (...args: string[]) => runCli(['lab', ...args, '--dir', dir], { cwd });

afterAll(async () => {
  await lab('down');
  rmSync(dir, { recursive: true, force: true });
});

describe('the local lab', () => {
  it('lab up, then lab demo: a backup under a writer restores with every row committed before the stop', async () => {
    const up = await lab('up');
    expect(up.code, up.stderr).toBe(0);
    expect(up.stdout).toContain(`inventory ${join(dir, 'inventory.yml')}`);
    const demo = await lab('demo');
    expect(demo.code, demo.stdout.slice(-3000) + demo.stderr).toBe(0);
    expect(demo.stdout).toMatch(
      /restored copy has: +\d+ rows, ids 1\.\.\d+ without a gap — every one of them/,
    );
    expect(existsSync(join(dir, 'last-report.md'))).toBe(true);
  }, 180_000);

  it('lab demo on a machine without rsync (not on PATH): the copy provider uses tar, and the backup restores', async () => {
    // A PATH with every command of this machine except rsync: the demo must need nothing more
    // than a base system has.
    const bin = mkdtempSync(join(tmpdir(), 'pgrb-norsync-'));
    // Steps run commands as the server user too: it must reach them.
    chmodSync(bin, 0o755);
    for (const d of ['/usr/local/bin', '/usr/bin', '/bin', '/usr/sbin', '/sbin'])
      for (const f of existsSync(d) ? readdirSync(d) : [])
        if (f !== 'rsync' && !existsSync(join(bin, f))) symlinkSync(join(d, f), join(bin, f));
    const env = { PATH: bin };
    expect(spawnSync('sh', ['-c', 'command -v rsync'], { env }).status).not.toBe(0);
    const demo = await runCli(['lab', 'demo', '--dir', dir], { cwd, env });
    expect(demo.code, demo.stdout.slice(-3000) + demo.stderr).toBe(0);
    expect(demo.stdout).toMatch(
      /restored copy has: +\d+ rows, ids 1\.\.\d+ without a gap — every one of them/,
    );
    expect(demo.stdout).toMatch(/copy snapshot of .* \(tar\)/);
    rmSync(bin, { recursive: true, force: true });
  }, 180_000);

  it('lab gcp up: the GCP provider snapshots the lab PGDATA through the emulator; lab down stops everything', async () => {
    const up = await lab('gcp', 'up');
    expect(up.code, up.stderr).toBe(0);
    const inv = join(dir, 'inventory-gcp.yml');
    expect(readFileSync(inv, 'utf8')).toMatch(
      /endpoint: \{ host: 127\.0\.0\.1, port: \d+, protocol: http \}/,
    );
    const r = await runCli(['run', PLAYBOOK, '-i', inv, '--output', 'json'], { cwd });
    expect(r.code, r.stderr).toBe(0);
    const snap = outputsOf<{ snapshots: { disk: string; status: string }[] }>(events(r.stdout), 'gcp_snap');
    expect(snap.snapshots.map((s) => [s.disk, s.status])).toEqual([['lab-data', 'READY']]);
    const pid = Number(readFileSync(join(dir, 'gce.pid'), 'utf8'));
    const down = await lab('down');
    expect(down.stdout).toContain('Compute emulator stopped');
    // Gone, or a zombie waiting for init to reap it: either way no longer running.
    const running = () => {
      try {
        return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
      } catch {
        return false;
      }
    };
    await waitUntil('the emulator still runs after lab down', () => !running(), 10_000);
    expect(existsSync(join(dir, 'pg15', 'postmaster.pid'))).toBe(false);
  }, 120_000);
});

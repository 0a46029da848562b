// The CI slice of the fault matrix (scripts/fault-matrix.ts runs all of it): a few cells of
// snapshot-backup.yml on a real Patroni + etcd cluster over the real sshd, each judged from the
// servers — the cluster must not stay paused after the runner died, and the summary must not claim
// less damage than the servers show.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { allCells, type Cell, initCells } from '../fault/cells.js';
import { type Lab, startLab } from '../fault/lab.js';
import { type CellResult, DEFAULTS, runCell } from '../fault/run.js';

let lab: Lab;
beforeAll(async () => {
  await initCells();
  lab = await startLab(2);
}, 120_000);
afterAll(async () => {
  await lab?.stop();
});

// The pause is watched just past the limit: enough for the verdict, and the slice stays short.
const OPTS = { ...DEFAULTS, pauseWatchMs: (DEFAULTS.pauseLimitS + 2) * 1000 };
const slice = allCells().filter((c) => c.ci);
const cell = (id: string): Cell => {
  const c = slice.find((x) => x.id === id);
  if (!c) throw new Error(`no CI cell ${id}`);
  return c;
};

/** Both verdicts, with what the servers showed when one fails. */
function expectHonest(r: CellResult): void {
  const why = JSON.stringify(
    { claim: r.claim, damage: r.truth.damage, paused: r.truth.pausedSeconds },
    null,
    1,
  );
  expect(r.hit, `${r.cell}: the injection missed its point`).not.toBe(false);
  expect(r.pausedAfterDeath, why).toBe(false);
  expect(r.understated, why).toEqual([]);
}

describe('fault matrix (CI slice): snapshot-backup.yml on Patroni + etcd over ssh', () => {
  it('the slice has the cells this file names', () => {
    expect(slice.map((c) => c.id).sort()).toEqual(
      [
        'backup: SIGTERM after pause',
        'backup: kill -9 mid snapshot (copy running)',
        'backup: etcd stopped after pause',
        'backup: backend terminated mid snapshot (copy running)',
      ].sort(),
    );
  });

  it('SIGTERM right after the pause: undone, resumed, nothing left', async () => {
    expectHonest(await runCell(lab, cell('backup: SIGTERM after pause'), OPTS));
  }, 120_000);

  // The resume and the pause's undo fail while etcd is down (exit 3); the guard, handed the pause
  // at the end of the run, keeps trying and resumes once etcd is back.
  it('etcd stopped after the pause: the cluster is not left paused once etcd is back', async () => {
    expectHonest(await runCell(lab, cell('backup: etcd stopped after pause'), OPTS));
  }, 180_000);

  // The interrupted snapshot's partial copy is removed at once and listed with its path.
  it('backup backend terminated mid-copy: the summary names the partial copy it leaves', async () => {
    expectHonest(await runCell(lab, cell('backup: backend terminated mid snapshot (copy running)'), OPTS));
  }, 120_000);

  // The pause guard on the member reads EOF when the runner dies and resumes the cluster.
  it('kill -9 of the runner mid-copy: the cluster is resumed within seconds', async () => {
    const r = await runCell(lab, cell('backup: kill -9 mid snapshot (copy running)'), OPTS);
    expectHonest(r);
  }, 120_000);
});

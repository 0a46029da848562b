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

  // Fails today: the resume (and the pause's undo) fail while etcd is down, the run ends with
  // exit 3, and nothing resumes Patroni once etcd is back — the cluster stays paused (issue 12
  // item 1: the pause guard, which should resume when the run's channel closes, retrying until the
  // DCS answers). Flip to `it` once it lands.
  it.fails('etcd stopped after the pause: the cluster is not left paused once etcd is back', async () => {
    expectHonest(await runCell(lab, cell('backup: etcd stopped after pause'), OPTS));
  }, 180_000);

  // Fails today: the summary does not list the partial copy (`<backup>.snap`) the interrupted
  // snapshot left, and no undo removes it (issue 12 item 5, "partial artifacts listed with their
  // paths and removed"). Flip to `it` once that lands.
  it.fails('backup backend terminated mid-copy: the summary names the partial copy it leaves', async () => {
    expectHonest(await runCell(lab, cell('backup: backend terminated mid snapshot (copy running)'), OPTS));
  }, 120_000);

  // Fails today: nothing resumes Patroni when the runner is killed — the pause guard on a member
  // (issue 12 item 1: started over the run's SSH connection, resuming on EOF if the DCS still holds
  // this run's pgrunbook_pause marker) is not there yet. Flip to `it` once it lands.
  it.fails('kill -9 of the runner mid-copy: the cluster is resumed within seconds', async () => {
    const r = await runCell(lab, cell('backup: kill -9 mid snapshot (copy running)'), OPTS);
    expectHonest(r);
  }, 120_000);
});

// The promise between validate and run, on 2,000 fixed-seed mutants of the shipped playbooks,
// inventories and fixtures (test/fuzz/): when `validate -i` accepts, `run` never fails on
// rendering a value that was knowable before apply; when it rejects, `run` exits 2 and executes
// nothing. Real commands in this process, real local runs (see test/fuzz/property.ts for what is
// run and what never is). The same check, with other seeds and counts: scripts/fuzz-property.ts.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_SEED, mutants, runsWithoutServers, seeds } from '../fuzz/mutants.js';
import { checkMutant, type Finding } from '../fuzz/property.js';

const work = mkdtempSync(join(tmpdir(), 'pgrb-property-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('validate -i and run agree on 2,000 mutants', () => {
  it(`seed ${DEFAULT_SEED}: no crash, no run past a rejection, no render failure of a knowable value`, async () => {
    const runnable = new Map(seeds().map((s) => [s.name, runsWithoutServers(s)]));
    const findings: Finding[] = [];
    const count = { mutants: 0, accepted: 0, rejected: 0, refused: 0, ran: 0, stepsOk: 0 };
    for (const m of mutants({ seed: DEFAULT_SEED, count: 2000 })) {
      const dir = join(work, String(count.mutants++));
      const c = await checkMutant(m, dir, runnable.get(m.seed) === true);
      findings.push(...c.findings);
      if (c.validate === 0) count.accepted++;
      else count.rejected++;
      if (c.run === 2 && c.left.length === 0) count.refused++;
      if (c.run !== undefined && c.left.length > 0) count.ran++;
      count.stepsOk += c.stepsOk;
      rmSync(dir, { recursive: true, force: true });
    }
    expect(findings).toEqual([]);
    // Both sides of the promise were really exercised: many rejections that the run refused
    // without leaving anything behind, and many accepted mutants that really ran their steps.
    expect(count.mutants).toBe(2000);
    expect(count.rejected).toBeGreaterThan(800);
    expect(count.refused).toBeGreaterThanOrEqual(count.rejected);
    expect(count.accepted).toBeGreaterThan(500);
    // Each seed that needs servers (gcp-restore-verify@gitlab-like-gcp-restore, the latest) takes
    // its turns from the local seeds that run: 239 ran with seed 20261206 once it was added.
    expect(count.ran).toBeGreaterThan(200);
    expect(count.stepsOk).toBeGreaterThan(1500);
  }, 600_000);
});

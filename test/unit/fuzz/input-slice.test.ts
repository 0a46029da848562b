// CI's slice of scripts/fuzz-input.ts (issue 11): 2,000 mutants of the shipped playbooks,
// inventories and fixtures, each through `validate`, `validate -i` or `plan` in turn, in forked
// workers: exit 0 or 2 only, each run under 2 s and 500 MB, every located message inside its file.
import { describe, expect, it } from 'vitest';
import { OPERATORS } from '../../fuzz/mutants.js';
import { COMMANDS, locationViolations, runInput } from '../../fuzz/run-input.js';

describe('hostile input, a 2,000-mutant slice', () => {
  it('the location check itself refuses a place past its line or file, and a message without one', () => {
    const files = { '/t/p.yml': 'a: 1\nbb: 2\n' };
    expect(locationViolations('/t/p.yml:2:6: x\n1 problem found; nothing was run.\n', files)).toEqual([]);
    expect(locationViolations('/t/p.yml:2:7: x\n', files)).toHaveLength(1);
    expect(locationViolations('/t/p.yml:4:1: x\n', files)).toHaveLength(1);
    expect(locationViolations('pgrunbook: no location\n', files)).toHaveLength(1);
  });

  it(
    'exit 0 or 2 only, each run under 2 s and 500 MB, locations inside the file',
    { timeout: 240_000 },
    async () => {
      const results = await runInput({ count: 2000, workers: 2, rotate: true });
      expect(results).toHaveLength(2000);
      const violations = results
        .filter((r) => r.violations.length > 0)
        .map((r) => `${r.id} ${r.command}: ${r.violations.join('; ')}`);
      expect(violations).toEqual([]);
      // Every command and every operator was exercised, and both verdicts occur.
      expect(new Set(results.map((r) => r.command))).toEqual(new Set(COMMANDS));
      expect(new Set(results.map((r) => r.operator))).toEqual(new Set(OPERATORS.map((o) => o.name)));
      expect(results.some((r) => r.code === 0) && results.some((r) => r.code === 2)).toBe(true);
    },
  );
});

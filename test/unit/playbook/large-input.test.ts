// Large real inputs (issue 11, item 1): a generated inventory of Patroni hosts and a playbook of
// plays just under MAX_VALUES validate with `validate -i`; one value more is a located exit 2;
// the time grows about linearly with the size (measured against a small pair in the same run:
// no absolute timing). A plan past MAX_PLAN_COST is refused at the step where it got too large.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MAX_PLAN_COST } from '../../../src/engine/build.js';
import { formatProblem } from '../../../src/errors.js';
import { loadInventory, MAX_GROUP_DEPTH } from '../../../src/inventory/inventory.js';
import { MAX_FILE_BYTES, parseSource } from '../../../src/playbook/load.js';
import { MAX_VALUES } from '../../../src/playbook/yaml-limits.js';
import { atLimit, countValues, inventoryText, playbookText, sized } from '../../fuzz/big-input.js';
import { command } from '../../fuzz/in-process.js';

const dir = mkdtempSync(join(tmpdir(), 'pgrb-large-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function write(name: string, text: string): string {
  const f = join(dir, name);
  writeFileSync(f, text);
  return f;
}

const big = atLimit(MAX_VALUES, MAX_FILE_BYTES);

async function timed(argv: string[]) {
  const t0 = performance.now();
  const r = await command(argv, dir);
  return { ...r, ms: performance.now() - t0 };
}

describe('inputs near MAX_VALUES', () => {
  it(
    'a generated inventory and playbook just under the limit validate with -i, in about linear time',
    {
      timeout: 60_000,
    },
    async () => {
      const values = countValues(big.inventory) + countValues(big.playbook);
      // The inventory reaches the value limit; the playbook, the value or the byte limit.
      expect(countValues(big.inventory)).toBeGreaterThan(MAX_VALUES - 40);
      expect(countValues(big.playbook)).toBeGreaterThan(MAX_VALUES * 0.9);
      const small = sized(1000);
      const smallValues = countValues(small.inventory) + countValues(small.playbook);
      const files = {
        bigPb: write('big-pb.yml', big.playbook),
        bigInv: write('big-inv.yml', big.inventory),
        smallPb: write('small-pb.yml', small.playbook),
        smallInv: write('small-inv.yml', small.inventory),
      };
      // Warm up (module loading, JIT), then the best of two for each, small first.
      await timed(['validate', files.smallPb, '-i', files.smallInv]);
      const smallRuns = [];
      for (let i = 0; i < 2; i++)
        smallRuns.push(await timed(['validate', files.smallPb, '-i', files.smallInv]));
      const bigRun = await timed(['validate', files.bigPb, '-i', files.bigInv]);
      expect(bigRun.stderr).toBe('');
      expect(bigRun.code).toBe(0);
      expect(bigRun.stdout).toBe(`${files.bigPb}: valid (${big.plays} plays) with ${files.bigInv}\n`);
      expect(smallRuns[0]!.code).toBe(0);
      // Linear growth would be values/smallValues (about 50×); quadratic growth, its square. A
      // wide factor of 4 over linear absorbs noise of a shared machine, never a square.
      const ratio = bigRun.ms / Math.min(...smallRuns.map((r) => r.ms));
      expect(ratio).toBeLessThan((values / smallValues) * 4);
    },
  );

  it('one value over the limit is refused with a located exit 2, before anything else is checked', async () => {
    // More hosts until the inventory passes the limit; the message points at the value past it.
    let hosts = big.hosts;
    let text = big.inventory;
    while (countValues(text) <= MAX_VALUES) text = inventoryText(++hosts);
    const inv = write('over-inv.yml', text);
    const pb = write('ok-pb.yml', big.playbook);
    const r = await command(['validate', pb, '-i', inv], dir);
    expect(r.code).toBe(2);
    // In process, the refusal is the ValidationError main.ts prints as its problems: one here.
    const problems = r.stderr
      .replace(/^ValidationError: /, '')
      .split('\n    at ')[0]!
      .trim()
      .split('\n');
    expect(problems, r.stderr).toHaveLength(1);
    const m = new RegExp(
      `^${inv.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:(\\d+):(\\d+): more than ${MAX_VALUES} values in one file \\(limit ${MAX_VALUES}\\); split it$`,
    ).exec(problems[0]!);
    expect(m, problems[0]).not.toBeNull();
    // The location is a real place in the file: on a line that exists, inside it.
    const line = text.split('\n')[Number(m![1]) - 1]!;
    expect(Number(m![2])).toBeLessThanOrEqual(line.length);
    expect(line[Number(m![2]) - 1]).toMatch(/[\w"]/);
  });

  it('a plan past MAX_PLAN_COST (every step on every host) is refused at the step where it got too large', async () => {
    // 300 hosts × 60 plays × 8 steps: over the cost limit; each file is far under MAX_VALUES.
    const inv = write('all-inv.yml', inventoryText(300));
    const text = playbookText(60, 100, 'all');
    const pb = write('all-pb.yml', text);
    for (const argv of [
      ['validate', pb, '-i', inv],
      ['plan', pb, '-i', inv],
    ]) {
      const r = await command(argv, dir);
      expect(r.code, r.stderr).toBe(2);
      const m = /:(\d+):(\d+): \[\d+\]\.\S+: the plan grows past its limit here \((\d+) units/.exec(r.stderr);
      expect(m, r.stderr).not.toBeNull();
      expect(Number(m![3])).toBe(MAX_PLAN_COST);
      // Located at a step: the line starts that step's mapping.
      expect(text.split('\n')[Number(m![1]) - 1]).toMatch(/^\s+- /);
    }
  });
});

describe('large maps and group chains', () => {
  it('a map of 12,000 keys with one repeated is one located problem, found as fast as in 12 maps', () => {
    const vars = (from: number, n: number) =>
      Array.from({ length: n }, (_, i) => `    v${from + i}: 1\n`).join('');
    // One play with 12,000 vars (and v7 again), or 12 plays of 1,000: the same size.
    const one = `- name: x\n  hosts: all\n  vars:\n${vars(0, 12_000)}    v7: 2\n  steps: []\n`;
    const twelve = Array.from(
      { length: 12 },
      (_, p) => `- name: x${p}\n  hosts: all\n  vars:\n${vars(p * 1000, 1000)}  steps: []\n`,
    ).join('');
    const time = (text: string) => {
      const t0 = performance.now();
      const r = parseSource('dup.yml', text);
      return { ms: performance.now() - t0, problems: r.problems.map(formatProblem) };
    };
    time(twelve);
    const spread = Math.min(time(twelve).ms, time(twelve).ms);
    const runs = [time(one), time(one)];
    expect(runs[0]!.problems).toEqual(['dup.yml:12004:5: invalid YAML: Map keys must be unique']);
    expect(time(twelve).problems).toEqual([]);
    // The library's own check compares each key with every earlier one: 12 times the work in
    // one map of 12,000 keys as in 12 of 1,000 (3 to 6 times the time, measured). Ours: the same.
    expect(Math.min(...runs.map((r) => r.ms)) / spread).toBeLessThan(2);
  });

  it('groups nested through children deeper than MAX_GROUP_DEPTH are a located problem, not a crash', () => {
    const n = 5000;
    const groups = Array.from({ length: n }, (_, i) =>
      i === 0 ? '  g0: { hosts: [h] }\n' : `  g${i}: { children: [g${i - 1}] }\n`,
    ).join('');
    const file = write('chain.yml', `defaults: { transport: local }\nhosts:\n  h: {}\ngroups:\n${groups}`);
    const r = loadInventory(file);
    // g0 … g64 are 65 levels: g64 is the lowest group with 64 below it (line 5 + 64).
    const ps = r.problems.map(formatProblem);
    expect(ps).toHaveLength(1);
    expect(ps[0]).toMatch(
      new RegExp(
        `:${5 + MAX_GROUP_DEPTH}:\\d+: groups\\.g${MAX_GROUP_DEPTH}\\.children: groups nested more than ${MAX_GROUP_DEPTH} levels deep through children \\(limit ${MAX_GROUP_DEPTH}\\)$`,
      ),
    );
    // Written top-down, the same chain is one problem too, without recursing 5,000 deep.
    const reversed = groups.split('\n').filter(Boolean).reverse().join('\n');
    const r3 = loadInventory(
      write('chain-rev.yml', `defaults: { transport: local }\nhosts:\n  h: {}\ngroups:\n${reversed}\n`),
    );
    expect(r3.problems.map(formatProblem)).toHaveLength(1);
    expect(formatProblem(r3.problems[0]!)).toMatch(/groups nested more than \d+ levels deep/);
    // Within the limit, membership flows up the chain.
    const ok = write(
      'chain-ok.yml',
      `defaults: { transport: local }\nhosts:\n  h: {}\ngroups:\n${groups.split('\n').slice(0, MAX_GROUP_DEPTH).join('\n')}\n`,
    );
    const r2 = loadInventory(ok);
    expect(r2.problems).toEqual([]);
    expect(r2.inventory!.hosts.get('h')!.groups).toHaveLength(MAX_GROUP_DEPTH);
  });
});

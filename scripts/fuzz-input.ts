// Runs N mutants (default 10,000) through `validate`, `validate -i` and `plan`, in forked worker
// processes, and prints per operator: runs, exit 0 / 2 / other, slowest run, highest worker RSS,
// then every violation (exit other than 0 and 2, a run over 2 s or 500 MB, a location outside
// its file). Exit 1 when there is any violation.
//
//   npx tsx scripts/fuzz-input.ts [--seed N] [--count N] [--workers N]
import { parseArgs } from 'node:util';
import { DEFAULT_SEED } from '../test/fuzz/mutants.js';
import { type RunResult, runInput } from '../test/fuzz/run-input.js';

const { values } = parseArgs({
  options: { seed: { type: 'string' }, count: { type: 'string' }, workers: { type: 'string' } },
});
const seed = values.seed === undefined ? DEFAULT_SEED : Number(values.seed);
const count = values.count === undefined ? 10_000 : Number(values.count);
const t0 = Date.now();
let done = 0;
const results = await runInput({
  seed,
  count,
  workers: values.workers === undefined ? 2 : Number(values.workers),
  onResult: () => {
    if (++done % 3000 === 0)
      process.stderr.write(`${done} runs, ${Math.round((Date.now() - t0) / 1000)} s\n`);
  },
});
const rows = new Map<
  string,
  { runs: number; ok: number; two: number; other: number; maxMs: number; maxMb: number }
>();
for (const r of results) {
  const row = rows.get(r.operator) ?? { runs: 0, ok: 0, two: 0, other: 0, maxMs: 0, maxMb: 0 };
  row.runs++;
  if (r.code === 0) row.ok++;
  else if (r.code === 2) row.two++;
  else row.other++;
  row.maxMs = Math.max(row.maxMs, r.ms);
  row.maxMb = Math.max(row.maxMb, r.peakMb);
  rows.set(r.operator, row);
}
const w = Math.max(...[...rows.keys()].map((k) => k.length));
const head = `${'operator'.padEnd(w)}   runs  exit0  exit2  other  max ms  max MB`;
const line = (
  k: string,
  r: { runs: number; ok: number; two: number; other: number; maxMs: number; maxMb: number },
) =>
  `${k.padEnd(w)} ${[r.runs, r.ok, r.two, r.other].map((x) => String(x).padStart(6)).join(' ')} ${String(Math.round(r.maxMs)).padStart(7)} ${String(Math.round(r.maxMb)).padStart(7)}`;
const all = [...rows.values()].reduce(
  (a, r) => ({
    runs: a.runs + r.runs,
    ok: a.ok + r.ok,
    two: a.two + r.two,
    other: a.other + r.other,
    maxMs: Math.max(a.maxMs, r.maxMs),
    maxMb: Math.max(a.maxMb, r.maxMb),
  }),
  { runs: 0, ok: 0, two: 0, other: 0, maxMs: 0, maxMb: 0 },
);
const bad: RunResult[] = results.filter((r) => r.violations.length > 0);
process.stdout.write(
  `seed ${seed}, ${count} mutants × validate, validate -i, plan = ${results.length} runs in ${Math.round((Date.now() - t0) / 1000)} s\n` +
    "(max MB: peak RSS of the worker process after the run, an upper bound of the run's own)\n\n" +
    `${head}\n${[...rows].map(([k, r]) => line(k, r)).join('\n')}\n${line('TOTAL', all)}\n`,
);
if (bad.length > 0) {
  process.stdout.write(`\n${bad.length} violation(s):\n`);
  for (const r of bad) process.stdout.write(`${r.id} ${r.command}: ${r.violations.join('; ')}\n`);
}
process.exitCode = bad.length > 0 ? 1 : 0;

// The whole shell-injection corpus (test/fuzz/injection.ts): every payload × position pair run end
// to end through `pgrunbook run` on a local host. Prints the counts and every broken promise; exits
// 1 if a payload ran or a position was not handled. `npx tsx scripts/injection-corpus.ts [--only TEXT]`.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { type Outcome, pairs, runPair } from '../test/fuzz/injection.js';

const { values } = parseArgs({ options: { only: { type: 'string' } } });
const work = mkdtempSync(join(tmpdir(), 'pgrb-injection-'));
const all = pairs().filter((p) => values.only === undefined || p.position.name.includes(values.only));
const outcomes: Outcome[] = [];
const t0 = Date.now();
try {
  for (const p of all) {
    outcomes.push(await runPair(p, join(work, String(p.n))));
    rmSync(join(work, String(p.n)), { recursive: true, force: true });
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
const positions = new Set(all.map((p) => p.position.name)).size;
const executed = outcomes.filter((o) => o.executed).length;
const refused = outcomes.filter((o) => o.refused).length;
const problems = outcomes.filter((o) => o.problem);
process.stdout.write(
  `${outcomes.length} pairs (${positions} positions × payloads) in ${((Date.now() - t0) / 1000).toFixed(1)} s: ` +
    `${executed} executed, ${refused} refused (exit 2, located), ${outcomes.length - refused} ran with the value as data\n`,
);
for (const o of problems) process.stdout.write(`  #${o.n} ${o.position} × ${o.payload}: ${o.problem}\n`);
process.exit(problems.length > 0 ? 1 : 0);

// The big run of the validate/run property (the CI test runs the default 2,000): generates
// mutants with a fixed seed, checks each through the real commands in process, prints a table per
// operator and every broken promise. `npx tsx scripts/fuzz-property.ts --seed N --count N`.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_SEED, mutants, runsWithoutServers, seeds } from '../test/fuzz/mutants.js';
import { checkMutant, type Finding } from '../test/fuzz/property.js';

const { values } = parseArgs({ options: { seed: { type: 'string' }, count: { type: 'string' } } });
const seed = values.seed === undefined ? DEFAULT_SEED : Number(values.seed);
const count = values.count === undefined ? 2000 : Number(values.count);
const runnable = new Map(seeds().map((s) => [s.name, runsWithoutServers(s)]));
const work = mkdtempSync(join(tmpdir(), 'pgrb-property-'));
const findings: Finding[] = [];
const rows = new Map<
  string,
  { accepted: number; rejected: number; ran: number; refused: number; stepsOk: number }
>();
const t0 = Date.now();
let n = 0;
try {
  for (const m of mutants({ seed, count })) {
    const c = await checkMutant(m, join(work, String(n++)), runnable.get(m.seed) === true);
    findings.push(...c.findings);
    const row = rows.get(m.operator) ?? { accepted: 0, rejected: 0, ran: 0, refused: 0, stepsOk: 0 };
    if (c.validate === 0) row.accepted++;
    else row.rejected++;
    if (c.run !== undefined && c.left.length > 0) row.ran++;
    if (c.run === 2 && c.left.length === 0) row.refused++;
    row.stepsOk += c.stepsOk;
    rows.set(m.operator, row);
    rmSync(join(work, String(n - 1)), { recursive: true, force: true });
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
process.stdout.write(
  `seed ${seed}: ${n} mutants in ${((Date.now() - t0) / 1000).toFixed(1)} s, ${findings.length} finding(s)\n`,
);
const pad = (x: unknown, w: number) => String(x).padStart(w);
process.stdout.write(
  `\n${'operator'.padEnd(28)}${pad('accepted', 9)}${pad('rejected', 9)}${pad('ran', 6)}${pad('refused', 9)}${pad('steps ok', 10)}\n`,
);
for (const [op, r] of [...rows].sort())
  process.stdout.write(
    `${op.padEnd(28)}${pad(r.accepted, 9)}${pad(r.rejected, 9)}${pad(r.ran, 6)}${pad(r.refused, 9)}${pad(r.stepsOk, 10)}\n`,
  );
process.stdout.write('(ran: the run started and left a journal; refused: exit 2 with nothing left behind)\n');
for (const f of findings) process.stdout.write(`  ${f.id}: ${f.problem}\n`);
process.exitCode = findings.length ? 1 : 0;

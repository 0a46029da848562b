// Runs `validate -i` in-process on generated mutants and prints, per operator, how many it
// accepts and rejects; a mutant that makes validate throw anything but a ValidationError or a
// UsageError (a bug of pgrunbook) is written to the crash directory with its error.
//
//   npx tsx scripts/fuzz-validate.ts [--seed N] [--count N] [--crashes DIR]
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_SEED, mutants, OPERATORS, validateMutant, writeMutant } from '../test/fuzz/mutants.js';

/** Per-operator counts. */
interface Row {
  accept: number;
  reject: number;
  crash: number;
}

/** The table: one line per operator (neutral ones marked), then the total. */
function table(rows: Map<string, Row>): string {
  const neutral = new Set(OPERATORS.filter((o) => o.neutral).map((o) => o.name));
  const width = Math.max(...[...rows.keys()].map((k) => k.length + 2), 'operator'.length);
  const cells = (name: string, r: Row) =>
    [
      name.padEnd(width),
      String(r.accept + r.reject + r.crash).padStart(5),
      String(r.accept).padStart(6),
      String(r.reject).padStart(6),
      String(r.crash).padStart(5),
    ].join('  ');
  const total: Row = { accept: 0, reject: 0, crash: 0 };
  for (const r of rows.values()) {
    total.accept += r.accept;
    total.reject += r.reject;
    total.crash += r.crash;
  }
  const head = ['operator'.padEnd(width), 'total', 'accept', 'reject', 'crash'].join('  ');
  const lines = [...rows].map(([k, r]) => cells(neutral.has(k) ? `${k} *` : k, r));
  return [head, ...lines, cells('TOTAL', total), '(* neutral: expected to be accepted)'].join('\n');
}

/** Where a crashing mutant goes: one directory per mutant, named after its id. */
function keepCrash(crashDir: string, m: Parameters<typeof writeMutant>[1], error: unknown): string {
  const dir = join(crashDir, m.id.replace(/[^A-Za-z0-9_.@~-]/g, '_'));
  writeMutant(dir, m);
  const text = error instanceof Error ? (error.stack ?? error.message) : String(error);
  writeFileSync(join(dir, 'error.txt'), `${text}\n`);
  return `${dir}: ${text.split('\n')[0]}`;
}

/** Parses the command line, generates, validates, prints; exit 1 when validate crashed. */
async function main(): Promise<number> {
  const { values } = parseArgs({
    options: { seed: { type: 'string' }, count: { type: 'string' }, crashes: { type: 'string' } },
  });
  const seed = values.seed === undefined ? DEFAULT_SEED : Number(values.seed);
  const count = values.count === undefined ? 2000 : Number(values.count);
  const crashDir = values.crashes ?? join('.pgrunbook', 'fuzz-crashes');
  const rows = new Map<string, Row>(OPERATORS.map((o) => [o.name, { accept: 0, reject: 0, crash: 0 }]));
  const work = mkdtempSync(join(tmpdir(), 'pgrb-fuzz-'));
  const crashes: string[] = [];
  try {
    for (const m of mutants({ seed, count })) {
      const v = await validateMutant(work, m);
      rows.get(m.operator)![v.kind]++;
      if (v.kind === 'crash') crashes.push(keepCrash(crashDir, m, v.error));
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  process.stdout.write(`seed ${seed}, ${count} mutants, validate -i in-process\n\n${table(rows)}\n`);
  if (crashes.length > 0)
    process.stdout.write(`\n${crashes.length} crash(es) of validate:\n${crashes.join('\n')}\n`);
  return crashes.length > 0 ? 1 : 0;
}

process.exitCode = await main();

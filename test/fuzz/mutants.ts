// The public entry of the fuzz corpus: a deterministic stream of mutants, and how to put one on
// disk and on a command line.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { validateCommand } from '../../src/cli/commands/validate.js';
import { UsageError, ValidationError } from '../../src/errors.js';
import { type Seed, seeds } from './corpus.js';
import { type Mutant, OPERATORS, type Operator } from './mutate.js';
import { mixSeed, Rng } from './prng.js';

export type { Seed } from './corpus.js';
export { LOCAL_SEED_NAMES, runsWithoutServers, seeds } from './corpus.js';
export type { Mutant, Operator } from './mutate.js';
export { OPERATORS } from './mutate.js';

/** The seed the repository's fuzz tests use; change it only on purpose (it changes every mutant). */
export const DEFAULT_SEED = 20_261_206;

/**
 * `count` mutants, the same ones (byte for byte) for the same `seed` and repository content.
 * Mutant i uses operator i mod N and a seed that moves on each round, so every operator meets
 * every seed; an operator that does not apply to a seed (no `id` to duplicate…) takes another.
 * Each mutant has its own rng, derived from (seed, i): mutant i can be rebuilt alone.
 */
export function* mutants(opts: { seed: number; count: number }): Generator<Mutant> {
  const corpus = seeds();
  const order = seedOrder(opts.seed, corpus);
  for (let i = 0; i < opts.count; i++) yield mutantAt(opts.seed, i, corpus, order);
}

/** Mutant `index` of the sequence for `seed` alone (to reproduce one from its id). */
export function mutant(seed: number, index: number): Mutant {
  const corpus = seeds();
  return mutantAt(seed, index, corpus, seedOrder(seed, corpus));
}

/** The order seeds take turns in, shuffled once per run seed. */
function seedOrder(seed: number, corpus: readonly Seed[]): number[] {
  return new Rng(mixSeed(seed, 0x5eed)).shuffle(corpus.map((_, i) => i));
}

/** Mutant i of the sequence for `seed` (what `mutants` yields at position i). */
function mutantAt(seed: number, i: number, corpus: readonly Seed[], order: readonly number[]): Mutant {
  const k = i % OPERATORS.length;
  const op: Operator = OPERATORS[k]!;
  const round = Math.floor(i / OPERATORS.length);
  const first = order[(k + round) % corpus.length]!;
  // When the scheduled seed does not fit, the others in a random order: taking "the next one"
  // would pile an operator that fits few seeds onto whichever follows a run of misfits.
  const fallback = new Rng(mixSeed(seed, i, 0xfa11)).shuffle(order.filter((j) => j !== first));
  for (const [attempt, j] of [first, ...fallback].entries()) {
    const m = op.apply(corpus[j]!, new Rng(mixSeed(seed, i, attempt)), i);
    if (m) return m;
  }
  throw new Error(`fuzz: operator ${op.name} applies to no seed of the corpus`);
}

/** Files of a mutant on disk. */
export interface MutantFiles {
  dir: string;
  playbook: string;
  inventory: string;
  vars: string;
}

/**
 * Writes playbook.yml, inventory.yml, vars.json (the `-e` values) and mutant.json (id, seed,
 * operator, note) into `dir`. Relative paths inside the inventory (a secret `file:`) then resolve
 * against `dir`, not the seed's directory.
 */
export function writeMutant(dir: string, m: Mutant): MutantFiles {
  mkdirSync(dir, { recursive: true });
  const files = {
    dir,
    playbook: join(dir, 'playbook.yml'),
    inventory: join(dir, 'inventory.yml'),
    vars: join(dir, 'vars.json'),
  };
  writeFileSync(files.playbook, m.playbook);
  writeFileSync(files.inventory, m.inventory);
  writeFileSync(files.vars, `${JSON.stringify(m.extraVars, null, 2)}\n`);
  const meta = { id: m.id, seed: m.seed, operator: m.operator, note: m.note };
  writeFileSync(join(dir, 'mutant.json'), `${JSON.stringify(meta, null, 2)}\n`);
  return files;
}

/**
 * The `-e` arguments for extra vars. The CLI takes only `-e key=value` (no @file) and reads each
 * value as YAML 1.2 core; a value written as JSON reads back as the same string, number, list or
 * map (null reads back as ''). Keys are emitted in insertion order.
 */
export function extraVarArgs(vars: Record<string, unknown>): string[] {
  return Object.entries(vars).flatMap(([k, v]) => ['-e', `${k}=${JSON.stringify(v)}`]);
}

/** What `validate -i` says about a mutant: accepted, rejected (with its message), or a crash. */
export type Verdict =
  | { kind: 'accept' }
  | { kind: 'reject'; message: string }
  | { kind: 'crash'; error: unknown };

/**
 * Writes the mutant into `dir` and validates it in-process, as
 * `pgrunbook validate dir/playbook.yml -i dir/inventory.yml -e …` would. A ValidationError or a
 * UsageError is a rejection; any other exception is a crash (a bug of pgrunbook).
 */
export async function validateMutant(dir: string, m: Mutant): Promise<Verdict> {
  const files = writeMutant(dir, m);
  try {
    await validateCommand(files.playbook, { inventory: files.inventory, extraVars: m.extraVars }, () => {});
    return { kind: 'accept' };
  } catch (err) {
    if (err instanceof ValidationError || err instanceof UsageError)
      return { kind: 'reject', message: err.message };
    return { kind: 'crash', error: err };
  }
}

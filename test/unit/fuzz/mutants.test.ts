// The fuzz corpus generator (test/fuzz): deterministic, covering every operator and seed, and
// starting from seeds that validate.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { parseDocument } from 'yaml';
import { parseExtraVars } from '../../../src/cli/args.js';
import { corpusFiles, EXCLUDED } from '../../fuzz/corpus.js';
import {
  DEFAULT_SEED,
  extraVarArgs,
  LOCAL_SEED_NAMES,
  type Mutant,
  mutant,
  mutants,
  OPERATORS,
  runsWithoutServers,
  seeds,
  validateMutant,
  writeMutant,
} from '../../fuzz/mutants.js';
import { editable } from '../../fuzz/mutate.js';
import { Rng } from '../../fuzz/prng.js';

const COUNT = 2000;
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/**
 * The CLI in `cwd` (where `.pgrunbook/runs` goes): the bundle `npm test` builds first, else the
 * sources through tsx (slower; by path, since `--import tsx` would resolve from cwd).
 */
function cli(args: string[], cwd: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const tsx = pathToFileURL(join(ROOT, 'node_modules/tsx/dist/loader.mjs')).href;
    const entry = existsSync(join(ROOT, 'dist/bundle/main.js'))
      ? [join(ROOT, 'bin/pgrunbook.js')]
      : ['--import', tsx, join(ROOT, 'src/cli/main.ts')];
    const child = spawn(process.execPath, [...entry, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => {
      stdout += c;
    });
    child.stderr.setEncoding('utf8').on('data', (c: string) => {
      stderr += c;
    });
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const work = mkdtempSync(join(tmpdir(), 'pgrb-fuzz-test-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** sha256 over every text of a sequence, field by field, so that no two sequences collide by concatenation. */
function digest(ms: Iterable<Mutant>): { hash: string; list: Mutant[] } {
  const h = createHash('sha256');
  const list: Mutant[] = [];
  for (const m of ms) {
    for (const part of [m.id, m.playbook, m.inventory, JSON.stringify(m.extraVars), m.note])
      h.update(`${part.length}:${part}`);
    list.push(m);
  }
  return { hash: h.digest('hex'), list };
}

// Generated once for the tests below (the slow part: ~2 s per 1,000 mutants).
const first = digest(mutants({ seed: DEFAULT_SEED, count: COUNT }));

/** Seeds, unmutated, as mutants (so they go through the same writer and validator). */
const unmutated = seeds().map(
  (s): Mutant => ({
    id: `${s.name}~none~0`,
    seed: s.name,
    operator: 'none',
    playbook: s.playbook.text,
    inventory: s.inventory.text,
    extraVars: s.extraVars,
    note: 'unmutated',
  }),
);

describe('the fuzz corpus', () => {
  it('every seed validates unmutated with its inventory and -e vars', async () => {
    const verdicts: (readonly [string, Awaited<ReturnType<typeof validateMutant>>])[] = [];
    for (const m of unmutated) verdicts.push([m.seed, await validateMutant(join(work, 'seed'), m)] as const);
    expect(verdicts.filter(([, v]) => v.kind !== 'accept')).toEqual([]);
  });

  it('draws on every shipped playbook, example and fixture, or says why not', () => {
    const files = corpusFiles();
    const used = new Set(seeds().flatMap((s) => [s.playbook.path, s.inventory.path]));
    const missing = [...files.playbooks, ...files.inventories].filter((f) => !used.has(f) && !EXCLUDED[f]);
    expect(missing).toEqual([]);
    expect(files.playbooks).toContain('playbooks/pg-major-upgrade-rollback.yml');
    expect(files.inventories).toContain('examples/gitlab-like/inventory.yml');
  });

  it('an editable copy of a seed serialises like a fresh parse (the fast clone loses nothing)', () => {
    for (const s of seeds())
      for (const text of [s.playbook.text, s.inventory.text]) {
        const fresh = parseDocument(text, { version: '1.2', schema: 'core' }).toString({ lineWidth: 0 });
        expect(editable(text).toString({ lineWidth: 0 }), s.name).toBe(fresh);
      }
  });

  it('has local-transport seeds that `pgrunbook run` executes without servers (exit 0)', async () => {
    const runnable = seeds().filter(runsWithoutServers);
    expect(runnable.map((s) => s.name)).toEqual(expect.arrayContaining([...LOCAL_SEED_NAMES]));
    expect(
      seeds()
        .filter((s) => s.name.startsWith('preflight@'))
        .some(runsWithoutServers),
    ).toBe(false);
    const results = await Promise.all(
      unmutated
        .filter((m) => LOCAL_SEED_NAMES.includes(m.seed))
        .map(async (m) => {
          const dir = join(work, `run-${m.seed}`);
          const f = writeMutant(dir, m);
          const args = [
            'run',
            f.playbook,
            '-i',
            f.inventory,
            '--yes',
            '--output',
            'plain',
            ...extraVarArgs(m.extraVars),
          ];
          return { seed: m.seed, ...(await cli(args, dir)) };
        }),
    );
    for (const r of results) expect(r.code, `${r.seed}\n${r.stdout}\n${r.stderr}`).toBe(0);
  });
});

describe('mutants()', () => {
  it('the same seed gives the same 2,000 mutants, byte for byte; another seed gives others', () => {
    expect(first.list).toHaveLength(COUNT);
    expect(digest(mutants({ seed: DEFAULT_SEED, count: COUNT })).hash).toBe(first.hash);
    const other = digest(mutants({ seed: DEFAULT_SEED + 1, count: 100 }));
    expect(other.hash).not.toBe(digest(first.list.slice(0, 100)).hash);
  });

  it('a prefix of a longer sequence is the shorter sequence; one mutant can be rebuilt alone', () => {
    expect(digest(mutants({ seed: DEFAULT_SEED, count: 60 })).hash).toBe(
      digest(first.list.slice(0, 60)).hash,
    );
    for (const i of [0, 777, COUNT - 1]) expect(mutant(DEFAULT_SEED, i)).toEqual(first.list[i]);
  });

  it('every operator appears at least 20 times in 2,000, and every seed is used', () => {
    const byOp = new Map<string, number>();
    for (const m of first.list) byOp.set(m.operator, (byOp.get(m.operator) ?? 0) + 1);
    for (const op of OPERATORS) expect(byOp.get(op.name) ?? 0, op.name).toBeGreaterThanOrEqual(20);
    expect(new Set(first.list.map((m) => m.seed))).toEqual(new Set(seeds().map((s) => s.name)));
  });

  it('every mutant differs from its seed, has a unique id and says what changed', () => {
    const bySeed = new Map(seeds().map((s) => [s.name, s]));
    expect(new Set(first.list.map((m) => m.id)).size).toBe(COUNT);
    for (const m of first.list) {
      const s = bySeed.get(m.seed)!;
      const same =
        m.playbook === s.playbook.text &&
        m.inventory === s.inventory.text &&
        JSON.stringify(m.extraVars) === JSON.stringify(s.extraVars);
      expect(same, m.id).toBe(false);
      expect(m.id.startsWith(`${m.seed}~${m.operator}~`)).toBe(true);
      expect(m.note.length, m.id).toBeGreaterThan(0);
    }
  });

  it('neutral mutants stay valid (a sample of 12 per neutral operator)', async () => {
    const neutral = new Set(OPERATORS.filter((o) => o.neutral).map((o) => o.name));
    const seen = new Map<string, number>();
    const sample = first.list.filter((m) => {
      if (!neutral.has(m.operator)) return false;
      seen.set(m.operator, (seen.get(m.operator) ?? 0) + 1);
      return seen.get(m.operator)! <= 12;
    });
    expect(sample.length).toBe(12 * neutral.size);
    const rejected = [];
    for (const m of sample) {
      const v = await validateMutant(join(work, 'neutral'), m);
      if (v.kind !== 'accept') rejected.push({ id: m.id, note: m.note, v });
    }
    expect(rejected).toEqual([]);
  });
});

describe('writeMutant and extraVarArgs', () => {
  it('writes playbook.yml, inventory.yml, vars.json and mutant.json', () => {
    const m = first.list.find((x) => Object.keys(x.extraVars).length > 0)!;
    const files = writeMutant(join(work, 'one'), m);
    expect(readFileSync(files.playbook, 'utf8')).toBe(m.playbook);
    expect(readFileSync(files.inventory, 'utf8')).toBe(m.inventory);
    expect(JSON.parse(readFileSync(files.vars, 'utf8'))).toEqual(m.extraVars);
    expect(existsSync(join(files.dir, 'mutant.json'))).toBe(true);
  });

  it('the -e arguments read back, through the CLI parser, as the same values', () => {
    const vars = {
      s: 'abc',
      lsn: '0/3000028',
      num_text: '12',
      n: 42,
      list: ['a', 'b'],
      empty: [],
      b: false,
      e: '',
    };
    const args = extraVarArgs(vars);
    expect(args.filter((_, i) => i % 2 === 0).every((a) => a === '-e')).toBe(true);
    expect(parseExtraVars(args.filter((_, i) => i % 2 === 1))).toEqual(vars);
    for (const m of first.list)
      expect(parseExtraVars(extraVarArgs(m.extraVars).filter((_, i) => i % 2 === 1)), m.id).toEqual(
        m.extraVars,
      );
  });
});

describe('Rng', () => {
  it('is deterministic and stays in range', () => {
    const a = new Rng(7);
    const b = new Rng(7);
    const xs = Array.from({ length: 1000 }, () => a.int(10));
    expect(xs).toEqual(Array.from({ length: 1000 }, () => b.int(10)));
    expect(new Set(xs)).toEqual(new Set([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]));
    expect(new Rng(8).int(1_000_000)).not.toBe(new Rng(7).int(1_000_000));
    expect(new Rng(3).shuffle([1, 2, 3, 4, 5]).sort()).toEqual([1, 2, 3, 4, 5]);
  });
});

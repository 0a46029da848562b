// Runs mutants through `validate`, `validate -i` and `plan` in forked worker processes, timing
// each run and watching memory, and checks issue 11's promises: exit 0 or 2 only, each run under
// 2 s and 500 MB, every located message inside its file. Used by scripts/fuzz-input.ts and CI.
import { fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_SEED, extraVarArgs, mutant, writeMutant } from './mutants.js';

/** Limits per run (the issue's). */
export const LIMIT_MS = 2000;
export const LIMIT_MB = 500;

/** One command's outcome on one mutant. */
export interface RunResult {
  index: number;
  id: string;
  operator: string;
  command: string;
  code: number;
  ms: number;
  /** the worker's peak RSS (MB) after this run: an upper bound of the run's own peak */
  peakMb: number;
  violations: string[];
}

export const COMMANDS = ['validate', 'validate -i', 'plan'] as const;

/** Checks that `file:line:col:` prefixes name a mutant file and a place inside it. */
export function locationViolations(stderr: string, files: Record<string, string>): string[] {
  const out: string[] = [];
  for (const line of stderr.split('\n')) {
    if (line === '' || /^\d+ problems? found; nothing was run\.$/.test(line)) continue;
    const m = /^(.+?):(\d+):(\d+): /.exec(line);
    const text = m ? files[m[1]!] : undefined;
    if (!m || text === undefined) {
      out.push(`no location in a file: ${line.slice(0, 160)}`);
      continue;
    }
    const lines = text.split('\n');
    const l = Number(m[2]);
    const c = Number(m[3]);
    if (l < 1 || l > lines.length || c < 1 || c > lines[l - 1]!.replace(/\r$/, '').length + 1)
      out.push(`location outside the file: ${line.slice(0, 160)}`);
  }
  return out;
}

/** Worker side: runs the given mutants, sends one message per run to the parent. */
async function worker(seed: number, indices: number[], rotate: boolean): Promise<void> {
  const { dispatch } = await import('../../src/cli/dispatch.js');
  const { formatProblem, PgrunbookError, ValidationError } = await import('../../src/errors.js');
  const dir = mkdtempSync(join(tmpdir(), 'pgrb-fuzz-input-'));
  const realStdout = process.stdout.write.bind(process.stdout);
  const realStderr = process.stderr.write.bind(process.stderr);
  try {
    for (const index of indices) {
      const m = mutant(seed, index);
      const f = writeMutant(dir, m);
      const files = { [f.playbook]: m.playbook, [f.inventory]: m.inventory };
      for (const command of rotate ? [COMMANDS[index % COMMANDS.length]!] : COMMANDS) {
        const argv =
          command === 'validate'
            ? ['validate', f.playbook]
            : [command.split(' ')[0]!, f.playbook, '-i', f.inventory, ...extraVarArgs(m.extraVars)];
        let stderr = '';
        process.stdout.write = (() => true) as typeof process.stdout.write;
        process.stderr.write = ((s: string) => {
          stderr += s;
          return true;
        }) as typeof process.stderr.write;
        const t0 = performance.now();
        let code: number;
        try {
          code = await dispatch(argv);
        } catch (err) {
          // What src/cli/main.ts does with a thrown error.
          if (err instanceof ValidationError) {
            for (const p of err.problems) stderr += `${formatProblem(p)}\n`;
            code = 2;
          } else if (err instanceof PgrunbookError) {
            stderr += `pgrunbook: ${err.message}\n`;
            code = 2;
          } else {
            stderr += `internal error: ${err instanceof Error ? err.stack : String(err)}\n`;
            code = 70;
          }
        } finally {
          process.stdout.write = realStdout;
          process.stderr.write = realStderr;
        }
        const ms = performance.now() - t0;
        const peakMb = process.resourceUsage().maxRSS / 1024;
        const violations: string[] = [];
        if (code !== 0 && code !== 2) violations.push(`exit ${code}: ${stderr.slice(0, 300)}`);
        if (ms > LIMIT_MS) violations.push(`${Math.round(ms)} ms (limit ${LIMIT_MS})`);
        if (peakMb > LIMIT_MB) violations.push(`peak RSS ${Math.round(peakMb)} MB (limit ${LIMIT_MB})`);
        if (code === 2) violations.push(...locationViolations(stderr, files));
        const r: RunResult = { index, id: m.id, operator: m.operator, command, code, ms, peakMb, violations };
        process.send!(r);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Parent side: `count` mutants of `seed` over `workers` forked processes; every run's result. */
export async function runInput(opts: {
  seed?: number;
  count: number;
  workers?: number;
  /** each mutant through one command, in turn (a cheaper slice), instead of all three */
  rotate?: boolean;
  onResult?: (r: RunResult) => void;
}): Promise<RunResult[]> {
  const seed = opts.seed ?? DEFAULT_SEED;
  const n = opts.workers ?? 2;
  const results: RunResult[] = [];
  const self = fileURLToPath(import.meta.url);
  await Promise.all(
    Array.from({ length: n }, (_, w) => {
      const indices = Array.from({ length: opts.count }, (_, i) => i).filter((i) => i % n === w);
      return new Promise<void>((res, rej) => {
        const child = fork(
          self,
          ['--worker', String(seed), indices.join(','), opts.rotate ? 'rotate' : 'all'],
          {
            execArgv: ['--import', 'tsx'],
            stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
          },
        );
        child.on('message', (r: RunResult) => {
          results.push(r);
          opts.onResult?.(r);
        });
        child.on('exit', (code) => (code === 0 ? res() : rej(new Error(`fuzz worker ${w} exited ${code}`))));
      });
    }),
  );
  return results.sort((a, b) => a.index - b.index);
}

if (process.argv[2] === '--worker') {
  const indices = (process.argv[4] ?? '').split(',').filter(Boolean).map(Number);
  await worker(Number(process.argv[3]), indices, process.argv[5] === 'rotate');
  process.exit(0);
}

// What the benchmark scripts share: timed child processes, the overall time limit, clean-up that
// always runs, argument checks and table printing. Each script keeps its own measurements and report.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

// The repository's root directory.
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
// The built command line, run as `node CLI ...`.
export const CLI = join(ROOT, 'bin', 'pgrunbook.js');
// GNU time reports a child's CPU (user+sys, with the children it waited for); optional.
const TIME_BIN = existsSync('/usr/bin/time') ? '/usr/bin/time' : undefined;

// An error's message, or the thrown value as text.
export const errText = (err: unknown) => (err instanceof Error ? err.message : String(err));

// A line on stderr, marked as the benchmark's own.
export const log = (s: string) => process.stderr.write(`[bench] ${s}\n`);

// The last n characters of a (long) output, for an error message.
export function tail(s: string, n = 1500): string {
  return s.length > n ? `…${s.slice(-n)}` : s;
}

// The options every benchmark takes, once parsed (runMain needs timeoutS and help).
export interface CommonOptions {
  repeat: number;
  warmup: number;
  timeoutS: number;
  keep: boolean;
  help: boolean;
}

// parseArgs' declarations of those options: --repeat, --warmup, --timeout, --keep and --help.
export const commonOptionSpecs = (timeoutS: number) =>
  ({
    repeat: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '1' },
    timeout: { type: 'string', default: String(timeoutS) },
    keep: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  }) as const;

// Checks a command-line value is an integer in min..max and returns it.
export function intOption(name: string, v: string, min: number, max: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new Error(`--${name}: expected an integer ${min}..${max}, got "${v}"`);
  return n;
}

// ---------------------------------------------------------------------------------------------
// Child processes: timed from spawn to exit, killed (by process group) on the overall timeout.

// The outcome of one timed child process.
export interface ChildRun {
  /** wall clock from spawn to exit: what a user waits for */
  ms: number;
  /** user+sys CPU of the process and the children it waited for (GNU time), when asked for */
  cpuMs?: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

// The child processes still running, killed on clean-up.
export const liveChildren = new Set<ChildProcess>();
/** Set once clean-up has begun: no new measurement, no new child process. */
let stopping = false;
let deadline = Number.POSITIVE_INFINITY;
let timeDir: string | undefined;
let timeFiles = 0;

// Whether clean-up has begun (the time limit, a signal or the end): start nothing new.
export const isStopping = () => stopping;

// Time left before the overall limit, as a child's own limit (unbounded unless runMain was told to).
export const remainingMs = () => Math.max(1000, deadline - Date.now());

// Turns on CPU figures (GNU time) for timeChild, which writes its reports into dir.
export function measureCpuIn(dir: string): void {
  timeDir = dir;
}

// Kills a child started detached, with its whole process group (the workers it started too).
export function killChild(c: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): void {
  if (c.pid === undefined || c.exitCode !== null || c.signalCode !== null) return;
  try {
    process.kill(-c.pid, signal); // its own process group (detached)
  } catch {
    try {
      c.kill(signal);
    } catch {
      // already gone
    }
  }
}

// Runs a command to its exit, timed, with its output; killed after timeoutMs (and at the overall limit).
export function timeChild(
  file: string,
  args: string[],
  opts: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; cpu?: boolean },
): Promise<ChildRun> {
  const timeoutMs = Math.min(opts.timeoutMs ?? Number.POSITIVE_INFINITY, remainingMs());
  // GNU time around the command for its CPU figure; its own exec adds about a millisecond.
  const cpuFile =
    opts.cpu !== false && TIME_BIN && timeDir ? join(timeDir, `time-${++timeFiles}.txt`) : undefined;
  const [f, a] =
    cpuFile && TIME_BIN ? [TIME_BIN, ['-q', '-f', '%U %S', '-o', cpuFile, file, ...args]] : [file, args];
  return new Promise((res, rej) => {
    if (stopping) {
      rej(new Error('stopping'));
      return;
    }
    const t0 = performance.now();
    const c = spawn(f, a, {
      cwd: opts.cwd,
      env: opts.env ?? process.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    liveChildren.add(c);
    let stdout = '';
    let stderr = '';
    c.stdout?.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    c.stderr?.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    const timer = Number.isFinite(timeoutMs)
      ? setTimeout(() => {
          stderr += `\n[bench] killed after ${Math.round(timeoutMs)} ms\n`;
          killChild(c);
        }, timeoutMs)
      : undefined;
    c.once('error', (err) => {
      clearTimeout(timer);
      liveChildren.delete(c);
      rej(new Error(`${file}: ${err.message}`));
    });
    c.once('exit', (code, signal) => {
      const ms = performance.now() - t0;
      clearTimeout(timer);
      let settled = false;
      const done = async () => {
        if (settled) return;
        settled = true;
        liveChildren.delete(c);
        let cpuMs: number | undefined;
        if (cpuFile) {
          const last = (await readFile(cpuFile, 'utf8').catch(() => '')).trim().split('\n').pop() ?? '';
          const [u, s] = last.split(' ').map(Number);
          if (Number.isFinite(u) && Number.isFinite(s)) cpuMs = ((u as number) + (s as number)) * 1000;
        }
        res({ ms, cpuMs, code, signal, stdout, stderr });
      };
      // Output still in the pipes arrives before 'close'; a grandchild holding a pipe open (an ssh
      // ControlMaster) must not stall us, hence the cap.
      const cap = setTimeout(() => void done(), 2000);
      c.once('close', () => {
        clearTimeout(cap);
        void done();
      });
    });
  });
}

// The error for a failed pgrunbook run (or any child): why, then the ends of its stderr and stdout.
export function runFailure(what: string, why: string, r: ChildRun): Error {
  return new Error(`${what}: ${why}\n--- stderr ---\n${tail(r.stderr)}\n--- stdout ---\n${tail(r.stdout)}`);
}

// The JSON events in the output of `pgrunbook run --output json`, one a line.
export function jsonEvents<T>(stdout: string): T[] {
  const events: T[] = [];
  for (const line of stdout.split('\n')) if (line.startsWith('{')) events.push(JSON.parse(line) as T);
  return events;
}

// ---------------------------------------------------------------------------------------------
// Set-up: the build, a work directory, the machine.

// Whether dist/ is built; says so on stderr when it is not.
export function checkBuild(): boolean {
  if (existsSync(join(ROOT, 'dist', 'bundle', 'main.js'))) return true;
  process.stderr.write('dist/ is missing: run `npm run build` first\n');
  return false;
}

// A new temporary directory, removed on clean-up (or kept and named with --keep).
export async function workDir(prefix: string, keep: boolean): Promise<string> {
  const work = await mkdtemp(join(tmpdir(), prefix));
  atCleanUp(async () => {
    if (keep) log(`kept ${work}`);
    else await rm(work, { recursive: true, force: true });
  });
  return work;
}

// The 1, 5 and 15 minute load averages, as text.
export const loadAverage = () =>
  loadavg()
    .map((l) => l.toFixed(2))
    .join(' ');

// The machine in one line: Node's version, the CPUs and the load.
export const machineLine = () =>
  `node ${process.version}, ${availableParallelism()} CPUs, load average ${loadAverage()}`;

// Prints a warning when the machine is already busy (load above half its CPUs).
export function warnIfBusy(hint = ''): void {
  if ((loadavg()[0] ?? 0) > availableParallelism() / 2)
    process.stdout.write(`WARNING: the machine is busy; wall-clock figures may be inflated${hint}\n`);
}

// ---------------------------------------------------------------------------------------------
// Reporting.

// The median of some numbers; undefined for none.
export function median(xs: number[]): number | undefined {
  if (xs.length === 0) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

// a / b, or undefined when either is unknown or b is not positive.
export const ratio = (a?: number, b?: number) =>
  a !== undefined && b !== undefined && b > 0 ? a / b : undefined;

// A ratio as "1.23×", or "—" when unknown.
export const fmtRatio = (v?: number) => (v === undefined || !Number.isFinite(v) ? '—' : `${v.toFixed(2)}×`);

// PASS or FAIL for a value against its target, n/a when unknown.
export const verdict = (v: number | undefined, ok: (v: number) => boolean) =>
  v === undefined || !Number.isFinite(v) ? 'n/a' : ok(v) ? 'PASS' : 'FAIL';

// Rows as an indented text table, columns padded to width (right-aligned where listed).
export function table(rows: string[][], rightAlign: Set<number>): string {
  const widths = (rows[0] ?? []).map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows
    .map(
      (r) =>
        `  ${r
          .map((c, i) =>
            rightAlign.has(i) ? c.padStart(widths[i] as number) : c.padEnd(widths[i] as number),
          )
          .join('   ')
          .trimEnd()}\n`,
    )
    .join('');
}

// ---------------------------------------------------------------------------------------------
// Clean-up that always runs: on success, failure, the overall time limit and Ctrl-C.

const cleanups: (() => Promise<unknown>)[] = [];

// Registers a clean-up step; they run last-registered first.
export function atCleanUp(f: () => Promise<unknown>): void {
  cleanups.push(f);
}

async function cleanUp(): Promise<void> {
  // The test helpers unref their processes (sshd, watchdogs): without a referenced handle Node would
  // exit in the middle of a stop() or destroy(), leaving its files and ours behind.
  const hold = setInterval(() => {}, 1000);
  try {
    for (const c of liveChildren) killChild(c);
    for (let f = cleanups.pop(); f; f = cleanups.pop()) {
      await f().catch((err: unknown) => log(`clean-up: ${errText(err)}`));
    }
  } finally {
    clearInterval(hold);
  }
}

let exiting: Promise<never> | undefined;
/** Cleans up once, then exits; a second call (Ctrl-C during clean-up) waits for the first. */
function exitWith(code: number, graceMs: number): Promise<never> {
  stopping = true;
  exiting ??= (async () => {
    // Clean-up itself must not hang either.
    setTimeout(() => process.exit(code), graceMs).unref();
    await cleanUp();
    process.exit(code);
  })();
  return exiting;
}

// Runs a benchmark: parses its arguments (usage and exit 2 when wrong, usage for --help), holds it
// to --timeout (exit 3), cleans up on SIGINT/SIGTERM (exit 130), and exits with main's code.
export function runMain<O extends CommonOptions>(spec: {
  usage: string;
  parse: (argv: string[]) => O;
  main: (opts: O) => Promise<number>;
  /** how long clean-up may take before the process exits anyway */
  cleanUpMs: number;
  /** whether each child's own limit is also cut to the time left before the overall limit */
  childrenWithinLimit?: boolean;
}): void {
  let options: O;
  try {
    options = spec.parse(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${errText(err)}\n${spec.usage}`);
    process.exit(2);
  }
  if (options.help) {
    process.stdout.write(spec.usage);
    process.exit(0);
  }

  // A hard limit on the whole benchmark: it can never hang.
  if (spec.childrenWithinLimit) deadline = Date.now() + options.timeoutS * 1000;
  setTimeout(() => {
    log(`overall time limit of ${options.timeoutS} s reached: stopping everything`);
    void exitWith(3, spec.cleanUpMs);
  }, options.timeoutS * 1000).unref();
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      log(`${sig}: cleaning up`);
      void exitWith(130, spec.cleanUpMs);
    });
  }

  spec.main(options).then(
    (code) => exitWith(code, spec.cleanUpMs),
    (err: unknown) => {
      log(err instanceof Error ? (err.stack ?? err.message) : String(err));
      return exitWith(1, spec.cleanUpMs);
    },
  );
}

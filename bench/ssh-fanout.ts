// SSH fan-out benchmark: pgrunbook vs ansible-playbook vs raw ssh2, HOSTS × STEPS `echo ok`.
//
//   npx tsx bench/ssh-fanout.ts [--hosts 10] [--steps 20] [--repeat 3] [--plan-hosts 12]
//                               [--warmup 1] [--timeout 600] [--no-ansible] [--keep]
//
// Every host is an alias of one private loopback sshd (test/env), so the figures measure the
// runners, not a network. Needs `npm run build` first (it runs dist/ through bin/pgrunbook.js).
// Exit codes: 0 every run worked (a missed speed target is reported, not an error); 1 a run failed
// functionally; 2 bad arguments or no build; 3 the overall time limit was hit; 130 interrupted.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { type SshServer, startSshd } from '../test/env/index.js';
import { type FloorConfig, type FloorResult, runFloor } from './floor.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const CLI = join(ROOT, 'bin', 'pgrunbook.js');
const FLOOR = join(ROOT, 'bench', 'floor.mjs');
const COMMAND = 'echo ok';
// GNU time reports a child's CPU (user+sys, with the children it waited for); optional.
const TIME_BIN = existsSync('/usr/bin/time') ? '/usr/bin/time' : undefined;

const TARGET_ANSIBLE_RATIO = 20; // ansible / pgrunbook ≥ this
// pgrunbook / floor ≤ this. Judged process against process: pgrunbook is timed spawn → exit,
// so its peer is the same raw-ssh2 loop started as its own Node process. The in-process floor
// (no Node start-up, no module loading, warm JIT) is printed beside it for reference.
const TARGET_FLOOR_RATIO = 1.5;
const TARGET_PLAN_MS = 300; // pgrunbook plan, wall clock ≤ this

interface Options {
  hosts: number;
  steps: number;
  repeat: number;
  planHosts: number;
  warmup: number;
  timeoutS: number;
  ansible: boolean;
  keep: boolean;
}

const USAGE =
  'usage: npx tsx bench/ssh-fanout.ts [--hosts N=10] [--steps M=20] [--repeat R=3] [--plan-hosts P=12]\n' +
  '                                   [--warmup W=1] [--timeout SECONDS=600] [--no-ansible] [--keep]\n';

function parseOptions(argv: string[]): Options & { help: boolean } {
  const { values } = parseArgs({
    args: argv,
    options: {
      hosts: { type: 'string', default: '10' },
      steps: { type: 'string', default: '20' },
      repeat: { type: 'string', default: '3' },
      'plan-hosts': { type: 'string', default: '12' },
      warmup: { type: 'string', default: '1' },
      timeout: { type: 'string', default: '600' },
      'no-ansible': { type: 'boolean', default: false },
      keep: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  const int = (name: string, v: string, min: number, max: number) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max)
      throw new Error(`--${name}: expected an integer ${min}..${max}, got "${v}"`);
    return n;
  };
  return {
    hosts: int('hosts', values.hosts, 1, 99),
    steps: int('steps', values.steps, 1, 10_000),
    repeat: int('repeat', values.repeat, 1, 100),
    planHosts: int('plan-hosts', values['plan-hosts'], 1, 99),
    warmup: int('warmup', values.warmup, 0, 10),
    timeoutS: int('timeout', values.timeout, 10, 86_400),
    ansible: !values['no-ansible'],
    keep: values.keep,
    help: values.help,
  };
}

const errText = (err: unknown) => (err instanceof Error ? err.message : String(err));

// ---------------------------------------------------------------------------------------------
// Child processes: timed from spawn to exit, killed (by process group) on the overall timeout.

interface ChildRun {
  /** wall clock from spawn to exit: what a user waits for */
  ms: number;
  /** user+sys CPU of the process and the children it waited for (GNU time), when available */
  cpuMs?: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

const live = new Set<ChildProcess>();
/** Set once clean-up has begun: no new measurement, no new child process. */
let stopping = false;
let timeDir: string | undefined;
let timeFiles = 0;

function killChild(c: ChildProcess): void {
  if (c.pid === undefined || c.exitCode !== null || c.signalCode !== null) return;
  try {
    process.kill(-c.pid, 'SIGKILL'); // its own process group (detached): ansible's workers too
  } catch {
    try {
      c.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
}

function timeChild(
  file: string,
  args: string[],
  opts: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs: number; cpu?: boolean },
): Promise<ChildRun> {
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
    live.add(c);
    let stdout = '';
    let stderr = '';
    c.stdout?.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    c.stderr?.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    const timer = setTimeout(() => {
      stderr += `\n[bench] killed after ${opts.timeoutMs} ms\n`;
      killChild(c);
    }, opts.timeoutMs);
    c.once('error', (err) => {
      clearTimeout(timer);
      live.delete(c);
      rej(new Error(`${file}: ${err.message}`));
    });
    c.once('exit', (code, signal) => {
      const ms = performance.now() - t0;
      clearTimeout(timer);
      let settled = false;
      const done = async () => {
        if (settled) return;
        settled = true;
        live.delete(c);
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

// ---------------------------------------------------------------------------------------------
// Inputs for both runners.

const hostName = (i: number) => `h${String(i + 1).padStart(2, '0')}`;
const hostNames = (n: number) => Array.from({ length: n }, (_, i) => hostName(i));

function pgrunbookInventory(sshd: SshServer, n: number): string {
  const lines = ['hosts:'];
  for (const h of hostNames(n)) {
    lines.push(
      `  ${h}:`,
      '    transport: ssh',
      '    ssh:',
      `      host: ${sshd.host}`,
      `      port: ${sshd.port}`,
      `      user: ${sshd.user}`,
      `      identity_file: ${JSON.stringify(sshd.identityFile)}`,
      `      known_hosts: ${JSON.stringify(sshd.knownHostsFile)}`,
    );
  }
  return `${lines.join('\n')}\n`;
}

function pgrunbookPlaybook(forks: number, steps: number): string {
  const lines = ['- name: fanout', '  hosts: all', `  forks: ${forks}`, '  steps:'];
  for (let s = 0; s < steps; s++)
    lines.push(`    - name: step ${s + 1}`, `      shell: ${JSON.stringify(COMMAND)}`);
  return `${lines.join('\n')}\n`;
}

function ansibleInventory(sshd: SshServer, n: number, controlDir: string): string {
  const lines = ['[fanout]'];
  for (const h of hostNames(n)) {
    // One control path per alias: hosts sharing ip:port:user would otherwise share one ControlMaster.
    lines.push(
      `${h} ansible_host=${sshd.host} ansible_port=${sshd.port} ansible_user=${sshd.user} ` +
        `ansible_ssh_private_key_file=${sshd.identityFile} ansible_control_path=${join(controlDir, h)}`,
    );
  }
  lines.push(
    '',
    '[fanout:vars]',
    `ansible_ssh_common_args='-o UserKnownHostsFile=${sshd.knownHostsFile} -o StrictHostKeyChecking=yes'`,
    'ansible_ssh_pipelining=true',
  );
  return `${lines.join('\n')}\n`;
}

function ansiblePlaybook(steps: number): string {
  const lines = ['- name: fanout', '  hosts: fanout', '  gather_facts: false', '  tasks:'];
  for (let s = 0; s < steps; s++)
    lines.push(`    - name: step ${s + 1}`, `      ansible.builtin.command: ${COMMAND}`);
  return `${lines.join('\n')}\n`;
}

// ---------------------------------------------------------------------------------------------
// The measurements: each returns one sample or throws with what went wrong.

/** One timed run: wall clock, and the runner's CPU when known. */
interface Sample {
  ms: number;
  cpuMs?: number;
}

interface Ctx {
  opts: Options;
  sshd: SshServer;
  work: string;
  pgrbCwd: string;
  pgrbInventory: string;
  pgrbPlaybook: string;
  planInventory: string;
  planPlaybook: string;
  ansibleDir: string;
  childTimeoutMs: number;
}

function tail(s: string, n = 1500): string {
  return s.length > n ? `…${s.slice(-n)}` : s;
}

async function measurePgrunbook(ctx: Ctx): Promise<Sample> {
  const { hosts, steps } = ctx.opts;
  // Its own working directory: the run journal goes to ./.pgrunbook/runs/.
  const r = await timeChild(
    process.execPath,
    [CLI, 'run', ctx.pgrbPlaybook, '-i', ctx.pgrbInventory, '--output', 'json'],
    {
      cwd: ctx.pgrbCwd,
      timeoutMs: ctx.childTimeoutMs,
    },
  );
  const fail = (why: string) =>
    new Error(`pgrunbook run: ${why}\n--- stderr ---\n${tail(r.stderr)}\n--- stdout ---\n${tail(r.stdout)}`);
  if (r.code !== 0) throw fail(`exit ${r.code ?? r.signal}`);
  let ok = 0;
  let other = 0;
  let finished = '';
  const seen = new Set<string>();
  for (const line of r.stdout.split('\n')) {
    if (!line.startsWith('{')) continue;
    const e = JSON.parse(line) as { type?: string; status?: string; host?: string };
    if (e.type === 'step_finished') {
      if (e.status === 'ok') {
        ok++;
        seen.add(String(e.host));
      } else other++;
    }
    if (e.type === 'run_finished') finished = String(e.status);
  }
  if (ok !== hosts * steps || other !== 0 || seen.size !== hosts || finished !== 'ok') {
    throw fail(
      `expected ${hosts * steps} step_finished ok on ${hosts} hosts and run_finished ok; ` +
        `got ${ok} ok, ${other} other, ${seen.size} hosts, run_finished ${finished || 'missing'}`,
    );
  }
  return r;
}

async function measurePlan(ctx: Ctx): Promise<Sample> {
  const r = await timeChild(process.execPath, [CLI, 'plan', ctx.planPlaybook, '-i', ctx.planInventory], {
    cwd: ctx.pgrbCwd,
    timeoutMs: ctx.childTimeoutMs,
  });
  const missing = hostNames(ctx.opts.planHosts).filter((h) => !r.stdout.includes(h));
  if (r.code !== 0 || missing.length > 0) {
    throw new Error(
      `pgrunbook plan: exit ${r.code ?? r.signal}, hosts missing from the plan: ${missing.join(' ') || 'none'}\n${tail(r.stderr || r.stdout)}`,
    );
  }
  return r;
}

let ansibleRuns = 0;

async function measureAnsible(ctx: Ctx): Promise<Sample> {
  const { hosts, steps } = ctx.opts;
  // A fresh control-path directory and inventory per run: every run starts cold, like pgrunbook's.
  const run = ++ansibleRuns;
  const controlDir = join(ctx.ansibleDir, `cp${run}`);
  await mkdir(controlDir, { mode: 0o700 });
  const inventory = join(ctx.ansibleDir, `inventory${run}.ini`);
  await writeFile(inventory, ansibleInventory(ctx.sshd, hosts, controlDir));
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ANSIBLE_CONFIG: join(ctx.ansibleDir, 'ansible.cfg'), // empty: no ~/.ansible.cfg or /etc/ansible
    ANSIBLE_HOME: join(ctx.ansibleDir, 'home'),
    ANSIBLE_LOCAL_TEMP: join(ctx.ansibleDir, 'tmp'),
    ANSIBLE_SSH_CONTROL_PATH_DIR: controlDir,
    ANSIBLE_HOST_KEY_CHECKING: 'True',
    ANSIBLE_PIPELINING: 'True',
    ANSIBLE_FORKS: String(hosts),
    ANSIBLE_PYTHON_INTERPRETER: '/usr/bin/python3',
    ANSIBLE_RETRY_FILES_ENABLED: 'False',
    ANSIBLE_NOCOLOR: '1',
  };
  let r: ChildRun;
  try {
    r = await timeChild(
      'ansible-playbook',
      ['-i', inventory, '-f', String(hosts), join(ctx.ansibleDir, 'playbook.yml')],
      {
        cwd: ctx.ansibleDir,
        env,
        timeoutMs: ctx.childTimeoutMs,
      },
    );
  } finally {
    await closeControlMasters(ctx.sshd, hosts, controlDir, env);
  }
  const fail = (why: string) =>
    new Error(
      `ansible-playbook: ${why}\n--- stdout ---\n${tail(r.stdout)}\n--- stderr ---\n${tail(r.stderr)}`,
    );
  if (r.code !== 0) throw fail(`exit ${r.code ?? r.signal}`);
  const recap = new Map<string, Record<string, number>>();
  for (const m of r.stdout.matchAll(/^(\S+)\s+:\s+(ok=\d+.*)$/gm)) {
    const counts: Record<string, number> = {};
    for (const kv of (m[2] as string).trim().split(/\s+/)) {
      const [k, v] = kv.split('=');
      if (k) counts[k] = Number(v);
    }
    recap.set(m[1] as string, counts);
  }
  for (const h of hostNames(hosts)) {
    const c = recap.get(h);
    if (!c || c.ok !== steps || c.failed !== 0 || c.unreachable !== 0) {
      throw fail(
        `recap for ${h}: expected ok=${steps} failed=0 unreachable=0, got ${c ? JSON.stringify(c) : 'no recap line'}`,
      );
    }
  }
  return r;
}

/** Ends the ControlPersist masters ansible left behind, so the next run starts cold. */
async function closeControlMasters(
  sshd: SshServer,
  hosts: number,
  controlDir: string,
  env: NodeJS.ProcessEnv,
): Promise<void> {
  await Promise.all(
    hostNames(hosts).map((h) => {
      const path = join(controlDir, h);
      if (!existsSync(path)) return Promise.resolve();
      return timeChild(
        'ssh',
        ['-o', `ControlPath=${path}`, '-O', 'exit', '-p', String(sshd.port), `${sshd.user}@${sshd.host}`],
        {
          cwd: controlDir,
          env,
          timeoutMs: 10_000,
          cpu: false,
        },
      ).catch(() => undefined);
    }),
  );
}

function floorConfig(ctx: Ctx): FloorConfig {
  const { sshd, opts } = ctx;
  return {
    host: sshd.host,
    port: sshd.port,
    user: sshd.user,
    identityFile: sshd.identityFile,
    knownHostsFile: sshd.knownHostsFile,
    hosts: opts.hosts,
    steps: opts.steps,
    command: COMMAND,
    expectStdout: 'ok\n',
  };
}

function checkFloor(r: FloorResult, ctx: Ctx, what: string): void {
  const want = ctx.opts.hosts * ctx.opts.steps;
  if (r.error || r.ok !== want || r.bad !== 0)
    throw new Error(`${what}: ${r.error ?? `expected ${want} ok, got ${r.ok} ok and ${r.bad} bad`}`);
}

async function measureFloor(ctx: Ctx): Promise<Sample> {
  const cpu0 = process.cpuUsage();
  const r = await runFloor(floorConfig(ctx));
  const cpu = process.cpuUsage(cpu0);
  checkFloor(r, ctx, 'floor (in-process)');
  return { ms: r.ms, cpuMs: (cpu.user + cpu.system) / 1000 };
}

async function measureFloorProcess(ctx: Ctx): Promise<Sample> {
  const r = await timeChild(process.execPath, [FLOOR, JSON.stringify(floorConfig(ctx))], {
    cwd: ROOT,
    timeoutMs: ctx.childTimeoutMs,
  });
  if (r.code !== 0)
    throw new Error(`floor (node process): exit ${r.code ?? r.signal}: ${tail(r.stderr || r.stdout)}`);
  checkFloor(JSON.parse(r.stdout.trim()) as FloorResult, ctx, 'floor (node process)');
  return r;
}

async function measureNodeStart(ctx: Ctx): Promise<Sample> {
  const r = await timeChild(process.execPath, ['-e', '0'], { cwd: ctx.work, timeoutMs: ctx.childTimeoutMs });
  if (r.code !== 0) throw new Error(`node -e 0: exit ${r.code ?? r.signal}`);
  return r;
}

// ---------------------------------------------------------------------------------------------
// Reporting.

function median(xs: number[]): number | undefined {
  if (xs.length === 0) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : ((s[m - 1] as number) + (s[m] as number)) / 2;
}
const fmtMs = (ms: number | undefined) =>
  ms === undefined ? '—' : ms >= 10_000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`;

interface Series {
  key: string;
  label: string;
  samples: Sample[];
  error?: string;
}

const wallMedian = (s?: Series) => (s && !s.error ? median(s.samples.map((x) => x.ms)) : undefined);
const cpuMedian = (s?: Series) =>
  s && !s.error && s.samples.every((x) => x.cpuMs !== undefined)
    ? median(s.samples.map((x) => x.cpuMs as number))
    : undefined;

function table(rows: string[][], rightAlign: Set<number>): string {
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

function report(opts: Options, series: Series[]): string {
  const by = new Map(series.map((s) => [s.key, s]));
  let out = `\nwall clock (spawn → exit for processes), median of ${opts.repeat}; CPU = user+sys of the runner\n`;
  out += table(
    [
      ['', 'wall', 'CPU', 'every run (wall)'],
      ...series.map((s) => [
        s.label,
        s.error ? 'FAILED' : fmtMs(wallMedian(s)),
        s.error ? '' : fmtMs(cpuMedian(s)),
        s.error ? (s.error.split('\n')[0] ?? '') : s.samples.map((x) => fmtMs(x.ms)).join(', '),
      ]),
    ],
    new Set([1, 2]),
  );
  const pg = wallMedian(by.get('pgrunbook'));
  const an = wallMedian(by.get('ansible'));
  const fl = wallMedian(by.get('floor'));
  const flp = wallMedian(by.get('floorProc'));
  const pl = wallMedian(by.get('plan'));
  const ratio = (a?: number, b?: number) => (a !== undefined && b !== undefined ? a / b : undefined);
  const x = (v?: number) => (v === undefined ? '—' : `${v.toFixed(2)}×`);
  const verdict = (v: number | undefined, ok: (v: number) => boolean) =>
    v === undefined ? 'n/a' : ok(v) ? 'PASS' : 'FAIL';
  const rA = ratio(an, pg);
  const rF = ratio(pg, fl);
  const rFP = ratio(pg, flp);
  const rCpu = ratio(cpuMedian(by.get('pgrunbook')), cpuMedian(by.get('floorProc')));
  out += '\n';
  out += table(
    [
      ['check', 'value', 'target', 'verdict'],
      [
        'ansible / pgrunbook (wall)',
        x(rA),
        `≥ ${TARGET_ANSIBLE_RATIO}×`,
        verdict(rA, (v) => v >= TARGET_ANSIBLE_RATIO),
      ],
      [
        'pgrunbook / floor node process (wall)',
        x(rFP),
        `≤ ${TARGET_FLOOR_RATIO}×`,
        verdict(rFP, (v) => v <= TARGET_FLOOR_RATIO),
      ],
      ['pgrunbook / floor in-process (wall)', x(rF), '(info)', ''],
      ['pgrunbook / floor node process (CPU)', x(rCpu), '(info)', ''],
      [
        `pgrunbook plan, ${opts.planHosts} hosts (wall)`,
        fmtMs(pl),
        `≤ ${TARGET_PLAN_MS} ms`,
        verdict(pl, (v) => v <= TARGET_PLAN_MS),
      ],
    ],
    new Set([1]),
  );
  return out;
}

// ---------------------------------------------------------------------------------------------
// Clean-up that always runs: on success, failure, the overall time limit and Ctrl-C.

const cleanups: (() => Promise<unknown>)[] = [];

async function cleanUp(): Promise<void> {
  // The test helpers unref their processes (sshd, watchdog): without a referenced handle Node would
  // exit in the middle of sshd.stop(), leaving its files and ours behind.
  const hold = setInterval(() => {}, 1000);
  try {
    for (const c of live) killChild(c);
    for (let f = cleanups.pop(); f; f = cleanups.pop()) {
      await f().catch((err: unknown) => process.stderr.write(`[bench] clean-up: ${errText(err)}\n`));
    }
  } finally {
    clearInterval(hold);
  }
}

let exiting: Promise<never> | undefined;
/** Cleans up once, then exits; a second call (Ctrl-C during clean-up) waits for the first. */
function exitWith(code: number): Promise<never> {
  stopping = true;
  exiting ??= (async () => {
    // Clean-up itself must not hang either.
    setTimeout(() => process.exit(code), 30_000).unref();
    await cleanUp();
    process.exit(code);
  })();
  return exiting;
}

// ---------------------------------------------------------------------------------------------

async function main(opts: Options): Promise<number> {
  if (!existsSync(join(ROOT, 'dist', 'bundle', 'main.js'))) {
    process.stderr.write('dist/ is missing: run `npm run build` first\n');
    return 2;
  }
  const { hosts, steps, repeat, planHosts, warmup } = opts;

  const work = await mkdtemp(join(tmpdir(), 'pgrb-bench-'));
  cleanups.push(async () => {
    if (opts.keep) process.stderr.write(`[bench] kept ${work}\n`);
    else await rm(work, { recursive: true, force: true });
  });
  const sshd = await startSshd();
  cleanups.push(() => sshd.stop());

  timeDir = join(work, 'time');
  const ansibleDir = join(work, 'ansible');
  const ctx: Ctx = {
    opts,
    sshd,
    work,
    pgrbCwd: join(work, 'pgrunbook-cwd'),
    pgrbInventory: join(work, 'inventory.yml'),
    pgrbPlaybook: join(work, 'fanout.yml'),
    planInventory: join(work, 'plan-inventory.yml'),
    planPlaybook: join(work, 'plan-fanout.yml'),
    ansibleDir,
    childTimeoutMs: Math.min(300_000, opts.timeoutS * 1000),
  };
  await Promise.all([
    mkdir(timeDir),
    mkdir(ctx.pgrbCwd),
    mkdir(join(ansibleDir, 'tmp'), { recursive: true }),
  ]);
  await Promise.all([
    writeFile(ctx.pgrbInventory, pgrunbookInventory(sshd, hosts)),
    writeFile(ctx.pgrbPlaybook, pgrunbookPlaybook(hosts, steps)),
    writeFile(ctx.planInventory, pgrunbookInventory(sshd, planHosts)),
    writeFile(ctx.planPlaybook, pgrunbookPlaybook(planHosts, steps)),
    writeFile(
      join(ansibleDir, 'ansible.cfg'),
      '# deliberately empty: the settings come from the environment\n',
    ),
    writeFile(join(ansibleDir, 'playbook.yml'), ansiblePlaybook(steps)),
  ]);

  const load = () =>
    loadavg()
      .map((l) => l.toFixed(2))
      .join(' ');
  const cores = availableParallelism();
  process.stdout.write(
    `ssh fan-out: ${hosts} host aliases of one loopback sshd (127.0.0.1:${sshd.port}) × ${steps} steps of ` +
      `\`${COMMAND}\` = ${hosts * steps} commands, forks ${hosts}; ${warmup} untimed warm-up, ${repeat} timed rounds\n` +
      `node ${process.version}, ${cores} CPUs, load average ${load()}\n`,
  );
  if ((loadavg()[0] ?? 0) > cores / 2) {
    process.stdout.write(
      'WARNING: the machine is busy; wall-clock figures may be inflated (compare the CPU column)\n',
    );
  }

  const measures: {
    key: string;
    label: string;
    fn: (c: Ctx) => Promise<Sample>;
    warm: boolean;
    functional: boolean;
  }[] = [
    {
      key: 'pgrunbook',
      label: 'pgrunbook run --output json (node process)',
      fn: measurePgrunbook,
      warm: true,
      functional: true,
    },
    ...(opts.ansible
      ? [
          {
            key: 'ansible',
            label: 'ansible-playbook (ansible.builtin.command)',
            fn: measureAnsible,
            warm: false,
            functional: true,
          },
        ]
      : []),
    { key: 'floor', label: 'floor: raw ssh2, in-process', fn: measureFloor, warm: true, functional: true },
    {
      key: 'floorProc',
      label: 'floor: raw ssh2, node process',
      fn: measureFloorProcess,
      warm: true,
      functional: true,
    },
    { key: 'node', label: 'node -e 0 (start-up alone)', fn: measureNodeStart, warm: true, functional: false },
    {
      key: 'plan',
      label: `pgrunbook plan, ${planHosts} hosts (node process)`,
      fn: measurePlan,
      warm: true,
      functional: true,
    },
  ];
  const series: Series[] = measures.map((m) => ({ key: m.key, label: m.label, samples: [] }));

  // Untimed warm-up (page cache, sshd's first forks); not ansible, whose runs cost seconds.
  for (let w = 0; w < warmup; w++) {
    for (const [i, m] of measures.entries()) {
      if (!m.warm || stopping) continue;
      await m.fn(ctx).catch((err: unknown) => {
        (series[i] as Series).error = errText(err);
      });
    }
  }
  // Interleaved rounds, so a drift of the machine hits every contender alike.
  for (let r = 0; r < repeat; r++) {
    for (const [i, m] of measures.entries()) {
      const s = series[i] as Series;
      if (s.error || stopping) continue;
      try {
        const sample = await m.fn(ctx);
        s.samples.push(sample);
        process.stderr.write(
          `[bench] round ${r + 1}/${repeat} ${m.key}: ${fmtMs(sample.ms)} wall, ${fmtMs(sample.cpuMs)} CPU\n`,
        );
      } catch (err) {
        s.error = errText(err);
      }
    }
  }

  if (stopping) return 3; // the time limit or a signal: exitWith is already cleaning up
  process.stdout.write(report(opts, series));
  process.stdout.write(`\nload average at the end: ${load()}\n`);
  if (opts.ansible) {
    process.stdout.write(
      'ansible: ansible.builtin.command per task (a Python module sent over ssh for each), linear strategy, pipelining,\n' +
        'ControlPersist with one control path per alias; masters are closed after each run, so every run starts cold.\n',
    );
  }
  for (const [i, m] of measures.entries()) {
    const e = (series[i] as Series).error;
    if (e) process.stderr.write(`\n[bench] ${m.label} FAILED:\n${e}\n`);
  }
  return measures.some((m, i) => m.functional && (series[i] as Series).error) ? 1 : 0;
}

let options: ReturnType<typeof parseOptions>;
try {
  options = parseOptions(process.argv.slice(2));
} catch (err) {
  process.stderr.write(`${errText(err)}\n${USAGE}`);
  process.exit(2);
}
if (options.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}

// A hard limit on the whole benchmark: it can never hang.
setTimeout(() => {
  process.stderr.write(`[bench] overall time limit of ${options.timeoutS} s reached: stopping everything\n`);
  void exitWith(3);
}, options.timeoutS * 1000).unref();
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    process.stderr.write(`[bench] ${sig}: cleaning up\n`);
    void exitWith(130);
  });
}

main(options).then(
  (code) => exitWith(code),
  (err: unknown) => {
    process.stderr.write(`[bench] ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return exitWith(1);
  },
);

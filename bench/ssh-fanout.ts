// SSH fan-out benchmark: pgrunbook vs ansible-playbook vs raw ssh2, HOSTS × STEPS `echo ok`.
//
//   npx tsx bench/ssh-fanout.ts [--hosts 10] [--steps 20] [--repeat 3] [--plan-hosts 12]
//                               [--warmup 1] [--timeout 600] [--no-ansible] [--keep]
//
// Every host is an alias of one private loopback sshd (test/env), so the figures measure the
// runners, not a network. Needs `npm run build` first (it runs dist/ through bin/pgrunbook.js).
// Exit codes: 0 all runs worked (a missed speed target is reported, not an error); 1 a run failed
// functionally; 2 bad arguments or missing build; 3 the overall time limit was hit.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { type SshServer, startSshd } from '../test/env/index.js';
import { type FloorResult, runFloor } from './floor.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const CLI = join(ROOT, 'bin', 'pgrunbook.js');
const FLOOR = join(ROOT, 'bench', 'floor.mjs');
const COMMAND = 'echo ok';

const TARGET_ANSIBLE_RATIO = 20; // ansible / pgrunbook ≥ this
const TARGET_FLOOR_RATIO = 1.5; // pgrunbook / floor ≤ this
const TARGET_PLAN_MS = 300; // pgrunbook plan wall clock ≤ this

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

function parseOptions(argv: string[]): Options {
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
  if (values.help) {
    process.stdout.write(
      'usage: npx tsx bench/ssh-fanout.ts [--hosts N] [--steps M] [--repeat R] [--plan-hosts P]\n' +
        '                                   [--warmup W] [--timeout SECONDS] [--no-ansible] [--keep]\n',
    );
    process.exit(0);
  }
  const int = (name: string, v: string, min: number, max: number) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name}: expected an integer ${min}..${max}, got "${v}"`);
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
  };
}

// ---------------------------------------------------------------------------------------------
// Child processes: timed from spawn to exit, killed (by process group) on the overall timeout.

interface ChildRun {
  ms: number;
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

const live = new Set<ChildProcess>();

function killChild(c: ChildProcess): void {
  if (c.pid === undefined || c.exitCode !== null || c.signalCode !== null) return;
  try {
    process.kill(-c.pid, 'SIGKILL'); // its own process group (detached): ansible's forks too
  } catch {
    try {
      c.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** Runs a command to its exit; `ms` is the wall clock a user waits (spawn → exit). */
function timeChild(
  file: string,
  args: string[],
  opts: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs: number },
): Promise<ChildRun> {
  return new Promise((res, rej) => {
    const t0 = performance.now();
    const c = spawn(file, args, { cwd: opts.cwd, env: opts.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
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
      // Output still in the pipes arrives before 'close'; a grandchild holding a pipe open (an ssh
      // ControlMaster) must not stall us, hence the cap.
      const done = () => {
        live.delete(c);
        res({ ms, code, signal, stdout, stderr });
      };
      const cap = setTimeout(done, 2000);
      c.once('close', () => {
        clearTimeout(cap);
        done();
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
  for (let s = 0; s < steps; s++) lines.push(`    - name: step ${s + 1}`, `      shell: ${JSON.stringify(COMMAND)}`);
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
  for (let s = 0; s < steps; s++) lines.push(`    - name: step ${s + 1}`, `      ansible.builtin.command: ${COMMAND}`);
  return `${lines.join('\n')}\n`;
}

// ---------------------------------------------------------------------------------------------
// One measurement each; every one returns its time or throws with what went wrong.

interface Ctx {
  opts: Options;
  sshd: SshServer;
  work: string;
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

async function measurePgrunbook(ctx: Ctx): Promise<number> {
  const { hosts, steps } = ctx.opts;
  // Its own working directory: the run journal goes to ./.pgrunbook/runs/.
  const cwd = join(ctx.work, 'pgrunbook-cwd');
  const r = await timeChild(process.execPath, [CLI, 'run', ctx.pgrbPlaybook, '-i', ctx.pgrbInventory, '--output', 'json'], {
    cwd,
    timeoutMs: ctx.childTimeoutMs,
  });
  const fail = (why: string) => new Error(`pgrunbook run: ${why}\n--- stderr ---\n${tail(r.stderr)}\n--- stdout ---\n${tail(r.stdout)}`);
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
    throw fail(`expected ${hosts * steps} step_finished ok on ${hosts} hosts and run_finished ok; got ${ok} ok, ${other} other, ${seen.size} hosts, run_finished ${finished || 'missing'}`);
  }
  return r.ms;
}

async function measurePlan(ctx: Ctx): Promise<number> {
  const r = await timeChild(process.execPath, [CLI, 'plan', ctx.planPlaybook, '-i', ctx.planInventory], {
    cwd: join(ctx.work, 'pgrunbook-cwd'),
    timeoutMs: ctx.childTimeoutMs,
  });
  const missing = hostNames(ctx.opts.planHosts).filter((h) => !r.stdout.includes(h));
  if (r.code !== 0 || missing.length > 0) {
    throw new Error(`pgrunbook plan: exit ${r.code ?? r.signal}, hosts missing from the plan: ${missing.join(' ') || 'none'}\n${tail(r.stderr || r.stdout)}`);
  }
  return r.ms;
}

let ansibleRuns = 0;

async function measureAnsible(ctx: Ctx): Promise<number> {
  const { hosts, steps } = ctx.opts;
  // A fresh control-path directory and inventory per run: every run starts cold, like pgrunbook's.
  const run = ++ansibleRuns;
  const controlDir = join(ctx.ansibleDir, `cp${run}`);
  await mkdir(controlDir, { mode: 0o700 });
  const inventory = join(ctx.ansibleDir, `inventory${run}.ini`);
  await writeFile(inventory, ansibleInventory(ctx.sshd, hosts, controlDir));
  const playbook = join(ctx.ansibleDir, 'playbook.yml');
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
    r = await timeChild('ansible-playbook', ['-i', inventory, '-f', String(hosts), playbook], {
      cwd: ctx.ansibleDir,
      env,
      timeoutMs: ctx.childTimeoutMs,
    });
  } finally {
    await closeControlMasters(ctx.sshd, hosts, controlDir, env);
  }
  const fail = (why: string) => new Error(`ansible-playbook: ${why}\n--- stdout ---\n${tail(r.stdout)}\n--- stderr ---\n${tail(r.stderr)}`);
  if (r.code !== 0) throw fail(`exit ${r.code ?? r.signal}`);
  const recap = new Map<string, Record<string, number>>();
  const re = /^(\S+)\s+:\s+(ok=\d+.*)$/gm;
  for (const m of r.stdout.matchAll(re)) {
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
      throw fail(`recap for ${h}: expected ok=${steps} failed=0 unreachable=0, got ${c ? JSON.stringify(c) : 'no recap line'}`);
    }
  }
  return r.ms;
}

/** Ends the ControlPersist masters ansible left behind, so the next run starts cold. */
async function closeControlMasters(sshd: SshServer, hosts: number, controlDir: string, env: NodeJS.ProcessEnv): Promise<void> {
  await Promise.all(
    hostNames(hosts).map((h) => {
      const path = join(controlDir, h);
      if (!existsSync(path)) return Promise.resolve();
      return timeChild('ssh', ['-o', `ControlPath=${path}`, '-O', 'exit', '-p', String(sshd.port), `${sshd.user}@${sshd.host}`], {
        cwd: controlDir,
        env,
        timeoutMs: 10_000,
      }).catch(() => undefined);
    }),
  );
}

function floorConfig(ctx: Ctx) {
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
  if (r.error || r.ok !== want || r.bad !== 0) throw new Error(`${what}: ${r.error ?? `expected ${want} ok, got ${r.ok} ok and ${r.bad} bad`}`);
}

async function measureFloor(ctx: Ctx): Promise<number> {
  const r = await runFloor(floorConfig(ctx));
  checkFloor(r, ctx, 'floor (in-process)');
  return r.ms;
}

async function measureFloorProcess(ctx: Ctx): Promise<number> {
  const r = await timeChild(process.execPath, [FLOOR, JSON.stringify(floorConfig(ctx))], { cwd: ROOT, timeoutMs: ctx.childTimeoutMs });
  if (r.code !== 0) throw new Error(`floor (node process): exit ${r.code ?? r.signal}: ${tail(r.stderr || r.stdout)}`);
  checkFloor(JSON.parse(r.stdout.trim()) as FloorResult, ctx, 'floor (node process)');
  return r.ms;
}

async function measureNodeStart(ctx: Ctx): Promise<number> {
  const r = await timeChild(process.execPath, ['-e', '0'], { cwd: ctx.work, timeoutMs: ctx.childTimeoutMs });
  if (r.code !== 0) throw new Error(`node -e 0: exit ${r.code ?? r.signal}`);
  return r.ms;
}

// ---------------------------------------------------------------------------------------------
// Reporting.

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};
const fmtMs = (ms: number) => (ms >= 10_000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`);

interface Series {
  label: string;
  runs: number[];
  error?: string;
}

function printTable(title: string, series: Series[]): void {
  const width = Math.max(...series.map((s) => s.label.length));
  process.stdout.write(`\n${title}\n`);
  for (const s of series) {
    const med = s.runs.length ? fmtMs(median(s.runs)).padStart(9) : '     FAIL';
    const runs = s.error ? `error: ${s.error.split('\n')[0]}` : s.runs.map(fmtMs).join(', ');
    process.stdout.write(`  ${s.label.padEnd(width)}  ${med}   ${runs}\n`);
  }
}

// ---------------------------------------------------------------------------------------------

const cleanups: (() => Promise<void>)[] = [];

async function cleanUp(): Promise<void> {
  // The test helpers unref their processes (sshd, watchdog): without a referenced handle Node would
  // exit in the middle of sshd.stop(), leaving its files and ours behind.
  const hold = setInterval(() => {}, 1000);
  try {
    for (const c of live) killChild(c);
    while (cleanups.length) {
      await cleanups
        .pop()!()
        .catch((err: unknown) => process.stderr.write(`[bench] clean-up: ${err instanceof Error ? err.message : String(err)}\n`));
    }
  } finally {
    clearInterval(hold);
  }
}

async function main(): Promise<number> {
  let opts: Options;
  try {
    opts = parseOptions(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    return 2;
  }
  if (!existsSync(join(ROOT, 'dist', 'cli', 'main.js'))) {
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

  const ansibleDir = join(work, 'ansible');
  await Promise.all([mkdir(join(work, 'pgrunbook-cwd')), mkdir(join(ansibleDir, 'tmp'), { recursive: true })]);
  const ctx: Ctx = {
    opts,
    sshd,
    work,
    pgrbInventory: join(work, 'inventory.yml'),
    pgrbPlaybook: join(work, 'fanout.yml'),
    planInventory: join(work, 'plan-inventory.yml'),
    planPlaybook: join(work, 'plan-fanout.yml'),
    ansibleDir,
    childTimeoutMs: Math.min(300_000, opts.timeoutS * 1000),
  };
  await Promise.all([
    writeFile(ctx.pgrbInventory, pgrunbookInventory(sshd, hosts)),
    writeFile(ctx.pgrbPlaybook, pgrunbookPlaybook(hosts, steps)),
    writeFile(ctx.planInventory, pgrunbookInventory(sshd, planHosts)),
    writeFile(ctx.planPlaybook, pgrunbookPlaybook(planHosts, steps)),
    writeFile(join(ansibleDir, 'ansible.cfg'), '# deliberately empty: settings come from the environment\n'),
    writeFile(join(ansibleDir, 'playbook.yml'), ansiblePlaybook(steps)),
  ]);

  process.stdout.write(
    `ssh fan-out: ${hosts} host aliases of one loopback sshd (127.0.0.1:${sshd.port}) × ${steps} steps of \`${COMMAND}\` ` +
      `= ${hosts * steps} commands; forks ${hosts}; ${repeat} timed run(s) each, ${warmup} untimed warm-up\n` +
      `node ${process.version}, ${process.platform}/${process.arch}\n`,
  );

  const measures: { key: string; label: string; fn: (c: Ctx) => Promise<number>; warm: boolean; functional: boolean }[] = [
    { key: 'pgrunbook', label: 'pgrunbook run --output json (node process)', fn: measurePgrunbook, warm: true, functional: true },
    { key: 'floor', label: 'floor: ssh2 in-process', fn: measureFloor, warm: true, functional: true },
    { key: 'floorProc', label: 'floor: ssh2 in a node process', fn: measureFloorProcess, warm: true, functional: false },
    { key: 'node', label: 'node -e 0 (start-up alone)', fn: measureNodeStart, warm: true, functional: false },
    { key: 'plan', label: `pgrunbook plan, ${planHosts} hosts (node process)`, fn: measurePlan, warm: true, functional: true },
  ];
  if (opts.ansible) {
    measures.splice(1, 0, {
      key: 'ansible',
      label: 'ansible-playbook (command, pipelining, forks)',
      fn: measureAnsible,
      warm: false,
      functional: true,
    });
  }
  const series = new Map<string, Series>(measures.map((m) => [m.key, { label: m.label, runs: [] }]));

  // Warm-up (disk cache, JIT): untimed, and not for ansible (one run costs seconds).
  for (let w = 0; w < warmup; w++) {
    for (const m of measures) {
      if (!m.warm) continue;
      await m.fn(ctx).catch((err: unknown) => {
        series.get(m.key)!.error = err instanceof Error ? err.message : String(err);
      });
    }
  }
  // Interleaved rounds, so a drift of the machine hits every contender alike.
  for (let r = 0; r < repeat; r++) {
    for (const m of measures) {
      const s = series.get(m.key)!;
      if (s.error) continue;
      try {
        const ms = await m.fn(ctx);
        s.runs.push(ms);
        process.stderr.write(`[bench] round ${r + 1}/${repeat}: ${m.key} ${fmtMs(ms)}\n`);
      } catch (err) {
        s.error = err instanceof Error ? err.message : String(err);
        s.runs = [];
      }
    }
  }

  const get = (k: string) => series.get(k);
  const med = (k: string) => {
    const s = get(k);
    return s && !s.error && s.runs.length ? median(s.runs) : undefined;
  };
  printTable(`wall clock, median of ${repeat} (then every run)`, measures.filter((m) => m.key !== 'plan').map((m) => get(m.key)!));
  printTable('plan', [get('plan')!]);

  const rows: string[][] = [['check', 'value', 'target', 'verdict']];
  const verdict = (ok: boolean | undefined) => (ok === undefined ? 'n/a' : ok ? 'PASS' : 'FAIL');
  const pg = med('pgrunbook');
  const an = med('ansible');
  const fl = med('floor');
  const flp = med('floorProc');
  const pl = med('plan');
  const ratio = (a?: number, b?: number) => (a !== undefined && b !== undefined ? a / b : undefined);
  const x = (v?: number) => (v === undefined ? '—' : `${v.toFixed(2)}×`);
  const rA = ratio(an, pg);
  const rF = ratio(pg, fl);
  const rFP = ratio(pg, flp);
  rows.push(['ansible / pgrunbook', x(rA), `≥ ${TARGET_ANSIBLE_RATIO}×`, verdict(rA === undefined ? undefined : rA >= TARGET_ANSIBLE_RATIO)]);
  rows.push(['pgrunbook / floor (in-process)', x(rF), `≤ ${TARGET_FLOOR_RATIO}×`, verdict(rF === undefined ? undefined : rF <= TARGET_FLOOR_RATIO)]);
  rows.push(['pgrunbook / floor (node process)', x(rFP), '(info)', '']);
  rows.push([`pgrunbook plan, ${planHosts} hosts`, pl === undefined ? '—' : fmtMs(pl), `≤ ${TARGET_PLAN_MS} ms`, verdict(pl === undefined ? undefined : pl <= TARGET_PLAN_MS)]);
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  process.stdout.write('\n');
  for (const r of rows) process.stdout.write(`  ${r.map((c, i) => c.padEnd(widths[i]!)).join('   ').trimEnd()}\n`);
  if (opts.ansible) {
    process.stdout.write(
      '\nansible: ansible.builtin.command per task (a Python module shipped over ssh each time), linear strategy,\n' +
        'pipelining on, ControlPersist with one control path per alias; masters closed between runs (cold start each run).\n',
    );
  }

  const broken = measures.filter((m) => m.functional && get(m.key)!.error);
  for (const m of measures) {
    const e = get(m.key)!.error;
    if (e) process.stderr.write(`\n[bench] ${m.label} FAILED:\n${e}\n`);
  }
  return broken.length > 0 ? 1 : 0;
}

let exiting = false;
async function exitWith(code: number): Promise<never> {
  if (!exiting) {
    exiting = true;
    await cleanUp();
  }
  process.exit(code);
}

const opts0 = (() => {
  try {
    return parseOptions(process.argv.slice(2));
  } catch {
    return undefined;
  }
})();
const hardLimit = setTimeout(
  () => {
    process.stderr.write(`[bench] overall time limit of ${opts0?.timeoutS ?? 600} s reached: killing everything\n`);
    // Clean-up itself must not hang either.
    setTimeout(() => process.exit(3), 20_000).unref();
    void exitWith(3);
  },
  (opts0?.timeoutS ?? 600) * 1000,
);
hardLimit.unref();
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    process.stderr.write(`[bench] ${sig}: cleaning up\n`);
    setTimeout(() => process.exit(130), 20_000).unref();
    void exitWith(130);
  });
}

main().then(
  (code) => exitWith(code),
  (err: unknown) => {
    process.stderr.write(`[bench] ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return exitWith(1);
  },
);

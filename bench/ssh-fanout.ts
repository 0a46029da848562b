// SSH fan-out benchmark: pgrunbook vs ansible-playbook vs raw ssh2, HOSTS × STEPS `echo ok`.
//
//   npx tsx bench/ssh-fanout.ts [--hosts 10] [--steps 20] [--repeat 3] [--plan-hosts 12]
//                               [--warmup 1] [--timeout 600] [--no-ansible] [--keep]
//
// Every host is an alias of one private loopback sshd (tools/testenv), so the figures measure the
// runners, not a network. Needs `npm run build` first (it runs dist/ through bin/pgrunbook.js).
// Exit codes: 0 every run worked (a missed speed target is reported, not an error); 1 a run failed
// functionally; 2 bad arguments or no build; 3 the overall time limit was hit; 130 interrupted.
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { type SshServer, startSshd } from '../tools/testenv/index.js';
import {
  atCleanUp,
  type ChildRun,
  CLI,
  type CommonOptions,
  checkBuild,
  commonOptionSpecs,
  errText,
  fmtRatio,
  intOption,
  isStopping,
  jsonEvents,
  loadAverage,
  log,
  machineLine,
  measureCpuIn,
  median,
  ROOT,
  ratio,
  runFailure,
  runMain,
  table,
  tail,
  timeChild,
  verdict,
  warnIfBusy,
  workDir,
} from './common.js';
import { type FloorConfig, type FloorResult, runFloor } from './floor.mjs';

const FLOOR = join(ROOT, 'bench', 'floor.mjs');
const COMMAND = 'echo ok';

const TARGET_ANSIBLE_RATIO = 20; // ansible / pgrunbook ≥ this
// pgrunbook / floor ≤ this. Judged process against process: pgrunbook is timed spawn → exit,
// so its peer is the same raw-ssh2 loop started as its own Node process. The in-process floor
// (no Node start-up, no module loading, warm JIT) is printed beside it for reference.
const TARGET_FLOOR_RATIO = 1.5;
const TARGET_PLAN_MS = 300; // pgrunbook plan, wall clock ≤ this

interface Options extends CommonOptions {
  hosts: number;
  steps: number;
  planHosts: number;
  ansible: boolean;
}

const USAGE =
  'usage: npx tsx bench/ssh-fanout.ts [--hosts N=10] [--steps M=20] [--repeat R=3] [--plan-hosts P=12]\n' +
  '                                   [--warmup W=1] [--timeout SECONDS=600] [--no-ansible] [--keep]\n';

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      hosts: { type: 'string', default: '10' },
      steps: { type: 'string', default: '20' },
      'plan-hosts': { type: 'string', default: '12' },
      'no-ansible': { type: 'boolean', default: false },
      ...commonOptionSpecs(600),
    },
    strict: true,
  });
  return {
    hosts: intOption('hosts', values.hosts, 1, 99),
    steps: intOption('steps', values.steps, 1, 10_000),
    repeat: intOption('repeat', values.repeat, 1, 100),
    planHosts: intOption('plan-hosts', values['plan-hosts'], 1, 99),
    warmup: intOption('warmup', values.warmup, 0, 10),
    timeoutS: intOption('timeout', values.timeout, 10, 86_400),
    ansible: !values['no-ansible'],
    keep: values.keep,
    help: values.help,
  };
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
  const fail = (why: string) => runFailure('pgrunbook run', why, r);
  if (r.code !== 0) throw fail(`exit ${r.code ?? r.signal}`);
  let ok = 0;
  let other = 0;
  let finished = '';
  const seen = new Set<string>();
  for (const e of jsonEvents<{ type?: string; status?: string; host?: string }>(r.stdout)) {
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
        fmtRatio(rA),
        `≥ ${TARGET_ANSIBLE_RATIO}×`,
        verdict(rA, (v) => v >= TARGET_ANSIBLE_RATIO),
      ],
      [
        'pgrunbook / floor node process (wall)',
        fmtRatio(rFP),
        `≤ ${TARGET_FLOOR_RATIO}×`,
        verdict(rFP, (v) => v <= TARGET_FLOOR_RATIO),
      ],
      ['pgrunbook / floor in-process (wall)', fmtRatio(rF), '(info)', ''],
      ['pgrunbook / floor node process (CPU)', fmtRatio(rCpu), '(info)', ''],
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

async function main(opts: Options): Promise<number> {
  if (!checkBuild()) return 2;
  const { hosts, steps, repeat, planHosts, warmup } = opts;

  const work = await workDir('pgrb-bench-', opts.keep);
  const sshd = await startSshd();
  atCleanUp(() => sshd.stop());

  const timeDir = join(work, 'time');
  measureCpuIn(timeDir);
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

  process.stdout.write(
    `ssh fan-out: ${hosts} host aliases of one loopback sshd (127.0.0.1:${sshd.port}) × ${steps} steps of ` +
      `\`${COMMAND}\` = ${hosts * steps} commands, forks ${hosts}; ${warmup} untimed warm-up, ${repeat} timed rounds\n` +
      `${machineLine()}\n`,
  );
  warnIfBusy(' (compare the CPU column)');

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
      if (!m.warm || isStopping()) continue;
      await m.fn(ctx).catch((err: unknown) => {
        (series[i] as Series).error = errText(err);
      });
    }
  }
  // Interleaved rounds, so a drift of the machine hits every contender alike.
  for (let r = 0; r < repeat; r++) {
    for (const [i, m] of measures.entries()) {
      const s = series[i] as Series;
      if (s.error || isStopping()) continue;
      try {
        const sample = await m.fn(ctx);
        s.samples.push(sample);
        log(`round ${r + 1}/${repeat} ${m.key}: ${fmtMs(sample.ms)} wall, ${fmtMs(sample.cpuMs)} CPU`);
      } catch (err) {
        s.error = errText(err);
      }
    }
  }

  if (isStopping()) return 3; // the time limit or a signal: clean-up has already begun
  process.stdout.write(report(opts, series));
  process.stdout.write(`\nload average at the end: ${loadAverage()}\n`);
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

runMain({ usage: USAGE, parse: parseOptions, main, cleanUpMs: 30_000 });

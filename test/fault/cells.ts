// The fault matrix's cells: a playbook, a fault, and where it is injected (before the run, at a
// step boundary — a step_finished event — or mid-step — a step_started event and, where it
// matters, the step's own process seen running). Each injection returns how to heal the fault once
// the runner has exited (a frozen etcd thawed, a stopped Patroni started), so the truth is read
// on servers that are up again.
import type { ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sql } from '../../tools/testenv/checks.js';
import {
  descendants,
  lookupUser,
  type PatroniMember,
  runAs,
  SERVER_USER,
} from '../../tools/testenv/index.js';
import { type InventoryOptions, type Lab, unwritableRoot } from './lab.js';
import { serverProcesses } from './truth.js';

/** What an injection acts on. */
export interface CellContext {
  lab: Lab;
  runner: ChildProcess;
  leader: PatroniMember;
  replica: PatroniMember;
}

/** Heals the fault once the runner has exited. */
export type Heal = () => Promise<void>;

/** When a cell's fault is injected during the run. */
export interface Trigger {
  event: 'step_started' | 'step_finished';
  /** matched against the event's stepType, then its title */
  step: RegExp;
  /** mid-step: polled every 20 ms after the event until true (the copy process runs...) */
  until?: (ctx: CellContext) => boolean | Promise<boolean>;
}

/** One cell of the matrix. */
export interface Cell {
  id: string;
  playbook: 'backup' | 'upgrade';
  fault: string;
  /** where: `before run`, `after STEP` (boundary) or `mid STEP` */
  at: string;
  /** undefined: injected before the run starts */
  when?: Trigger;
  inject: (ctx: CellContext) => Promise<Heal | undefined>;
  /** the inventory this cell runs with (which sshd, which backup root) */
  inventory?: (lab: Lab) => Promise<InventoryOptions>;
  /** part of the CI slice (test/integration/fault-matrix.test.ts) */
  ci?: boolean;
}

/** Whether a process the lab's sessions started has a command line matching `re`. */
function running(lab: Lab, re: RegExp): boolean {
  if (serverUid < 0) throw new Error('initCells() first');
  for (const cmd of serverProcesses(serverUid, lab.token).values()) if (re.test(cmd)) return true;
  return false;
}
let serverUid = -1;
/** Resolves the server user's uid once, before any cell polls for processes. */
export async function initCells(): Promise<void> {
  serverUid = (await lookupUser(SERVER_USER)).uid;
}

const COPYING = /^rsync -a |^tar -C /;

/**
 * The copy runs and has already written part of PGDATA (a `.snap` under the backup root holds 50
 * files or more): the fault lands in the middle of the copy, not before its first file.
 */
function copyUnderway(lab: Lab): boolean {
  if (!running(lab, COPYING)) return false;
  for (const e of readdirSync(lab.backupRoot)) {
    if (!e.endsWith('.snap')) continue;
    let n = 0;
    const walk = (d: string): void => {
      for (const f of readdirSync(d, { withFileTypes: true })) {
        if (n >= 50) return;
        if (f.isDirectory()) walk(join(d, f.name));
        else n++;
      }
    };
    try {
      walk(join(lab.backupRoot, e));
    } catch {
      // being written
    }
    if (n >= 50) return true;
  }
  return false;
}

function signalRunner(sig: NodeJS.Signals) {
  return async (ctx: CellContext): Promise<undefined> => {
    ctx.runner.kill(sig);
    return undefined;
  };
}

/** Per-connection sshd processes of the lab's main sshd (the runner's SSH connections). */
async function sshSessions(lab: Lab): Promise<number[]> {
  const out: number[] = [];
  for (const pid of await descendants(lab.sshd.pid)) {
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'sshd') out.push(pid);
    } catch {
      // gone
    }
  }
  return out;
}

function signalPids(pids: number[], sig: NodeJS.Signals): void {
  for (const p of pids)
    try {
      process.kill(p, sig);
    } catch {
      // gone
    }
}

/** `systemctl stop patroni` on a member; healed by starting it again. */
function stopPatroni(which: 'leader' | 'replica') {
  return async (ctx: CellContext): Promise<Heal> => {
    const m = ctx[which];
    await runAs(SERVER_USER, [m.serviceScript, 'stop']);
    return async () => {
      await runAs(SERVER_USER, [m.serviceScript, 'start']).catch(() => {});
    };
  };
}

/** etcd frozen (SIGSTOP: it neither answers nor closes); thawed as the heal. */
async function freezeEtcd(ctx: CellContext): Promise<Heal> {
  process.kill(ctx.lab.etcd.pid, 'SIGSTOP');
  return async () => {
    process.kill(ctx.lab.etcd.pid, 'SIGCONT');
  };
}

/** The runner's SSH connections blackholed: their sshd processes frozen, neither FIN nor data. */
async function blackholeSsh(ctx: CellContext): Promise<Heal> {
  const pids = await sshSessions(ctx.lab);
  signalPids(pids, 'SIGSTOP');
  return async () => {
    signalPids(pids, 'SIGCONT');
  };
}

/** The runner's SSH connections cut abruptly (their sshd processes killed). */
async function resetSsh(ctx: CellContext): Promise<undefined> {
  signalPids(await sshSessions(ctx.lab), 'SIGKILL');
  return undefined;
}

/** Every pgrunbook session on the leader terminated (pg_terminate_backend), the held one too. */
async function terminateBackends(ctx: CellContext): Promise<undefined> {
  await sql(
    ctx.lab.cluster.clientConfig(ctx.leader.name),
    "select pg_terminate_backend(pid) from pg_stat_activity where application_name like 'pgrunbook%'",
  );
  return undefined;
}

/** The leader's PostgreSQL restarted (pg_ctl restart -m fast), as an operator or a crash would. */
async function restartPostgres(ctx: CellContext): Promise<undefined> {
  await runAs(
    SERVER_USER,
    [`${ctx.lab.cluster.binDir}/pg_ctl`, 'restart', '-D', ctx.leader.dataDir, '-m', 'fast', '-w', '-t', '60'],
    { timeoutMs: 90_000 },
  );
  return undefined;
}

const nothing = async (): Promise<undefined> => undefined;

const SIGNALS: [string, NodeJS.Signals][] = [
  ['kill -9', 'SIGKILL'],
  ['SIGTERM', 'SIGTERM'],
  ['SIGINT', 'SIGINT'],
];

const after = (step: RegExp): Trigger => ({ event: 'step_finished', step });
const mid = (step: RegExp, until?: Trigger['until']): Trigger => ({ event: 'step_started', step, until });
const midCopy = mid(/^fs\.snapshot$/, (c) => copyUnderway(c.lab));
const midVerify = mid(/^backup\.verify$/, (c) => running(c.lab, /\.verify/));

/** Every cell of the matrix, in the order the script runs them. */
export function allCells(): Cell[] {
  const cells: Cell[] = [];
  const add = (c: Omit<Cell, 'id'>) =>
    cells.push({ ...c, id: `${c.playbook}: ${c.fault} ${c.at}`.replace(/\s+/g, ' ') });
  // snapshot-backup.yml: the runner signalled at boundaries and mid-step.
  const backupPoints: [string, Trigger, string[]][] = [
    ['mid pause', mid(/^patroni\.pause$/), ['kill -9']],
    ['after pause', after(/^patroni\.pause$/), ['kill -9', 'SIGTERM']],
    ['after backup_start', after(/^pg\.backup_start$/), ['kill -9', 'SIGINT']],
    ['mid snapshot (copy running)', midCopy, ['kill -9', 'SIGTERM', 'SIGINT']],
    ['after snapshot', after(/^fs\.snapshot$/), ['kill -9']],
    ['after backup_stop', after(/^pg\.backup_stop$/), ['kill -9', 'SIGTERM']],
    ['after write_labels', after(/^backup\.write_labels$/), ['SIGINT']],
    ['mid verify (restore running)', midVerify, ['kill -9', 'SIGTERM']],
    ['mid resume', mid(/^patroni\.resume$/), ['kill -9', 'SIGINT']],
  ];
  for (const [at, when, sigs] of backupPoints)
    for (const [fault, sig] of SIGNALS)
      if (sigs.includes(fault))
        add({
          playbook: 'backup',
          fault,
          at,
          when,
          inject: signalRunner(sig),
          ci:
            (fault === 'kill -9' && at.startsWith('mid snapshot')) ||
            (fault === 'SIGTERM' && at === 'after pause'),
        });
  // snapshot-backup.yml: the servers fail under the run.
  add({
    playbook: 'backup',
    fault: "leader's Patroni stopped",
    at: 'after pause',
    when: after(/^patroni\.pause$/),
    inject: stopPatroni('leader'),
  });
  add({
    playbook: 'backup',
    fault: "leader's Patroni stopped",
    at: 'mid snapshot (copy running)',
    when: midCopy,
    inject: stopPatroni('leader'),
  });
  add({
    playbook: 'backup',
    fault: "replica's Patroni stopped",
    at: 'after pause',
    when: after(/^patroni\.pause$/),
    inject: stopPatroni('replica'),
  });
  add({ playbook: 'backup', fault: 'etcd stopped', at: 'before run', inject: freezeEtcd });
  add({
    playbook: 'backup',
    fault: 'etcd stopped',
    at: 'after pause',
    when: after(/^patroni\.pause$/),
    inject: freezeEtcd,
    ci: true,
  });
  add({
    playbook: 'backup',
    fault: 'etcd stopped',
    at: 'mid snapshot (copy running)',
    when: midCopy,
    inject: freezeEtcd,
  });
  add({
    playbook: 'backup',
    fault: 'SSH blackholed',
    at: 'mid snapshot (copy running)',
    when: midCopy,
    inject: blackholeSsh,
  });
  add({
    playbook: 'backup',
    fault: 'SSH cut (reset)',
    at: 'after backup_start',
    when: after(/^pg\.backup_start$/),
    inject: resetSsh,
  });
  add({
    playbook: 'backup',
    fault: 'SSH cut (reset)',
    at: 'mid snapshot (copy running)',
    when: midCopy,
    inject: resetSsh,
  });
  add({
    playbook: 'backup',
    fault: 'backend terminated',
    at: 'mid snapshot (copy running)',
    when: midCopy,
    inject: terminateBackends,
    ci: true,
  });
  add({
    playbook: 'backup',
    fault: 'backend terminated',
    at: 'after snapshot',
    when: after(/^fs\.snapshot$/),
    inject: terminateBackends,
  });
  add({
    playbook: 'backup',
    fault: 'PostgreSQL restarted',
    at: 'mid snapshot (copy running)',
    when: midCopy,
    inject: restartPostgres,
  });
  add({
    playbook: 'backup',
    fault: 'backup disk unwritable',
    at: 'before run',
    inject: nothing,
    inventory: async (lab) => ({ backupRoot: await unwritableRoot(lab) }),
  });
  add({
    playbook: 'backup',
    fault: 'rsync missing',
    at: 'before run',
    inject: nothing,
    inventory: async () => ({ noRsync: true }),
  });
  // pg-major-upgrade.yml (a fresh 13 cluster each).
  const up = (
    fault: string,
    at: string,
    when: Trigger | undefined,
    inject: Cell['inject'],
    extra: Partial<Cell> = {},
  ) => add({ playbook: 'upgrade', fault, at, when, inject, ...extra });
  up(
    'kill -9',
    'mid pg_upgrade --check',
    mid(/^pg_upgrade --check/, (c) => running(c.lab, /pg_upgrade .*--check/)),
    signalRunner('SIGKILL'),
  );
  up('kill -9', 'after pause', after(/^patroni\.pause$/), signalRunner('SIGKILL'));
  up('SIGTERM', 'mid snapshot (copy running)', midCopy, signalRunner('SIGTERM'));
  up('kill -9', 'after Stop Patroni (downtime)', after(/^Stop Patroni \(paused/), signalRunner('SIGKILL'));
  up(
    'SIGINT',
    'after the leader stopped',
    after(/^Stop PostgreSQL \d+ on the leader/),
    signalRunner('SIGINT'),
  );
  up(
    'kill -9',
    'mid pg_upgrade --link',
    mid(/^pg_upgrade --link/, (c) => running(c.lab, /pg_upgrade (?!.*--check)/)),
    signalRunner('SIGKILL'),
  );
  up(
    'SIGTERM',
    'mid replica sync (past the point of no return)',
    mid(/^Sync the replicas/),
    signalRunner('SIGTERM'),
  );
  up("leader's Patroni stopped", 'after pause', after(/^patroni\.pause$/), stopPatroni('leader'));
  up('rsync missing', 'before run', undefined, nothing, { inventory: async () => ({ noRsync: true }) });
  return cells;
}

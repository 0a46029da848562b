// Runs one fault-matrix cell: resets the cluster, starts the real CLI bundle (`run --output json`)
// against it over ssh, injects the fault when the run's events reach the cell's point, waits for
// the runner to end, heals the fault, reads the truth from the servers and judges the run's claim
// against it.
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Cell, CellContext, Heal } from './cells.js';
import {
  backupInventory,
  emptyDir,
  freshCluster,
  type Lab,
  resetBackupCluster,
  upgradeInventory,
} from './lab.js';
import { type Damage, processBaseline, readTruth, type Truth } from './truth.js';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const CLI = join(ROOT, 'bin/pgrunbook.js');
const PLAYBOOKS = {
  backup: join(ROOT, 'playbooks/snapshot-backup.yml'),
  upgrade: join(ROOT, 'playbooks/pg-major-upgrade.yml'),
};

/** Knobs of a matrix run. */
export interface MatrixOptions {
  /** a cluster paused longer than this after the runner died fails the cell */
  pauseLimitS: number;
  /** how long the pause is watched after the death */
  pauseWatchMs: number;
  /** a runner still alive this long after the start is killed (and the cell says so) */
  runTimeoutMs: number;
}

/** The defaults of scripts/fault-matrix.ts and the CI slice. */
export const DEFAULTS: MatrixOptions = { pauseLimitS: 20, pauseWatchMs: 30_000, runTimeoutMs: 240_000 };

/** What the run itself said. */
export interface Claim {
  exit: number | null;
  signal: string | null;
  /** run_finished's summary lines; undefined when the runner printed none (killed) */
  summary?: string[];
  status?: string;
  hung: boolean;
}

/** One cell's outcome: the claim, the truth, and the two verdicts. */
export interface CellResult {
  cell: string;
  playbook: string;
  fault: string;
  at: string;
  /** the injection happened where the cell says (the step was still running, or had just finished) */
  hit: boolean | 'n/a';
  seconds: number;
  claim: Claim;
  truth: Truth;
  /** paused longer than the limit after the runner died */
  pausedAfterDeath: boolean;
  /** still paused, but only as the interlock of a cluster whose Patroni the run stopped everywhere */
  interlock: boolean;
  /** damage the servers show that the summary does not admit (empty: honest) */
  understated: Damage[];
  error?: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * The summary lines that admit each kind of damage (the run's own claim, read as text). Step titles
 * ("Pause Patroni", "Sync the replicas (rsync …)") appear in every "Undone" line, so a title alone
 * admits nothing: the line must say the thing is left, or be a State unknown / Manual remedy /
 * COMPENSATION FAILED line about the step that did it.
 */
const TROUBLE = /^\s*(State unknown|COMPENSATION FAILED|Manual remedy|- )/;
const ADMITS: Record<Damage['kind'], (line: string) => boolean> = {
  paused: (l) =>
    /(left|still|stays|remains?|is) paused|patronictl resume|PATCH \/config/i.test(l) ||
    (TROUBLE.test(l) && /(Pause|Resume) Patroni/.test(l)),
  'backup-session': (l) =>
    /(backup|session)[^.;]*(still|in progress|left open|remains? open)|pg_terminate_backend/i.test(l) ||
    (TROUBLE.test(l) && /backup/i.test(l)),
  process: (l) => /process(es)?[^.;]*(still|left)|(still|left) running/i.test(l),
  orphan: (l) => /orphan|partial (copy|backup)/i.test(l),
  manifest: (l) => /manifest[^.;]*(claims|wrong|dishonest|without)/i.test(l),
  journal: (l) => /journal/i.test(l),
  member: (l) => TROUBLE.test(l) || /Recover with|point of no return|not running|is down/i.test(l),
  versions: (l) => /Recover with|point of no return|rollback|mixed/i.test(l),
  'no-backup': () => false,
};

/** Damage the claim does not admit: everything when it claims success; none without a summary. */
export function understatedDamage(claim: Claim, damage: Damage[]): Damage[] {
  if (claim.summary === undefined) return [];
  const lines = claim.summary;
  if (claim.exit === 0) return damage;
  return damage.filter((d) => {
    if (d.kind === 'orphan' && d.name && lines.some((l) => l.includes(d.name!))) return false;
    return !lines.some((l) => ADMITS[d.kind](l));
  });
}

/** Prepares the cluster for `cell`: a reset backup cluster, or a fresh one for an upgrade. */
async function prepare(lab: Lab, cell: Cell): Promise<void> {
  if (cell.playbook === 'upgrade') {
    await freshCluster(lab);
    await emptyDir(lab.backupRoot);
    return;
  }
  try {
    await resetBackupCluster(lab);
  } catch {
    await freshCluster(lab);
    await resetBackupCluster(lab);
  }
}

/** Runs `cell` on the lab and judges it. */
export async function runCell(lab: Lab, cell: Cell, o: MatrixOptions = DEFAULTS): Promise<CellResult> {
  await prepare(lab, cell);
  const t0 = Date.now();
  const c = lab.cluster;
  const leaderName = await c.leader();
  const leader = c.members.find((m) => m.name === leaderName)!;
  const replica = c.members.find((m) => m.name !== leaderName)!;
  const invOpts = (await cell.inventory?.(lab)) ?? {};
  const backupRoot = invOpts.backupRoot ?? lab.backupRoot;
  const inv =
    cell.playbook === 'backup' ? backupInventory(lab, invOpts) : await upgradeInventory(lab, invOpts);
  const cwd = mkdtempSync(join(tmpdir(), 'pgrb-fm-'));
  writeFileSync(join(cwd, 'inv.yml'), inv);
  const baseline = await processBaseline(lab);

  const heals: Heal[] = [];
  let hit: boolean | 'n/a' = 'n/a';
  const ctxBase = { lab, leader, replica };
  if (!cell.when) {
    const h = await cell.inject({ ...ctxBase, runner: undefined as never } as CellContext);
    if (h) heals.push(h);
  }
  const runner = spawn(
    process.execPath,
    [CLI, 'run', PLAYBOOKS[cell.playbook], '-i', 'inv.yml', '--yes', '--output', 'json'],
    {
      cwd,
      env: { ...process.env, NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const ctx: CellContext = { ...ctxBase, runner };
  let summary: string[] | undefined;
  let status: string | undefined;
  let buf = '';
  let fired = false;
  let stepOpen = false;
  const injection: Promise<void>[] = [];
  const onEvent = (e: Record<string, unknown>) => {
    if (e.type === 'run_finished') {
      summary = e.summary as string[];
      status = String(e.status);
    }
    const w = cell.when;
    if (!w || fired || e.type !== w.event) return;
    if (!w.step.test(String(e.stepType)) && !w.step.test(String(e.title))) return;
    fired = true;
    const address = e.address;
    stepOpen = true;
    const finishedOf = (x: Record<string, unknown>) => x.type === 'step_finished' && x.address === address;
    watchers.push((x) => {
      if (finishedOf(x)) stepOpen = false;
    });
    injection.push(
      (async () => {
        const until = Date.now() + 60_000;
        if (w.until) while (!(await w.until(ctx)) && stepOpen && Date.now() < until) await sleep(20);
        // A boundary: the next step has not begun (events arrive in order; nothing was awaited).
        hit = w.event === 'step_finished' ? true : stepOpen;
        const h = await cell.inject(ctx);
        if (h) heals.push(h);
      })().catch((err) => {
        hit = false;
        injectError = String((err as Error).message ?? err);
      }),
    );
  };
  const watchers: ((e: Record<string, unknown>) => void)[] = [];
  let injectError: string | undefined;
  runner.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    buf += chunk;
    let nl = buf.indexOf('\n');
    while (nl >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      nl = buf.indexOf('\n');
      if (!line.startsWith('{')) continue;
      let e: Record<string, unknown>;
      try {
        e = JSON.parse(line);
      } catch {
        continue;
      }
      for (const w of watchers) w(e);
      onEvent(e);
    }
  });
  let stderr = '';
  runner.stderr.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  let hung = false;
  const timer = setTimeout(() => {
    hung = true;
    runner.kill('SIGKILL');
  }, o.runTimeoutMs);
  const [exit, signal] = await new Promise<[number | null, string | null]>((res) =>
    runner.on('close', (code, sig) => res([code, sig])),
  );
  clearTimeout(timer);
  // The pause is timed from the runner's death, or from the fault's end when that comes later (an
  // injection still running, a frozen etcd thawed): nothing can resume through a DCS that is down.
  await Promise.all(injection);
  for (const h of heals) await h().catch(() => {});
  const deathAt = Date.now();
  const truth = await readTruth(lab, {
    cwd,
    deathAt,
    backupRoot,
    baseline,
    pauseWatchMs: o.pauseWatchMs,
    healthWaitMs: 20_000,
  });
  const claim: Claim = { exit, signal, summary, status, hung };
  if (cell.playbook === 'backup' && exit === 0 && truth.backups.length !== 1)
    truth.damage.push({ kind: 'no-backup', detail: `exit 0 but ${truth.backups.length} complete backups` });
  if (truth.journal.finished && truth.journal.exitCode !== exit && !hung)
    truth.damage.push({
      kind: 'journal',
      detail: `journal says exit ${truth.journal.exitCode}, the process ${exit}`,
    });
  if (!truth.journal.finished && summary !== undefined)
    truth.damage.push({ kind: 'journal', detail: 'printed a summary but the journal has no run_finished' });
  // A pause left as an interlock: the run itself had stopped Patroni on every member (an
  // upgrade's downtime), so no member runs without failover — the cluster is down, and a member
  // restarted paused does nothing on its own to a half-upgraded cluster. That is not the silent
  // "healthy but no failover" state this verdict is about; it must still be admitted: by the
  // summary, or after a crash by the journal `resume` reads (the pause's undo still open).
  const interlock =
    truth.pausedSeconds === null &&
    truth.members.length > 0 &&
    truth.members.every((m) => m.state === 'no answer') &&
    truth.journal.pauseKept === true;
  const pausedAfterDeath =
    !interlock && (truth.pausedSeconds === null || truth.pausedSeconds > o.pauseLimitS);
  return {
    cell: cell.id,
    playbook: cell.playbook,
    fault: cell.fault,
    at: cell.at,
    hit: cell.when ? (fired ? hit : false) : 'n/a',
    seconds: Math.round((Date.now() - t0) / 1000),
    claim,
    truth,
    pausedAfterDeath,
    interlock,
    understated: understatedDamage(claim, truth.damage),
    error:
      injectError ??
      (cell.when && !fired ? 'the injection point was never reached' : undefined) ??
      (exit !== 0 && !summary && !signal ? stderr.trim().split('\n').slice(-1)[0] : undefined),
  };
}

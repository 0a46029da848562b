// What the servers show after a fault-matrix cell, read from them and not from pgrunbook: how long
// Patroni stayed paused after the runner died (the DCS key in etcd and every member's REST API),
// backup sessions still open, processes the run left, orphan files, manifest honesty, the journal's
// chain, and each member's state (and major version, for the upgrade).
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { verifyJournal } from '../../src/runner/journal-chain.js';
import { sql } from '../../tools/testenv/checks.js';
import { httpRequest, lookupUser, SERVER_USER } from '../../tools/testenv/index.js';
import { type Lab, rest } from './lab.js';

/** One kind of damage the servers show, with what exactly. */
export interface Damage {
  kind:
    | 'paused'
    | 'backup-session'
    | 'process'
    | 'orphan'
    | 'manifest'
    | 'journal'
    | 'member'
    | 'versions'
    | 'no-backup';
  detail: string;
  /** a path or name the summary should name (orphan files) */
  name?: string;
}

/** Each member as its REST API and PostgreSQL describe it. */
export interface MemberTruth {
  name: string;
  state: string;
  role: string;
  pause: boolean | undefined;
  major: number | undefined;
  standby: boolean | undefined;
}

/** The truth of one cell. */
export interface Truth {
  /** seconds from the runner's death until nothing was paused; 0 = never paused after it; null = still paused when polling stopped */
  pausedSeconds: number | null;
  damage: Damage[];
  members: MemberTruth[];
  /** complete backups with their labels (dir names) */
  backups: string[];
  journal: {
    ok: boolean;
    finished: boolean;
    exitCode?: number;
    openSteps: string[];
    /**
     * The journal records the pause as still in place: its undo pushed and never done (what
     * `pgrunbook resume` lists for the operator after a crash), or its guard stood down at the
     * point of no return (the recovery's to lift).
     */
    pauseKept?: boolean;
    error?: string;
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Patroni's dynamic config as etcd holds it (not through Patroni), or undefined. */
export async function dcsConfig(lab: Lab): Promise<Record<string, unknown> | undefined> {
  const key = Buffer.from(`/service/${lab.cluster.scope}/config`).toString('base64');
  try {
    const r = await httpRequest('POST', `${lab.etcd.clientUrl}/v3/kv/range`, { key }, 1500);
    const kv = (JSON.parse(r.body) as { kvs?: { value: string }[] }).kvs?.[0];
    return kv
      ? (JSON.parse(Buffer.from(kv.value, 'base64').toString('utf8')) as Record<string, unknown>)
      : {};
  } catch {
    return undefined;
  }
}

/** Whether anything still says paused: the DCS config, or a member's REST API. */
export async function pausedNow(lab: Lab): Promise<{ paused: boolean; where: string[] }> {
  const where: string[] = [];
  const cfg = await dcsConfig(lab);
  if (cfg === undefined) where.push('DCS unreadable');
  else if (cfg.pause === true) where.push('DCS');
  const views = await Promise.all(lab.cluster.members.map((m) => rest(m, '/patroni')));
  views.forEach((v, i) => {
    if (v?.pause === true) where.push(lab.cluster.members[i]!.name);
  });
  // An unreadable DCS proves nothing either way: Patroni may still write a pause it accepted.
  return { paused: where.length > 0, where };
}

/**
 * Polls the pause every 500 ms from the runner's death on, for up to `limitMs`: the seconds it
 * stayed paused (0 if it was not paused at the first look), or null if it still is.
 */
export async function measurePause(lab: Lab, deathAt: number, limitMs: number): Promise<number | null> {
  for (;;) {
    const { paused } = await pausedNow(lab);
    if (!paused) return Math.max(0, Math.round((Date.now() - deathAt) / 100) / 10);
    if (Date.now() - deathAt > limitMs) return null;
    await sleep(500);
  }
}

/**
 * Live processes of the server user that a session of the lab's sshds started (their environment
 * holds the lab's token: other test runs on this machine use the same user), by PID: command line.
 */
export function serverProcesses(uid: number, token: string): Map<number, string> {
  const out = new Map<number, string>();
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (statSync(`/proc/${e}`).uid !== uid) continue;
      if (!readFileSync(`/proc/${e}/environ`, 'utf8').includes(`PGRB_FAULT_LAB=${token}`)) continue;
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      if (stat.split(') ')[1]?.[0] === 'Z') continue;
      out.set(Number(e), readFileSync(`/proc/${e}/cmdline`, 'utf8').replace(/\0/g, ' ').trim());
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/** The servers' own processes, which come and go with the faults and are not a run's leftovers. */
function isServerProcess(cmd: string, backupRoot: string): boolean {
  if (cmd.includes(backupRoot)) return false; // a PostgreSQL of the restore proof is a leftover
  return (
    cmd === '' ||
    /^postgres: /.test(cmd) ||
    /\/postgres( |$)/.test(cmd) ||
    cmd.includes('/usr/bin/patroni') ||
    /\betcd\b/.test(cmd) ||
    /^sshd: /.test(cmd)
  );
}

/** How many files (not directories) are under `dir`, up to 1,000. */
function filesUnder(dir: string): number {
  let n = 0;
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (n >= 1000) return;
      if (e.isDirectory()) walk(join(d, e.name));
      else n++;
    }
  };
  try {
    walk(dir);
  } catch {
    return n;
  }
  return n;
}

/** What one scan of the backup root shows: complete backups, orphans, dishonest manifests. */
export function scanBackups(root: string): { backups: string[]; damage: Damage[] } {
  const backups: string[] = [];
  const damage: Damage[] = [];
  if (!existsSync(root)) return { backups, damage };
  const entries = readdirSync(root);
  const complete = new Set<string>();
  for (const e of entries) {
    if (e.endsWith('.snap') || e.endsWith('.verify')) continue;
    const dir = join(root, e);
    let manifest: Record<string, unknown> | undefined;
    try {
      manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
    } catch {
      manifest = undefined;
    }
    const label = existsSync(join(dir, 'backup_label'));
    if (!manifest) {
      damage.push({ kind: 'orphan', detail: `${dir}: no manifest`, name: e });
      continue;
    }
    if (manifest.status === 'complete') {
      if (!label)
        damage.push({ kind: 'manifest', detail: `${dir}: manifest says complete, no backup_label`, name: e });
      else {
        complete.add(e);
        backups.push(e);
      }
    } else if (manifest.status === 'verify_failed') {
      // Kept on purpose (issue 16): honest when it says why its proof failed and has its labels.
      const reason = (manifest.verify as { reason?: unknown } | undefined)?.reason;
      if (!label || typeof reason !== 'string' || !reason)
        damage.push({
          kind: 'manifest',
          detail: `${dir}: manifest says verify_failed without ${label ? 'a reason' : 'its backup_label'}`,
          name: e,
        });
      else complete.add(e);
    } else if (manifest.status !== 'void')
      damage.push({
        kind: 'manifest',
        detail: `${dir}: manifest status ${String(manifest.status)}`,
        name: e,
      });
  }
  for (const e of entries) {
    // An emptied directory is what an undo that removed the copy leaves: not a copy.
    if (filesUnder(join(root, e)) === 0) continue;
    if (e.endsWith('.snap') && !complete.has(e.slice(0, -5)))
      damage.push({
        kind: 'orphan',
        detail: `${join(root, e)}: a copy of PGDATA no complete backup owns`,
        name: e,
      });
    if (e.endsWith('.verify'))
      damage.push({ kind: 'orphan', detail: `${join(root, e)}: the restore proof's scratch copy`, name: e });
  }
  return { backups, damage };
}

/** The run's journal checked by its chain; which steps it left open. */
export function readJournal(cwd: string): Truth['journal'] {
  const runs = join(cwd, '.pgrunbook', 'runs');
  const ids = existsSync(runs) ? readdirSync(runs) : [];
  if (ids.length === 0) return { ok: true, finished: false, openSteps: [], error: 'no run directory' };
  const runId = ids[0]!;
  const file = join(runs, runId, 'journal.jsonl');
  if (!existsSync(file)) return { ok: true, finished: false, openSteps: [], error: 'no journal' };
  try {
    const { events } = verifyJournal(readFileSync(file, 'utf8'), runId, file);
    const open = new Map<string, string>();
    const pauseUndo = new Set<string>();
    let guardStoodDown = false;
    let finished = false;
    let exitCode: number | undefined;
    for (const e of events) {
      if (e.type === 'undo_pushed' && /patroni\.pause|Pause Patroni/.test(`${e.title} ${e.action}`))
        pauseUndo.add(`${e.address}@${e.host}`);
      if (e.type === 'undo_finished' && e.ok) pauseUndo.delete(`${e.address}@${e.host}`);
      if (e.type === 'point_of_no_return' && e.guardsReleased?.length) guardStoodDown = true;
      if (e.type === 'step_started') open.set(`${e.address}@${e.host}`, `${e.title}@${e.host}`);
      if (e.type === 'step_finished') open.delete(`${e.address}@${e.host}`);
      if (e.type === 'run_finished') {
        finished = true;
        exitCode = e.exitCode;
      }
    }
    return {
      ok: true,
      finished,
      exitCode,
      openSteps: [...open.values()],
      pauseKept: pauseUndo.size > 0 || guardStoodDown,
    };
  } catch (err) {
    return { ok: false, finished: false, openSteps: [], error: (err as Error).message.split('\n')[0] };
  }
}

/** Each member's REST view and PostgreSQL version (undefined where it does not answer). */
export async function readMembers(lab: Lab): Promise<MemberTruth[]> {
  return Promise.all(
    lab.cluster.members.map(async (m) => {
      const v = await rest(m, '/patroni');
      const row = await sql<{ major: number; standby: boolean }>(
        { ...lab.cluster.clientConfig(m.name), connectionTimeoutMillis: 3000, query_timeout: 3000 },
        "select current_setting('server_version_num')::int / 10000 as major, pg_is_in_recovery() as standby",
      ).catch(() => []);
      return {
        name: m.name,
        state: v ? String(v.state) : 'no answer',
        role: v ? String(v.role) : '?',
        pause: v ? v.pause === true : undefined,
        major: row[0]?.major,
        standby: row[0]?.standby,
      };
    }),
  );
}

/** pgrunbook sessions still open on any member. */
async function openSessions(lab: Lab): Promise<string[]> {
  const out: string[] = [];
  for (const m of lab.cluster.members) {
    const rows = await sql<{ application_name: string; pid: number; state: string }>(
      { ...lab.cluster.clientConfig(m.name), connectionTimeoutMillis: 3000, query_timeout: 3000 },
      "select application_name, pid, state from pg_stat_activity where application_name like 'pgrunbook%'",
    ).catch(() => []);
    for (const r of rows) out.push(`${m.name}: ${r.application_name} pid ${r.pid} (${r.state})`);
  }
  return out;
}

/** Every member running, one leader, the others streaming (polled up to `waitMs`). */
async function healthProblems(
  lab: Lab,
  waitMs: number,
): Promise<{ problems: string[]; members: MemberTruth[] }> {
  const until = Date.now() + waitMs;
  for (;;) {
    const members = await readMembers(lab);
    const problems: string[] = [];
    for (const m of members)
      if (m.state !== 'running' || m.major === undefined) problems.push(`${m.name} ${m.state}`);
    const leaders = members.filter((m) => m.standby === false);
    if (leaders.length !== 1) problems.push(`${leaders.length} primaries`);
    else {
      const leader = lab.cluster.members.find((x) => x.name === leaders[0]!.name)!;
      const [r] = await sql<{ n: number }>(
        { ...lab.cluster.clientConfig(leader.name), connectionTimeoutMillis: 3000, query_timeout: 3000 },
        "select count(*)::int as n from pg_stat_replication where state = 'streaming'",
      ).catch(() => [{ n: -1 }]);
      if ((r?.n ?? 0) < members.length - 1)
        problems.push(`${r?.n ?? 0}/${members.length - 1} replicas streaming`);
    }
    const majors = new Set(members.map((m) => m.major).filter((x) => x !== undefined));
    if (majors.size > 1) problems.push(`mixed majors ${[...majors].join('/')}`);
    if (problems.length === 0 || Date.now() > until) return { problems, members };
    await sleep(1000);
  }
}

/** What readTruth needs to know about the cell. */
export interface TruthInput {
  cwd: string;
  deathAt: number;
  backupRoot: string;
  /** server-user processes alive before the run (not the run's) */
  baseline: Set<number>;
  /** how long to poll the pause */
  pauseWatchMs: number;
  /** how long the members get to be healthy again (a restarted PostgreSQL, a healed Patroni) */
  healthWaitMs: number;
}

/** Reads every fact of the truth after a cell, the pause first (it is timed from the death). */
export async function readTruth(lab: Lab, t: TruthInput): Promise<Truth> {
  const pausedSeconds = await measurePause(lab, t.deathAt, t.pauseWatchMs);
  const damage: Damage[] = [];
  if (pausedSeconds === null) {
    const { where } = await pausedNow(lab);
    damage.push({
      kind: 'paused',
      detail: `still paused ${Math.round(t.pauseWatchMs / 1000)} s after: ${where.join(', ')}`,
    });
  }
  // The run's processes get a few seconds to end on their own (a lifeline, a channel close).
  const wait = t.deathAt + 5000 - Date.now();
  if (wait > 0) await sleep(wait);
  for (const s of await openSessions(lab)) damage.push({ kind: 'backup-session', detail: s });
  const { uid } = await lookupUser(SERVER_USER);
  for (const [pid, cmd] of serverProcesses(uid, lab.token))
    if (!t.baseline.has(pid) && !isServerProcess(cmd, t.backupRoot))
      damage.push({ kind: 'process', detail: `${pid} ${cmd.slice(0, 80)}` });
  const scan = scanBackups(t.backupRoot);
  damage.push(...scan.damage);
  const journal = readJournal(t.cwd);
  if (!journal.ok) damage.push({ kind: 'journal', detail: journal.error ?? 'chain broken' });
  const health = await healthProblems(lab, t.healthWaitMs);
  for (const p of health.problems)
    damage.push({ kind: p.startsWith('mixed') ? 'versions' : 'member', detail: p });
  return { pausedSeconds, damage, members: health.members, backups: scan.backups, journal };
}

/** Server-user PIDs alive now: the baseline a cell's leftovers are told apart from. */
export async function processBaseline(lab: Lab): Promise<Set<number>> {
  const { uid } = await lookupUser(SERVER_USER);
  return new Set(serverProcesses(uid, lab.token).keys());
}

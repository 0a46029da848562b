// `pgrunbook lab demo`: the main job on the lab — a snapshot backup taken while a writer commits
// rows, a restore that proves it, and a summary a person can check at a glance.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PgrunbookError } from '../errors.js';
import type { RunEvent } from '../runner/events.js';
import { readJournal, runDir } from '../runner/journal.js';

/** The shipped playbook, found from the installed package (source tree or bundle). */
function shippedPlaybook(name: string): string {
  let d = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++, d = resolve(d, '..')) {
    const p = join(d, 'playbooks', name);
    try {
      readFileSync(p);
      return p;
    } catch {
      // keep looking upwards
    }
  }
  throw new PgrunbookError(`lab demo: playbooks/${name} not found next to pgrunbook`);
}

/** A writer committing rows one at a time, remembering when each commit was acknowledged. */
async function startWriter(socketDir: string, port: number) {
  const { default: pg } = await import('pg');
  const c = new pg.Client({
    host: socketDir,
    port,
    user: 'postgres',
    database: 'postgres',
    application_name: 'lab-writer',
  });
  await c.connect();
  const acked: { id: number; at: number }[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const r = await c.query('insert into lab_writes default values returning id');
      acked.push({ id: Number(r.rows[0].id), at: Date.now() });
      await new Promise((res) => setTimeout(res, 2));
    }
  })();
  return {
    acked,
    async stop() {
      running = false;
      await loop;
      await c.end();
    },
  };
}

type Stamped = RunEvent & { ts: string };

/** Runs the demo; returns the run's exit code. */
export async function labDemo(dir: string, port: number, out: (s: string) => void): Promise<number> {
  const inventory = join(dir, 'inventory.yml');
  const { runCommand } = await import('../cli/commands/run.js');
  const writer = await startWriter(join(dir, 'run'), port);
  const before = new Set(safeList(join(process.cwd(), '.pgrunbook', 'runs')));
  let code: number;
  try {
    await new Promise((res) => setTimeout(res, 500));
    out('lab demo: a writer is committing rows; taking a snapshot backup and proving it restores\n\n');
    code = await runCommand(shippedPlaybook('snapshot-backup.yml'), {
      inventory,
      extraVars: {},
      output: 'plain',
      report: join(dir, 'last-report.md'),
    });
  } finally {
    await writer.stop();
  }
  const runId = safeList(join(process.cwd(), '.pgrunbook', 'runs')).find((r) => !before.has(r));
  if (!runId) return code;
  const events = readJournal(join(runDir(runId), 'journal.jsonl')) as Stamped[];
  const finished = (id: string) =>
    events.find(
      (e): e is Extract<Stamped, { type: 'step_finished' }> =>
        e.type === 'step_finished' && (e.names ?? []).includes(id) && e.status === 'ok',
    );
  const stopStarted = events.find((e) => e.type === 'step_started' && e.stepType === 'pg.backup_stop');
  const labels = finished('labels')?.outputs as { backup_id: string; dir: string } | undefined;
  const stop = finished('stop')?.outputs as { seconds_in_backup: number; lsn: string } | undefined;
  const verify = finished('verify')?.outputs as
    | { consistent_lsn: string; checks: { probe?: { rows: string; max_id: string }[] } }
    | undefined;
  const lines = ['', 'lab demo summary', `  run:                   ${runId} (exit ${code})`];
  if (labels)
    lines.push(`  backup id:             ${labels.backup_id}`, `  backup directory:      ${labels.dir}`);
  if (stop)
    lines.push(`  held in backup mode:   ${stop.seconds_in_backup.toFixed(2)} s (stop LSN ${stop.lsn})`);
  if (verify) {
    lines.push(`  restored copy:         consistent at ${verify.consistent_lsn}`);
    const probe = verify.checks.probe?.[0];
    if (probe && stopStarted) {
      const cutoff = Date.parse(stopStarted.ts);
      const committed = writer.acked.filter((a) => a.at < cutoff);
      const last = committed.at(-1)?.id ?? 0;
      const has = Number(probe.max_id ?? 0);
      const ok = has >= last && Number(probe.rows) === Number(probe.max_id);
      lines.push(
        `  rows before the stop:  ${committed.length} committed by the writer before pg.backup_stop was called (last id ${last})`,
        `  restored copy has:     ${probe.rows} rows, ids 1..${probe.max_id} without a gap — ${ok ? 'every one of them' : 'MISSING ROWS'}`,
        `  writer total:          ${writer.acked.length} rows during the run`,
      );
      if (!ok) code = code || 1;
    }
  }
  lines.push(`  report:                ${join(dir, 'last-report.md')}`, '');
  out(lines.join('\n'));
  return code;
}

function safeList(d: string): string[] {
  try {
    return readdirSync(d);
  } catch {
    return [];
  }
}

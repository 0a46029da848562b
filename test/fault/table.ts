// The fault matrix as text: one row per cell (claim, truth, verdicts), the failing cells' details,
// and the final count.
import type { CellResult, MatrixOptions } from './run.js';

function claimText(r: CellResult): string {
  const c = r.claim;
  if (c.hung) return 'hung (killed by the matrix)';
  if (c.summary === undefined) return c.signal ? `died (${c.signal}), no summary` : 'no summary';
  const first = c.summary.find((l) => l.trim() !== '') ?? '';
  const unknown = c.summary.some((l) => l.startsWith('State unknown')) ? ' [State unknown]' : '';
  const remedy = c.summary.some((l) => l.startsWith('Manual remedy')) ? ' [manual remedy]' : '';
  return `${c.status}${unknown}${remedy}: ${first.slice(0, 60)}`;
}

function truthText(r: CellResult): string {
  const kinds = new Map<string, number>();
  for (const d of r.truth.damage) kinds.set(d.kind, (kinds.get(d.kind) ?? 0) + 1);
  const parts = [...kinds].map(([k, n]) => (n > 1 ? `${k}×${n}` : k));
  if (parts.length === 0) parts.push('clean');
  const j = r.truth.journal;
  parts.push(`journal ${j.ok ? 'ok' : 'BROKEN'}${j.finished ? '' : ', open'}`);
  if (r.truth.backups.length) parts.push(`backups ${r.truth.backups.length}`);
  if (r.playbook === 'upgrade') parts.push(`majors ${r.truth.members.map((m) => m.major ?? '-').join('/')}`);
  return parts.join(', ');
}

function pad(s: string, n: number): string {
  return s.length > n ? `${s.slice(0, n - 1)}…` : s.padEnd(n);
}

/** Whether a cell fails either verdict. */
export function failing(r: CellResult): boolean {
  return r.pausedAfterDeath || r.understated.length > 0;
}

/** The table, the failing cells' details and the counts. */
export function renderTable(results: CellResult[], o: MatrixOptions, seconds: number): string {
  const lines: string[] = [];
  const head = `${pad('#', 3)} ${pad('cell', 58)} ${pad('hit', 4)} ${pad('exit', 6)} ${pad('paused s', 9)} ${pad(`paused>${o.pauseLimitS}s`, 11)} ${pad('understated', 12)} ${pad('claim', 70)} truth`;
  lines.push(head, '-'.repeat(head.length + 40));
  results.forEach((r, i) => {
    const exit = r.claim.hung
      ? 'hung'
      : r.claim.exit === null
        ? String(r.claim.signal)
        : String(r.claim.exit);
    const paused =
      r.truth.pausedSeconds === null ? `>${o.pauseWatchMs / 1000}` : String(r.truth.pausedSeconds);
    lines.push(
      `${pad(String(i + 1), 3)} ${pad(r.cell, 58)} ${pad(String(r.hit === 'n/a' ? '-' : r.hit ? 'yes' : 'NO'), 4)} ${pad(exit, 6)} ${pad(paused, 9)} ${pad(r.pausedAfterDeath ? 'FAIL' : r.interlock ? 'interlock' : 'ok', 11)} ${pad(r.claim.summary === undefined ? '- (none)' : r.understated.length ? `FAIL (${r.understated.length})` : 'ok', 12)} ${pad(claimText(r), 70)} ${truthText(r)}`,
    );
  });
  const bad = results.filter(failing);
  if (bad.length) {
    lines.push('', 'Failing cells:');
    for (const r of bad) {
      lines.push(`- ${r.cell}:`);
      if (r.pausedAfterDeath)
        lines.push(
          `    paused ${r.truth.pausedSeconds === null ? `more than ${o.pauseWatchMs / 1000}` : r.truth.pausedSeconds} s after the runner died`,
        );
      for (const d of r.understated) lines.push(`    not admitted by the summary: ${d.kind}: ${d.detail}`);
    }
  }
  const silent = results.filter((r) => r.claim.summary === undefined && r.truth.damage.length > 0);
  if (silent.length) {
    lines.push('', 'Damage left by runs that printed no summary (kill -9, hung):');
    for (const r of silent)
      lines.push(`- ${r.cell}: ${r.truth.damage.map((d) => `${d.kind}: ${d.detail}`).join('; ')}`);
  }
  const missed = results.filter((r) => r.hit === false || r.error);
  if (missed.length) {
    lines.push('', 'Cells whose injection missed its point or went wrong (their verdicts still stand):');
    for (const r of missed) lines.push(`- ${r.cell}: ${r.error ?? 'the step had ended before the fault'}`);
  }
  lines.push(
    '',
    `${results.length} cells in ${Math.round(seconds)} s: ${results.filter((r) => r.pausedAfterDeath).length} paused more than ${o.pauseLimitS} s after the runner died, ` +
      `${results.filter((r) => r.understated.length > 0).length} where the summary claims less damage than the servers show, ` +
      `${silent.length} left damage with no summary at all; ` +
      `${results.filter((r) => r.interlock).length} kept the pause as the interlock of a cluster whose Patroni the run had stopped everywhere (admitted by the summary or the journal).`,
  );
  return `${lines.join('\n')}\n`;
}

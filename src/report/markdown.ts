// The Markdown run report: per host and step, status, duration, outputs, undo taken.
import type { RunEvent, Subscriber } from '../runner/events.js';
import { redactValue } from '../util/secret.js';

type Stamped = RunEvent & { ts: string };

/** Collects events and renders the report at the end of the run. */
export class MarkdownReport {
  readonly events: Stamped[] = [];
  readonly subscriber: Subscriber = (e) => {
    // Masked as values, before any Markdown escaping: an escaped `|` no longer matches its secret.
    if (e.type !== 'step_output') this.events.push(redactValue(e) as Stamped);
  };

  render(): string {
    const out: string[] = [];
    const start = this.events.find((e) => e.type === 'run_started');
    const end = this.events.find((e) => e.type === 'run_finished');
    out.push(`# pgrunbook run ${start?.type === 'run_started' ? start.runId : ''}`, '');
    if (start?.type === 'run_started') {
      out.push(`- Playbook: \`${start.playbook}\` (sha256 \`${start.playbookSha256.slice(0, 12)}\`)`);
      out.push(`- Inventory: \`${start.inventory}\``);
      out.push(`- Started: ${start.ts}${start.resumed ? ' (resumed)' : ''}`);
      if (start.planDigest)
        out.push(
          `- Plan: \`${start.planDigest}\`${start.savedPlan ? ` (the saved plan \`${start.savedPlan}\`)` : ''}`,
        );
    }
    if (end?.type === 'run_finished')
      out.push(`- Finished: ${end.ts} — **${end.status}** (exit ${end.exitCode})`);
    for (const e of this.events)
      if (e.type === 'point_of_no_return')
        out.push(
          `- Point of no return crossed at "${e.title}" (${e.dropped} earlier change(s) no longer undone automatically)${e.recovery ? `; recovery: ${e.recovery}` : ''}`,
        );
    out.push(
      '',
      '## Steps',
      '',
      '| Host | Step | Status | Duration | Outputs / error |',
      '|---|---|---|---|---|',
    );
    for (const e of this.events) {
      if (e.type === 'play_started') out.push(`| | **Play: ${cell(e.name)}** | | | |`);
      if (e.type === 'step_finished') {
        const detail = e.error ?? (e.outputs === undefined ? '' : summarize(e.outputs));
        out.push(
          `| ${e.host} | ${cell(e.title)} | ${e.status} | ${(e.durationMs / 1000).toFixed(2)}s | ${cell(detail)} |`,
        );
      }
    }
    const undos = this.events.filter((e) => e.type === 'undo_finished');
    if (undos.length) {
      out.push('', '## Undo taken', '', '| Host | Step undone | Result |', '|---|---|---|');
      for (const u of undos)
        if (u.type === 'undo_finished')
          out.push(`| ${u.host} | ${cell(u.title)} | ${u.ok ? 'done' : `FAILED: ${cell(u.error ?? '')}`} |`);
    }
    if (end?.type === 'run_finished') out.push('', '## Outcome', '', ...end.summary.map((s) => `- ${s}`));
    return `${out.join('\n')}\n`;
  }
}

function summarize(v: unknown): string {
  const s = JSON.stringify(v);
  return s.length > 300 ? `${s.slice(0, 300)}…` : s;
}

function cell(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

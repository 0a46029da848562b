// Which reporters a run's events go to: the live tree on a terminal (with undo and the outcome as
// plain lines after its last frame), else plain lines or JSON lines; and the Markdown report.
import { writeFileSync } from 'node:fs';
import type { Plan } from '../engine/model.js';
import type { EventBus } from '../runner/events.js';
import { jsonReporter } from './json.js';
import { MarkdownReport } from './markdown.js';
import { plainReporter } from './plain.js';

/** How the run is shown. */
export interface ReporterOptions {
  output: 'plain' | 'json';
  /** a terminal that nothing else (a prompt) needs: the live tree may take it */
  live: boolean;
  /** where `--report` writes the Markdown report */
  report?: string;
  /** who leads (a line per cluster), said before the tree takes the screen */
  leaders?: string[];
}

/** Events the live tree leaves to plain lines, printed once it has drawn its last frame. */
const AFTER_TREE = new Set([
  'interrupted',
  'run_aborted',
  'unwind_started',
  'undo_started',
  'undo_finished',
  'artifact_removed',
  'run_finished',
]);

/** Subscribes the reporters; `finish` waits for the tree, prints what it held and writes the report. */
export async function attachReporters(
  bus: EventBus,
  plan: Plan,
  write: (s: string) => void,
  opts: ReporterOptions,
): Promise<{ finish(): Promise<void> }> {
  let treeDone: Promise<void> | undefined;
  const held: string[] = [];
  if (opts.live) {
    if (opts.leaders?.length) write(`${opts.leaders.join('\n')}\n`);
    // listr2 is loaded only for a terminal: logs and JSON runs never pay for it.
    const { listrReporter } = await import('./listr.js');
    const tree = listrReporter(plan);
    bus.subscribe(tree.subscriber);
    treeDone = tree.done;
    const plain = plainReporter((s) => held.push(s));
    bus.subscribe((e) => {
      if (AFTER_TREE.has(e.type)) plain(e);
    });
  } else bus.subscribe(opts.output === 'json' ? jsonReporter(write) : plainReporter(write));
  const report = opts.report ? new MarkdownReport() : undefined;
  if (report) bus.subscribe(report.subscriber);
  return {
    async finish() {
      await treeDone;
      for (const s of held) write(s);
      if (report && opts.report) writeFileSync(opts.report, report.render());
    },
  };
}

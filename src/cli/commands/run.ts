// `pgrunbook run` and `pgrunbook resume`: wire the executor to the journal, reporters and signals.
import { existsSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline/promises';
import { PgrunbookError, UsageError } from '../../errors.js';
import { type Node, type Playbook, walk } from '../../playbook/model.js';
import { jsonReporter } from '../../report/json.js';
import { MarkdownReport } from '../../report/markdown.js';
import { plainReporter } from '../../report/plain.js';
import { coalescingWriter } from '../../report/sink.js';
import { ConnectionPool } from '../../runner/connections.js';
import { EventBus } from '../../runner/events.js';
import { type DoneStep, Executor, type Prompter } from '../../runner/executor.js';
import { Journal, newRunId, readJournal, runDir } from '../../runner/journal.js';
import { registry } from '../../steps/registry.js';
import { loadInputs } from '../load-inputs.js';

export interface RunCommandOptions {
  inventory?: string;
  extraVars: Record<string, unknown>;
  limit?: string;
  yes?: boolean;
  output?: string;
  report?: string;
}

/** Steps that need an operator: approval gates and prompts. */
function interactiveSteps(playbook: Playbook): string[] {
  const out: string[] = [];
  const all: Node[] = playbook.plays.flatMap((p) => [...p.steps, ...p.rescue, ...p.always]);
  for (const s of walk(all)) {
    const def = registry.get(s.type)!;
    const prompt = def.interactive?.((s.params ?? {}) as never) === true;
    if (s.common.confirm || prompt) {
      const { line, col } = playbook.doc.locate(s.path);
      out.push(`${playbook.file}:${line}:${col}: ${s.title} (${s.common.confirm ? 'confirm' : 'prompt'})`);
    }
  }
  return out;
}

function ttyPrompter(): Prompter {
  const interactive = process.stdin.isTTY === true;
  return {
    interactive,
    async ask(question) {
      if (!interactive) return '';
      const rl = createInterface({ input: process.stdin, output: process.stderr });
      try {
        return await rl.question(question);
      } finally {
        rl.close();
      }
    },
  };
}

export async function runCommand(
  playbookFile: string,
  opts: RunCommandOptions,
  resumeId?: string,
): Promise<number> {
  if (!opts.inventory) throw new UsageError('run needs an inventory: -i INVENTORY');
  const output = opts.output ?? 'plain';
  if (!['plain', 'json'].includes(output))
    throw new UsageError(`--output: expected plain or json, got "${output}"`);
  const inputs = loadInputs(playbookFile, opts.inventory, {
    extraVars: opts.extraVars,
    limit: opts.limit,
    secrets: true,
  });
  let done: Map<string, DoneStep> | undefined;
  const runId = resumeId ?? newRunId();
  const dir = runDir(runId);
  if (resumeId) done = completedSteps(join(dir, 'journal.jsonl'), inputs.playbook.sha256);

  const prompter = ttyPrompter();
  const gates = interactiveSteps(inputs.playbook);
  if (gates.length && !prompter.interactive && !opts.yes) {
    throw new PgrunbookError(
      `this playbook needs an operator at these steps, but standard input is not a terminal:\n  ${gates.join('\n  ')}\n` +
        'Run it in a terminal, or pass --yes to pre-approve every gate. Nothing was run.',
    );
  }

  const bus = new EventBus();
  const journal = new Journal(join(dir, 'journal.jsonl'));
  bus.subscribe((e) => journal.write(e));
  const sink = coalescingWriter((s) => process.stdout.write(s));
  const write = sink.write;
  // The live tree needs the terminal to itself: prompts and non-TTY output get plain lines.
  const live = output === 'plain' && process.stdout.isTTY === true && gates.length === 0;
  let liveDone: Promise<void> | undefined;
  let flushHeld = () => {};
  if (live) {
    // listr2 is loaded only for a terminal: logs and JSON runs never pay for it.
    const { listrReporter } = await import('../../report/listr.js');
    const tree = listrReporter(inputs.playbook, inputs.inventory, opts.limit);
    bus.subscribe(tree.subscriber);
    liveDone = tree.done;
    // Undo and the outcome print as plain lines once the tree has drawn its last frame.
    const held: string[] = [];
    const plain = plainReporter((s) => held.push(s));
    const after = new Set([
      'interrupted',
      'run_aborted',
      'unwind_started',
      'undo_started',
      'undo_finished',
      'run_finished',
    ]);
    bus.subscribe((e) => {
      if (after.has(e.type)) plain(e);
    });
    flushHeld = () => {
      for (const s of held) write(s);
    };
  } else bus.subscribe(output === 'json' ? jsonReporter(write) : plainReporter(write));
  const report = opts.report ? new MarkdownReport() : undefined;
  if (report) bus.subscribe(report.subscriber);

  const executor = new Executor({
    playbook: inputs.playbook,
    inventory: inputs.inventory,
    run: { id: runId, started_at: new Date().toISOString(), check: false },
    extraVars: opts.extraVars,
    limit: opts.limit,
    bus,
    connections: new ConnectionPool(),
    prompter,
    yes: opts.yes === true,
    done,
  });
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    signals++;
    if (signals === 1) executor.interrupt(sig);
    else
      process.stderr.write(
        `${sig} again: already unwinding; waiting for clean-up to finish (the journal records every step)\n`,
      );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  bus.emit({
    type: 'run_started',
    runId,
    playbook: resolve(inputs.playbook.file),
    playbookSha256: inputs.playbook.sha256,
    inventory: resolve(opts.inventory),
    extraVars: opts.extraVars,
    limit: opts.limit,
    resumed: resumeId !== undefined,
  });
  try {
    const outcome = await executor.execute();
    await liveDone;
    flushHeld();
    sink.flush();
    if (report && opts.report) writeFileSync(opts.report, report.render());
    process.stderr.write(`journal: ${join(dir, 'journal.jsonl')}\n`);
    if (outcome.exitCode !== 0 && outcome.status !== 'compensation_failed') {
      process.stderr.write(`to continue after fixing the cause: pgrunbook resume ${runId}\n`);
    }
    return outcome.exitCode;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    journal.close();
  }
}

/** Steps of an earlier attempt that completed and were not undone. */
function completedSteps(journalPath: string, sha256: string): Map<string, DoneStep> {
  const events = readJournal(journalPath);
  const start = events.find((e) => e.type === 'run_started');
  if (start?.type === 'run_started' && start.playbookSha256 !== sha256) {
    throw new PgrunbookError(
      `the playbook ${start.playbook} changed since this run started (sha256 ${start.playbookSha256.slice(0, 12)} → ${sha256.slice(0, 12)}); ` +
        'resume refuses to mix two versions of a playbook. Start a new run instead.',
    );
  }
  const done = new Map<string, DoneStep>();
  for (const e of events) {
    // Clean-up (always) and rescue steps run again on every attempt: they answer to what that
    // attempt did, and a resumed run must end with its clean-up too.
    if (e.type === 'step_finished' && /\.(always|rescue)\./.test(e.address)) continue;
    if (e.type === 'step_finished' && (e.status === 'ok' || e.status === 'already_done')) {
      done.set(`${e.address}@${e.host}`, {
        outputs: e.outputs,
        names: e.names ?? [],
        facts: e.facts === true,
      });
    }
    if (e.type === 'undo_finished' && e.ok) done.delete(`${e.address}@${e.host}`);
  }
  return done;
}

/** `pgrunbook resume RUN_ID`: re-validates, refuses a changed playbook, continues after what stands. */
export async function resumeCommand(
  runId: string,
  opts: Omit<RunCommandOptions, 'inventory' | 'extraVars' | 'limit'>,
): Promise<number> {
  const path = join(runDir(runId), 'journal.jsonl');
  if (!existsSync(path)) throw new UsageError(`no run ${runId}: ${resolve(path)} does not exist`);
  const events = readJournal(path);
  const start = events.find((e) => e.type === 'run_started');
  if (start?.type !== 'run_started') throw new UsageError(`journal ${path} has no run_started event`);
  const last = [...events].reverse().find((e) => e.type === 'run_finished');
  if (last?.type === 'run_finished' && last.status === 'ok') {
    process.stdout.write(`run ${runId} already finished successfully; nothing to resume\n`);
    return 0;
  }
  if (last?.type === 'run_finished' && last.status === 'compensation_failed') {
    throw new PgrunbookError(
      `run ${runId} ended in compensation_failed: fix the hosts by hand (see its journal) before running again`,
    );
  }
  return runCommand(
    start.playbook,
    { ...opts, inventory: start.inventory, extraVars: start.extraVars, limit: start.limit },
    runId,
  );
}

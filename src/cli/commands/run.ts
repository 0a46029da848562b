// `pgrunbook run` and `pgrunbook resume`: wire the executor to the journal, reporters and signals.
import { createHash } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline/promises';
import { PgrunbookError, UsageError } from '../../errors.js';
import {
  applyPatroniGroups,
  describePatroniGroups,
  resolvePatroniGroups,
  usesDynamicGroups,
} from '../../inventory/patroni-groups.js';
import { type Node, type Playbook, walk } from '../../playbook/model.js';
import { jsonReporter } from '../../report/json.js';
import { MarkdownReport } from '../../report/markdown.js';
import { plainReporter } from '../../report/plain.js';
import { coalescingWriter } from '../../report/sink.js';
import { ConnectionPool } from '../../runner/connections.js';
import { EventBus } from '../../runner/events.js';
import { type DoneStep, Executor, type Prompter } from '../../runner/executor.js';
import { Journal, newRunId, readJournal, runDir } from '../../runner/journal.js';
import { confirmOf } from '../../steps/define.js';
import { registry } from '../../steps/registry.js';
import { loadInputs } from '../load-inputs.js';
import { outputState } from '../output-state.js';

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
    const gate = confirmOf(def, s.common, s.params);
    if (gate || prompt) {
      const { line, col } = playbook.doc.locate(s.path);
      out.push(`${playbook.file}:${line}:${col}: ${s.title} (${gate ? 'confirm' : 'prompt'})`);
    }
  }
  return out;
}

function ttyPrompter(): Prompter {
  const interactive = process.stdin.isTTY === true;
  return {
    interactive,
    async ask(question, signal) {
      if (!interactive) return '';
      const rl = createInterface({ input: process.stdin, output: process.stderr });
      // In raw mode readline swallows ^C: hand it to the runner's own handler, which unwinds.
      rl.on('SIGINT', () => process.kill(process.pid, 'SIGINT'));
      try {
        // Aborted by a signal (the runner's stop), the question answers "" = declined.
        return await rl.question(question, { signal }).catch(() => '');
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
  const inventorySha = createHash('sha256').update(inputs.inventory.doc.text).digest('hex');
  if (resumeId) done = completedSteps(join(dir, 'journal.jsonl'), inputs.playbook.sha256, inventorySha);

  // Before anything is drawn or run: the plays' hosts depend on who leads now.
  const groups = usesDynamicGroups(inputs.playbook.plays, opts.limit)
    ? await resolvePatroniGroups(inputs.inventory)
    : undefined;
  if (groups) applyPatroniGroups(inputs.inventory, groups);

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
  bus.subscribe((e) => journal.write(e), 'journal');
  outputState.running = true;
  const sink = coalescingWriter((s) => {
    if (!outputState.closed) process.stdout.write(s);
  });
  const write = sink.write;
  // The live tree needs the terminal to itself: prompts and non-TTY output get plain lines.
  const live = output === 'plain' && process.stdout.isTTY === true && gates.length === 0;
  let liveDone: Promise<void> | undefined;
  let flushHeld = () => {};
  if (live) {
    // Who leads decides where the plays run: say it before the tree takes the screen.
    if (groups) write(`${describePatroniGroups(groups).join('\n')}\n`);
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
    groupsResolvedAtStart: groups !== undefined,
  });
  bus.onSubscriberError = (name, err) => {
    if (name !== 'journal') return;
    process.stderr.write(`pgrunbook: cannot write the journal ${journal.path}: ${(err as Error).message}\n`);
    executor.failRun(
      `the journal cannot be written (${(err as Error).message}): nothing new starts; clean-up and undo still run`,
    );
  };
  // First signal: stop and unwind. Second: give up on the clean-up in progress (the summary prints
  // what remains to do by hand). Third: leave at once.
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    signals++;
    if (signals === 1) executor.interrupt(sig);
    else if (signals === 2) {
      process.stderr.write(
        `${sig} again: abandoning the clean-up in progress; the summary will list what remains to undo by hand\n`,
      );
      executor.abandonCleanup();
    } else {
      process.stderr.write(
        `${sig} a third time: exiting now. The journal ${journal.path} shows what was done and undone.\n`,
      );
      process.exit(3);
    }
  };
  // SIGHUP: the operator's terminal or SSH session went away; unwind as for SIGTERM.
  const signalNames: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  for (const s of signalNames) process.on(s, onSignal);
  bus.emit({
    type: 'run_started',
    runId,
    playbook: resolve(inputs.playbook.file),
    playbookSha256: inputs.playbook.sha256,
    inventorySha256: inventorySha,
    inventory: resolve(opts.inventory),
    extraVars: opts.extraVars,
    limit: opts.limit,
    resumed: resumeId !== undefined,
  });
  if (groups)
    bus.emit({ type: 'groups_resolved', groups: groups.groups, clusters: describePatroniGroups(groups) });
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
    for (const s of signalNames) process.off(s, onSignal);
    try {
      journal.close();
    } catch {
      // already reported through onSubscriberError
    }
  }
}

/** Steps of an earlier attempt that completed and were not undone. */
function completedSteps(journalPath: string, sha256: string, inventorySha: string): Map<string, DoneStep> {
  const events = readJournal(journalPath);
  const start = events.find((e) => e.type === 'run_started');
  if (start?.type === 'run_started' && start.playbookSha256 !== sha256) {
    throw new PgrunbookError(
      `the playbook ${start.playbook} changed since this run started (sha256 ${start.playbookSha256.slice(0, 12)} → ${sha256.slice(0, 12)}); ` +
        'resume refuses to mix two versions of a playbook. Start a new run instead.',
    );
  }
  // An attempt that never finished (kill -9, a crash, power loss) may have left changes its
  // undo never reached: resuming on top of them would forget them.
  const attempts = events.filter((e) => e.type === 'run_started').length;
  const finishedAttempts = events.filter((e) => e.type === 'run_finished').length;
  if (finishedAttempts < attempts) {
    const pushed = new Map<string, string>();
    for (const e of events) {
      if (e.type === 'undo_pushed')
        pushed.set(`${e.address}@${e.host}`, `${e.host}: "${e.title}" — to undo: ${e.action}`);
      if (e.type === 'undo_finished' && e.ok) pushed.delete(`${e.address}@${e.host}`);
    }
    const left = [...pushed.values()];
    if (left.length) {
      throw new PgrunbookError(
        `the last attempt of this run did not finish (no run_finished in its journal): its changes were not unwound.\n  ${left.join('\n  ')}\n` +
          'Undo these by hand (or check they are gone), then start a new run; resume refuses to build on them.',
      );
    }
  }
  if (start?.type === 'run_started' && start.inventorySha256 && start.inventorySha256 !== inventorySha) {
    throw new PgrunbookError(
      `the inventory ${start.inventory} changed since this run started: hosts, addresses or settings may differ from the attempt that did the work. Start a new run instead.`,
    );
  }
  const done = new Map<string, DoneStep>();
  for (const e of events) {
    // Clean-up (always) and rescue steps run again on every attempt: they answer to what that
    // attempt did, and a resumed run must end with its clean-up too.
    if (e.type === 'step_finished' && /\.(always|rescue)\./.test(e.address)) continue;
    // A registered value the journal had to redact is not the value the step produced: re-run it.
    if (e.type === 'step_finished' && JSON.stringify(e.outputs ?? null).includes('***')) continue;
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

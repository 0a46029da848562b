// `pgrunbook run` and `pgrunbook resume`: wire the executor to the journal, reporters and signals.
import { createHash } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline/promises';
import { prepare } from '../../engine/engine.js';
import { confirmOf } from '../../engine/gates.js';
import { basisChanges, PlanChangedError, readSavedPlan } from '../../engine/saved-plan.js';
import { PgrunbookError, UsageError, ValidationError } from '../../errors.js';
import { describePatroniGroups } from '../../inventory/dynamic-groups.js';
import { type Playbook, playNodes, walk } from '../../playbook/model.js';
import { jsonReporter } from '../../report/json.js';
import { MarkdownReport } from '../../report/markdown.js';
import { plainReporter } from '../../report/plain.js';
import { coalescingWriter } from '../../report/sink.js';
import { ConnectionPool } from '../../runner/connections.js';
import { EventBus } from '../../runner/events.js';
import { Executor, type Prompter } from '../../runner/executor.js';
import { Journal, newRunId, readJournal, runDir } from '../../runner/journal.js';
import { completedSteps, type DoneStep } from '../../runner/resume.js';
import { registry } from '../../steps/registry.js';
import { loadInputs } from '../load-inputs.js';
import { outputState } from '../output-state.js';

export interface RunCommandOptions {
  /** a plan saved by `plan --out`: run exactly it, or refuse naming what changed */
  plan?: string;
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
  for (const s of walk(playbook.plays.flatMap(playNodes))) {
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
  playbookArg: string | undefined,
  given: RunCommandOptions,
  resumeId?: string,
): Promise<number> {
  // A saved plan names its playbook, inventory, -e and --limit; any given again must agree.
  const saved = given.plan ? readSavedPlan(given.plan) : undefined;
  const playbookFile = playbookArg ?? saved?.playbook;
  if (!playbookFile) throw new UsageError('run needs a PLAYBOOK (or --plan PLAN.json)');
  const opts: RunCommandOptions = saved
    ? {
        ...given,
        inventory: given.inventory ?? saved.inventory,
        extraVars: Object.keys(given.extraVars).length ? given.extraVars : saved.basis.extraVars,
        limit: given.limit ?? saved.basis.limit ?? undefined,
      }
    : given;
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

  const engineInputs = {
    playbook: inputs.playbook,
    inventory: inputs.inventory,
    steps: registry,
    extraVars: opts.extraVars,
    limit: opts.limit,
  };
  // Before anything is drawn or run, the whole plan must build. First offline, exactly as
  // `validate -i` builds it (so what validate refuses, run refuses, without asking anyone);
  // then on who leads now, which decides the plays' hosts. A template that cannot render, on
  // any host, at any step, stops the run here.
  const offline = await prepare(engineInputs, { mode: 'offline' });
  if (offline.plan.problems.length > 0) throw new ValidationError(offline.plan.problems);
  // A saved plan made with --check is compared on the same facts, asked the same read-only way.
  const { plan, groups, basis } = await prepare(engineInputs, {
    mode: saved?.facts === 'checked' ? 'check' : 'run',
  });
  if (plan.problems.length > 0) throw new ValidationError(plan.problems);
  if (saved) {
    const changes = basisChanges(saved.basis, basis);
    if (changes.length > 0)
      throw new PlanChangedError(
        `the saved plan ${given.plan} (${saved.digest}) no longer matches; nothing was run:\n  ${changes.join('\n  ')}\nMake a new plan and have it reviewed again.`,
      );
  }

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
    const tree = listrReporter(plan);
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
    inputs: engineInputs,
    plan,
    run: { id: runId, started_at: new Date().toISOString(), check: false },
    bus,
    connections: new ConnectionPool(),
    prompter,
    yes: opts.yes === true,
    done,
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
    planDigest: plan.digest,
    savedPlan: given.plan,
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

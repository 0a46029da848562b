// `pgrunbook run` and `pgrunbook resume`: wire the executor to the journal, reporters and signals.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { prepare } from '../../engine/engine.js';
import { interactiveSteps } from '../../engine/gates.js';
import { basisChanges, PlanChangedError, readSavedPlan } from '../../engine/saved-plan.js';
import { PgrunbookError, UsageError, ValidationError } from '../../errors.js';
import { describePatroniGroups } from '../../inventory/dynamic-groups.js';
import { attachReporters } from '../../report/attach.js';
import { coalescingWriter } from '../../report/sink.js';
import { type PartialArtifact, partialArtifacts } from '../../runner/artifacts.js';
import { ConnectionPool } from '../../runner/connections.js';
import { EventBus } from '../../runner/events.js';
import { Executor } from '../../runner/executor.js';
import { isRunId, Journal, newRunId, readJournal, runDir } from '../../runner/journal.js';
import { acquireRunLocks } from '../../runner/locks.js';
import { runCommands } from '../../runner/next-command.js';
import { completedSteps, type DoneStep, unfinishedChanges } from '../../runner/resume.js';
import { handleSignals } from '../../runner/signals.js';
import { registry } from '../../steps/registry.js';
import { redactValue } from '../../util/secret.js';
import { loadInputs } from '../load-inputs.js';
import { outputState } from '../output-state.js';
import { ttyPrompter } from '../prompter.js';

export interface RunCommandOptions {
  /** a plan saved by `plan --out`: run exactly it, or refuse naming what changed */
  plan?: string;
  inventory?: string;
  /** delete a Patroni cluster's lock held by another run (after confirmation) */
  breakLock?: boolean;
  /** A Patroni cluster found paused by someone else is taken over (and resumed at the end). */
  adoptPause?: boolean;
  extraVars: Record<string, unknown>;
  limit?: string;
  yes?: boolean;
  output?: string;
  report?: string;
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
  const inventoryFile = opts.inventory;
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
  let leftovers: PartialArtifact[] | undefined;
  if (resumeId) {
    done = completedSteps(join(dir, 'journal.jsonl'), inputs.playbook.sha256, inventorySha);
    // Half-made paths of a killed step: the run removes them before anything else.
    leftovers = partialArtifacts(readJournal(join(dir, 'journal.jsonl'), resumeId));
  }

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
  const gates = interactiveSteps(inputs.playbook, registry);
  if (gates.length && !prompter.interactive && !opts.yes) {
    throw new PgrunbookError(
      `this playbook needs an operator at these steps, but standard input is not a terminal:\n  ${gates.join('\n  ')}\n` +
        'Run it in a terminal, or pass --yes to pre-approve every gate. Nothing was run.',
    );
  }

  // One run at a time: on this machine per inventory, and in each Patroni cluster's own DCS.
  if (opts.breakLock && !opts.yes) {
    const answer = await prompter.ask(
      'Break a lock another run holds on these clusters (only if that run is dead)? [y/N] ',
    );
    if (!/^y(es)?$/i.test(answer.trim()))
      throw new UsageError(
        '--break-lock was not confirmed (answer y in a terminal, or add --yes); nothing was run',
      );
  }
  let stopRun: (why: string) => void = () => {};
  const locks = await acquireRunLocks({
    inventoryFile,
    hosts: [...new Set(plan.plays.flatMap((p) => p.hosts))].map((h) => inputs.inventory.hosts.get(h)!),
    run: runId,
    playbook: resolve(inputs.playbook.file),
    breakLock: opts.breakLock === true,
    onLost: (why) => stopRun(why),
  });
  try {
    return await runLocked();
  } finally {
    await locks.release();
  }

  async function runLocked(): Promise<number> {
    const bus = new EventBus();
    const journal = new Journal(join(dir, 'journal.jsonl'));
    bus.subscribe((e) => journal.write(e), 'journal');
    // Said before anything is drawn: the summary's last line is the next command
    // (runner/next-command.ts), and a runner killed mid-run still told where its journal is.
    process.stderr.write(`journal: ${journal.path}\n`);
    outputState.running = true;
    const sink = coalescingWriter((s) => {
      if (!outputState.closed) process.stdout.write(s);
    });
    const reporters = await attachReporters(bus, plan, sink.write, {
      output: output as 'plain' | 'json',
      // The live tree needs the terminal to itself: prompts and non-TTY output get plain lines.
      live: output === 'plain' && process.stdout.isTTY === true && gates.length === 0,
      report: opts.report,
      leaders: groups && describePatroniGroups(groups),
    });
    const executor = new Executor({
      inputs: engineInputs,
      plan,
      run: {
        id: runId,
        started_at: new Date().toISOString(),
        check: false,
        inventory: resolve(inventoryFile),
        ...(opts.adoptPause ? { adopt_pause: true } : {}),
      },
      bus,
      connections: new ConnectionPool(),
      prompter,
      yes: opts.yes === true,
      done,
      leftovers,
      // The summary ends with the command to type next: these exact words, with the real paths.
      commands: runCommands({
        runId,
        playbook: resolve(inputs.playbook.file),
        inventory: resolve(inventoryFile),
        extraVars: opts.extraVars,
        masked: maskedNames(opts.extraVars),
        limit: opts.limit,
        savedPlan: given.plan,
        adoptPause: opts.adoptPause,
      }),
    });
    bus.onSubscriberError = (name, err) => {
      if (name !== 'journal') return;
      process.stderr.write(
        `pgrunbook: cannot write the journal ${journal.path}: ${(err as Error).message}\n`,
      );
      executor.failRun(
        `the journal cannot be written (${(err as Error).message}): nothing new starts; clean-up and undo still run`,
      );
    };
    stopRun = (why) => executor.failRun(`${why}: another run could start on the cluster; stopping`);
    const signals = handleSignals(executor, journal.path);
    bus.emit({
      type: 'run_started',
      runId,
      playbook: resolve(inputs.playbook.file),
      playbookSha256: inputs.playbook.sha256,
      inventorySha256: inventorySha,
      inventory: resolve(inventoryFile),
      extraVars: opts.extraVars,
      maskedExtraVars: maskedNames(opts.extraVars),
      limit: opts.limit,
      resumed: resumeId !== undefined,
      planDigest: plan.digest,
      savedPlan: given.plan,
      locks: locks.lines,
    });
    if (groups)
      bus.emit({ type: 'groups_resolved', groups: groups.groups, clusters: describePatroniGroups(groups) });
    try {
      const outcome = await executor.execute();
      await reporters.finish();
      sink.flush();
      return outcome.exitCode;
    } finally {
      signals.release();
      try {
        journal.close();
      } catch {
        // already reported through onSubscriberError
      }
    }
  }
}

/** -e names whose value the journal will mask (it holds a secret); undefined when none. */
function maskedNames(extraVars: Record<string, unknown>): string[] | undefined {
  const names = Object.keys(extraVars).filter(
    (k) => JSON.stringify(redactValue(extraVars[k])) !== JSON.stringify(extraVars[k]),
  );
  return names.length ? names : undefined;
}

/**
 * The -e values a resume runs with: the run's own, from its journal, except those the journal
 * masked, which the operator gives again. Nothing else may change: a resume continues one run.
 */
function resumeExtraVars(
  runId: string,
  journaled: Record<string, unknown>,
  masked: readonly string[],
  given: Record<string, unknown>,
): Record<string, unknown> {
  const stray = Object.keys(given).filter((k) => !masked.includes(k));
  if (stray.length)
    throw new UsageError(
      `resume continues run ${runId} with its own -e values; ${stray.map((k) => `-e ${k}`).join(', ')} cannot be changed` +
        (masked.length
          ? ` (only the values its journal masked can be given again: ${masked.join(', ')})`
          : ''),
    );
  const missing = masked.filter((k) => !(k in given));
  if (missing.length)
    throw new UsageError(
      `run ${runId} was started with -e values that hold a secret, masked in its journal: ${missing.join(', ')}. ` +
        `Give them again, with the same values: pgrunbook resume ${runId} ${missing.map((k) => `-e ${k}=…`).join(' ')}. Nothing was run.`,
    );
  return { ...journaled, ...given };
}

/** `pgrunbook resume RUN_ID`: re-validates, refuses a changed playbook, continues after what stands. */
export async function resumeCommand(
  runId: string,
  opts: Omit<RunCommandOptions, 'inventory' | 'limit'> & { rerunUnfinished?: boolean },
): Promise<number> {
  if (!isRunId(runId)) throw new UsageError(`not a run id: ${JSON.stringify(runId)}`);
  const path = join(runDir(runId), 'journal.jsonl');
  if (!existsSync(path)) throw new UsageError(`no run ${runId}: ${resolve(path)} does not exist`);
  // Checksums first: nothing below may act on a journal that is cut, edited or another run's.
  const events = readJournal(path, runId);
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
  const extraVars = resumeExtraVars(runId, start.extraVars, start.maskedExtraVars ?? [], opts.extraVars);
  const killed = unfinishedChanges(events);
  if (killed.length && !opts.rerunUnfinished)
    throw new PgrunbookError(
      `these steps were started and never finished (the runner was killed): they change things and have no undo, so running them again may do them twice:\n  ${killed.join('\n  ')}\n` +
        'Check these hosts by hand; then resume with --rerun-unfinished to run the steps again. Nothing was run.',
    );
  const { rerunUnfinished: _, ...runOpts } = opts;
  return runCommand(
    start.playbook,
    { ...runOpts, inventory: start.inventory, extraVars, limit: start.limit },
    runId,
  );
}

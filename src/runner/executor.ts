// Runs a validated playbook: plays in order, steps in lockstep across hosts, undo on failure.
import { setTimeout as sleep } from 'node:timers/promises';
import { buildPlan } from '../engine/build.js';
import { approvalPrompt, confirmOf, requiresLeaderOn } from '../engine/gates.js';
import type { Plan, PlanBlock, PlanNode, PlannedPlay, PlanStep } from '../engine/model.js';
import type { EngineInputs, Pass } from '../engine/pass.js';
import { Pass as EnginePass } from '../engine/pass.js';
import { resolvePatroniGroups } from '../engine/patroni-groups.js';
import type { RunInfo } from '../engine/scope.js';
import { formatProblem, InterruptedError, messageOf, StepFailure, TimeoutError } from '../errors.js';
import { applyPatroniGroups, describePatroniGroups } from '../inventory/dynamic-groups.js';
import type { PatroniGroups } from '../inventory/inventory.js';
import type { BlockNode, StepNode } from '../playbook/model.js';
import { type AnyStep, type ApplyContext, type Artifact, isMutating } from '../steps/define.js';
import { redact } from '../util/secret.js';
import { mapLimit } from '../util/semaphore.js';
import { describeArtifact, type PartialArtifact, removeArtifact } from './artifacts.js';
import { type UndoEntry, UndoStack } from './compensation.js';
import type { ConnectionPool } from './connections.js';
import type { EventBus, RunStatus } from './events.js';
import { checkLeader } from './leader-guard.js';
import { nextCommand, type RunCommands, runCommands } from './next-command.js';
import type { DoneStep } from './resume.js';

/** Talks to the operator for approvals and prompts. */
export interface Prompter {
  /** true when a person can answer (a TTY) */
  interactive: boolean;
  /** Resolves "" (declined) when `signal` aborts. */
  ask(question: string, signal?: AbortSignal): Promise<string>;
}

/** Everything a run needs. */
export interface RunOptions {
  /** playbook, inventory, step types, -e and --limit: what the plan was built from */
  inputs: EngineInputs;
  /** the plan built by the engine, with no problem: the run executes exactly this */
  plan: Plan;
  run: RunInfo;
  bus: EventBus;
  connections: ConnectionPool;
  prompter: Prompter;
  /** pre-approve every confirm gate */
  yes: boolean;
  /** steps done by an earlier attempt, keyed `address@host` */
  done?: Map<string, DoneStep>;
  /** how the operator runs this again or resumes it (the CLI's words); derived from inputs if absent */
  commands?: RunCommands;
  /** partial artifacts an earlier attempt left (resume): removed before anything runs */
  leftovers?: PartialArtifact[];
}

/** How the run ended. */
export interface RunOutcome {
  status: RunStatus;
  exitCode: number;
}

const EXIT: Record<RunStatus, number> = { ok: 0, failed: 1, interrupted: 1, compensation_failed: 3 };

/** One run of a playbook. Call `interrupt` from a signal handler. */
export class Executor {
  readonly #o: RunOptions;
  readonly #undo = new UndoStack();
  /** The run's variables per host: the engine's run pass (the plan had its own). */
  readonly #pass: Pass;
  /** The plan being executed; a later play naming a dynamic group may be planned again. */
  #plan: Plan;
  #ponr: { address: string; title: string; recovery?: string } | undefined;
  /** Guards released at the point of no return: what they watched is left to the recovery. */
  readonly #stoodDown: string[] = [];
  /** Aborted on a signal or when the run must stop at once (a held session died). */
  readonly #stop = new AbortController();
  /** Aborted by a second signal: the operator gives up on the clean-up in progress. */
  readonly #cleanup = new AbortController();
  /** Mutating steps that failed or were stopped midway: their effect is unknown. */
  readonly #unknown: { host: string; title: string; address: string; error: string }[] = [];
  /** Partial artifacts of steps that did not succeed: removed, or left with why. */
  readonly #artifacts: { removed: PartialArtifact[]; left: { a: PartialArtifact; error: string }[] } = {
    removed: [],
    left: [],
  };
  #signalName: string | undefined;
  /** Set when a host failed with no rescue around it: main lines stop, `always` still runs. */
  #fatal = false;
  #firstError: string | undefined;

  constructor(opts: RunOptions) {
    this.#o = opts;
    this.#plan = opts.plan;
    this.#pass = new EnginePass(opts.inputs, opts.run, 'run');
    // Which host key each connection trusted, and why, belongs in the record of the run.
    opts.connections.onSshOpened = (host, t, reopened) =>
      opts.bus.emit({
        type: 'connected',
        host,
        fingerprint: t.hostKeyFingerprint,
        keyType: t.hostKeyType,
        trust: t.hostKeyTrust,
        reopened,
      });
    opts.connections.onGuardLost = (g, r) => {
      // What the guard said (why it acted, what it did) is the truth about the change it watched.
      const said = g.lines.filter((l) => !l.startsWith('ready')).map((l) => l.replace(/^acting: /, ''));
      const how = said.length
        ? said.join('; ')
        : r.exitCode === null && r.signal === null
          ? 'its connection ended'
          : `it exited (${r.exitCode ?? r.signal})`;
      this.failRun(`${g.host}: ${g.lostMessage}: ${how}`);
    };
    opts.connections.onPinnedLost = (p, why) =>
      this.failRun(`${p.host}: ${p.lostMessage} (session "${p.name}" ended: ${why})`);
  }

  /** Stops the run at the current step; `always` runs and the undo stack unwinds. */
  interrupt(signal: string): void {
    if (this.#signalName) return;
    this.#signalName = signal;
    this.#o.bus.emit({ type: 'interrupted', signal });
    this.#stop.abort(new InterruptedError(signal));
  }

  /** Fails the run at once with `reason`: the current steps are aborted, then clean-up and undo. */
  failRun(reason: string): void {
    if (this.#stop.signal.aborted) return;
    this.#fatal = true;
    this.#firstError = reason;
    this.#o.bus.emit({ type: 'run_aborted', reason });
    this.#stop.abort(new StepFailure(reason));
  }

  /** Abandons clean-up steps and undos in progress; what is left goes to the manual remedy. */
  abandonCleanup(): void {
    this.#cleanup.abort(new Error('abandoned by the operator (second signal)'));
  }

  /** True once the run is stopping (signal or failRun): main lines start nothing new. */
  get #stopping(): boolean {
    return this.#stop.signal.aborted;
  }

  get interrupted(): boolean {
    return this.#signalName !== undefined;
  }

  async execute(): Promise<RunOutcome> {
    const { bus } = this.#o;
    // The first play naming a dynamic group uses the groups the plan was built on (asked at run
    // start); later ones ask again: the run may have switched over.
    const firstDynamic = this.#plan.plays.find((p) => p.dynamic)?.index;
    try {
      // What a killed attempt left half-made goes first: the steps that made it run again.
      if (this.#o.leftovers?.length && !(await this.#removeArtifacts(this.#o.leftovers)))
        this.#fail(
          `partial artifacts of an earlier attempt could not be removed: ${this.#artifacts.left.map((l) => `${describeArtifact(l.a)}: ${l.error}`).join('; ')}`,
        );
      for (const planned of this.#o.plan.plays) {
        if (this.#fatal || this.interrupted) break;
        let play: PlannedPlay | undefined = planned;
        if (planned.dynamic && planned.index !== firstDynamic) play = await this.#replan(planned);
        if (!play) break;
        if (play.dynamic && play.hosts.length === 0) {
          this.#fail(
            `play "${play.name}": ${play.pattern} resolved to no host (${describePatroniGroups(this.#o.inputs.inventory.dynamic!).join('; ')}): refusing to report success for a play that did nothing`,
          );
          break;
        }
        bus.emit({
          type: 'play_started',
          play: play.index,
          name: play.name,
          hosts: play.hosts,
          batches: play.batches,
        });
        const problems = this.#pass.enterPlay(this.#o.inputs.playbook.plays[play.index]!, play.hosts);
        if (problems.length) {
          this.#fail(problems.map(formatProblem).join('; '));
          break;
        }
        const asBlock: PlanBlock = {
          kind: 'block',
          address: `p${play.index}`,
          title: play.name,
          hosts: play.hosts,
          block: play.steps,
          rescue: play.rescue,
          always: play.always,
        };
        for (const [i, batch] of play.batches.entries()) {
          bus.emit({
            type: 'batch_started',
            play: play.index,
            batch: i,
            of: play.batches.length,
            hosts: batch,
          });
          const failed = await this.#runBlock(asBlock, batch, this.#forks(play), false);
          if (failed.size > 0) this.#fatal = true;
          if (this.#fatal || this.interrupted) break;
        }
      }
    } catch (err) {
      this.#fail(`internal error: ${messageOf(err)}`);
    }
    return this.#finish();
  }

  #forks(play: PlannedPlay): number {
    return this.#o.inputs.playbook.plays[play.index]!.forks;
  }

  /**
   * Asks Patroni who leads before a later play on a dynamic group. Unchanged: the play runs as
   * planned. Changed (a switchover in the run): the whole plan is built again on the new groups
   * by the same engine, and the play runs only if that plan has no problem.
   */
  async #replan(planned: PlannedPlay): Promise<PlannedPlay | undefined> {
    const { bus, inputs } = this.#o;
    let g: PatroniGroups;
    try {
      g = await resolvePatroniGroups(inputs.inventory, this.#stop.signal);
    } catch (err) {
      this.#fail(`play "${planned.name}": ${messageOf(err)}`);
      return undefined;
    }
    bus.emit({ type: 'groups_resolved', groups: g.groups, clusters: describePatroniGroups(g) });
    const before = JSON.stringify(inputs.inventory.dynamic?.groups ?? {});
    applyPatroniGroups(inputs.inventory, g);
    if (JSON.stringify(g.groups) === before) return planned;
    const plan = buildPlan(inputs, {});
    if (plan.problems.length) {
      this.#fail(
        `play "${planned.name}": the Patroni groups changed during the run and the plan on them has problems: ${plan.problems.map(formatProblem).join('; ')}`,
      );
      return undefined;
    }
    this.#plan = plan;
    return plan.plays[planned.index];
  }

  #fail(msg: string): void {
    this.#fatal = true;
    this.#firstError ??= msg;
  }

  /** Runs a block; returns the hosts whose failure it did not rescue. */
  async #runBlock(
    b: PlanBlock,
    hosts: string[],
    forks: number,
    inAlways: boolean,
    outerRescue = false,
  ): Promise<Set<string>> {
    let active = intersect(hosts, b.hosts);
    if (b.when) {
      const node = this.#pass.node(b.address) as BlockNode;
      const r = this.#pass.blockHosts(node, active);
      if (r.problems.length) this.#fail(r.problems.map(formatProblem).join('; '));
      active = r.active;
    }
    const rescuable = b.rescue.length > 0;
    let failed = await this.#runList(b.block, active, forks, inAlways, rescuable || outerRescue);
    if (failed.size > 0 && rescuable && !this.#stopping) {
      failed = await this.#runList(b.rescue, [...failed], forks, inAlways, outerRescue);
    }
    if (b.always.length > 0) {
      const alwaysFailed = await this.#runList(b.always, active, forks, true, outerRescue);
      for (const h of alwaysFailed) failed.add(h);
    }
    return failed;
  }

  /** Runs nodes in lockstep; a failure outside any rescue stops every host (fail fast). */
  async #runList(
    nodes: PlanNode[],
    hosts: string[],
    forks: number,
    inAlways: boolean,
    rescuable: boolean,
  ): Promise<Set<string>> {
    const failed = new Set<string>();
    for (const n of nodes) {
      if (!inAlways && (this.#fatal || this.interrupted)) break;
      // Clean-up goes on after a failed clean-up step: a failed resume must not skip the next one.
      const ok = inAlways ? hosts : hosts.filter((h) => !failed.has(h));
      if (ok.length === 0) break;
      const stepFailed =
        n.kind === 'block'
          ? await this.#runBlock(n, ok, forks, inAlways, rescuable)
          : await this.#runStep(n, ok, forks, inAlways, rescuable);
      for (const h of stepFailed) failed.add(h);
      if (stepFailed.size > 0 && !rescuable) this.#fatal = true;
    }
    return failed;
  }

  async #runStep(
    p: PlanStep,
    hosts: string[],
    forks: number,
    inAlways: boolean,
    rescuable = false,
  ): Promise<Set<string>> {
    const n = this.#pass.node(p.address) as StepNode;
    const targets = intersect(
      hosts,
      p.hosts.map((h) => h.host),
    );
    const failed = new Set<string>();
    if (targets.length === 0) return failed;
    const gate = confirmOf(this.#def(n), n.common, n.params);
    if (gate && !targets.every((h) => this.#o.done?.has(`${n.address}@${h}`))) {
      const approved = await this.#approve(n, targets, gate);
      if (!approved) {
        this.#fail(`"${this.#pass.text(n.title, targets[0]!)}" was not approved by the operator`);
        for (const h of targets) failed.add(h);
        return failed;
      }
    }
    await mapLimit(targets, forks, async (h) => {
      // With fewer forks than hosts, a fatal failure on one host stops the hosts still queued.
      if (!inAlways && (this.#stopping || (this.#fatal && !rescuable))) return;
      if (!(await this.#runOnHost(n, p, h, inAlways))) {
        failed.add(h);
        if (!rescuable && !inAlways) this.#fatal = true;
      }
    });
    return failed;
  }

  #def(n: { type: string }): AnyStep {
    const def = this.#o.inputs.steps.get(n.type);
    if (!def) throw new Error(`internal: unknown step type ${n.type}`);
    return def;
  }

  /**
   * Past the point of no return, undoing earlier steps would do harm (an old cluster started on
   * files the new one has changed): they become changes that remain, and a later failure stops
   * the run with the recovery named.
   */
  /** The recovery a point of no return names, rendered with the run's values (ids, LSNs, paths). */
  #ponrText(n: StepNode, host: string, planned: true | string): true | string {
    const raw = n.common.point_of_no_return;
    if (typeof raw !== 'string') return planned;
    try {
      return this.#pass.text(raw, host);
    } catch {
      return planned;
    }
  }

  #crossPonr(n: StepNode, title: string, ponr: true | string): void {
    const recovery = typeof ponr === 'string' ? ponr : undefined;
    const dropped = this.#undo.entries.splice(0);
    for (const e of dropped)
      this.#undo.permanent.push({
        address: e.address,
        title: e.title,
        host: e.host,
        why: `kept: past the point of no return at "${title}"`,
      });
    this.#ponr = { address: n.address, title, recovery };
    // A guard undoes its change if the run dies, as the undo stack would: past this point both
    // would do harm (a pause lifted on a half-upgraded cluster), so they stand down together and
    // the change is left to the recovery. Not a guard whose act is safe at any point (a pooler's
    // resume): it keeps watching, and the run's end or death still ends what it guards.
    const guards = this.#o.connections
      .heldGuards()
      .filter((g) => !g.pastPointOfNoReturn)
      .map((g) => g.name);
    for (const name of guards) void this.#o.connections.endGuard(name, 'release', GUARD_END_MS);
    this.#stoodDown.push(...guards);
    this.#o.bus.emit({
      type: 'point_of_no_return',
      address: n.address,
      title,
      dropped: dropped.length,
      recovery,
      ...(guards.length ? { guardsReleased: guards } : {}),
    });
  }

  async #approve(n: StepNode, hosts: string[], gate: true | string): Promise<boolean> {
    const title = this.#pass.text(n.title, hosts[0]!);
    const question = approvalPrompt(gate, n.title, new Map(hosts.map((h) => [h, this.#pass.scope(h)])));
    if (this.#o.yes) {
      this.#o.bus.emit({ type: 'approval', address: n.address, title, approved: true, by: '--yes' });
      return true;
    }
    const answer = await this.#o.prompter.ask(question, this.#stop.signal);
    const approved = /^y(es)?$/i.test(answer.trim());
    this.#o.bus.emit({ type: 'approval', address: n.address, title, approved, by: 'prompt' });
    return approved;
  }

  /** Runs one step on one host; returns false when it failed (and the failure was not ignored). */
  async #runOnHost(n: StepNode, p: PlanStep, host: string, inAlways: boolean): Promise<boolean> {
    const { bus } = this.#o;
    const def = this.#def(n);
    const sc = this.#pass.hostScope(host);
    const names = [n.common.id, n.common.register].filter((x): x is string => typeof x === 'string');
    const title = this.#pass.text(n.title, host);
    const base = { address: n.address, title, stepType: n.type, host };
    const started = Date.now();
    const finish = (
      status: 'ok' | 'failed' | 'ignored' | 'skipped' | 'already_done',
      extra: { outputs?: unknown; error?: string; stage?: 'render' } = {},
    ) =>
      bus.emit({
        type: 'step_finished',
        ...base,
        status,
        durationMs: Date.now() - started,
        names,
        facts: def.setsFacts === true,
        ...extra,
      });

    const done = this.#o.done?.get(`${n.address}@${host}`);
    if (done) {
      this.#pass.record(n, host, { kind: 'ok', outputs: done.outputs });
      finish('already_done', { outputs: done.outputs });
      return true;
    }
    // `when` and the parameters, decided by the engine as the plan decided them; only values
    // that were unknown in the plan can fail here.
    const inst = this.#pass.resolve(n, host);
    if (inst.status === 'skipped') {
      this.#pass.record(n, host, { kind: 'skipped' });
      finish('skipped');
      return true;
    }
    if (inst.status === 'error') {
      finish('failed', { error: inst.error, stage: 'render' });
      this.#firstError ??= `${host}: ${title}: ${inst.error}`;
      return n.common.ignore_errors === true && !inst.error.startsWith('when ');
    }
    const params = inst.params;
    if (requiresLeaderOn(n.common, sc.host)) {
      // Re-asked just before the step, never retried: a leader that moved is a reason to stop.
      try {
        const seen = await checkLeader(sc.host, inAlways ? undefined : this.#stop.signal);
        bus.emit({ type: 'step_output', address: n.address, host, stream: 'log', text: seen });
      } catch (err) {
        const error = messageOf(err);
        finish('failed', { error });
        this.#firstError ??= `${host}: ${title}: ${error}`;
        return false;
      }
    }
    // Crossed when the step really starts on its first host (past `when` and the leader guard).
    if (p.pointOfNoReturn !== undefined && this.#ponr?.address !== n.address && !this.#stopping)
      this.#crossPonr(n, title, this.#ponrText(n, host, p.pointOfNoReturn));
    const retries = (n.common.retries as number | undefined) ?? 0;
    const delayMs = ((n.common.delay as number | undefined) ?? 1) * 1000;
    let lastError = '';
    // Journaled with step_started: a resume after kill -9 asks before re-running a change without undo.
    const undo = this.#declaresUndo(def, n, host, params);
    // Whether any attempt reached the step's first change (steps that say so; others always may have).
    let changed = def.marksChanges !== true;
    // Paths the current attempt started creating: removed if it does not succeed.
    let artifacts: PartialArtifact[] = [];
    // Set when the step completed what earlier steps built (ctx.keep): its own change stays too.
    let keptWhy: string | undefined;
    for (let attempt = 0; attempt <= retries; attempt++) {
      if (attempt > 0) {
        try {
          await sleep(delayMs, undefined, { signal: inAlways ? undefined : this.#stop.signal });
        } catch {
          break;
        }
      }
      if (!inAlways && this.#stopping) {
        lastError = messageOf(this.#stop.signal.reason);
        break;
      }
      bus.emit({ type: 'step_started', ...base, attempt: attempt + 1, mutating: inst.mutating, undo });
      const ctl = new AbortController();
      const watched = inAlways ? this.#cleanup.signal : this.#stop.signal;
      const onInterrupt = () => ctl.abort(watched.reason);
      // `always` steps must finish even after Ctrl-C: they are the clean-up.
      // `always` steps finish after Ctrl-C (they are the clean-up), unless abandoned by a second signal.
      if (watched.aborted) ctl.abort(watched.reason);
      else watched.addEventListener('abort', onInterrupt, { once: true });
      const timeoutS = n.common.timeout as number | undefined;
      const timer = timeoutS
        ? setTimeout(() => ctl.abort(new TimeoutError(`timed out after ${timeoutS}s`)), timeoutS * 1000)
        : undefined;
      artifacts = [];
      const ctx = this.#context(
        host,
        n,
        ctl.signal,
        () => {
          changed = true;
        },
        (a) => {
          const pa = { ...a, address: n.address, title, host };
          artifacts.push(pa);
          bus.emit({ type: 'artifact', ...pa });
        },
        (values, why) => {
          keptWhy = why;
          this.#keep(host, n.address, values, why);
        },
      );
      try {
        const outputs = await abortable(def.apply(ctx, params), ctl.signal).finally(() => ctx.flushOutput());
        if (typeof n.common.until === 'string' && !this.#pass.until(n.common.until, host, outputs)) {
          lastError = `until "${n.common.until}" still false after ${attempt + 1} attempt(s)`;
          await this.#removeArtifacts(artifacts);
          continue;
        }
        this.#pass.record(n, host, { kind: 'ok', outputs });
        finish('ok', { outputs });
        this.#pushUndo(def, { ...n, title }, host, params, outputs, keptWhy);
        // Past the point of no return, the way back can change as the run goes on (once the new
        // leader takes writes, restoring the old snapshot would lose them).
        if (typeof n.common.recovery === 'string' && this.#ponr)
          this.#ponr.recovery = this.#pass.text(n.common.recovery, host);
        return true;
      } catch (err) {
        lastError = ctl.signal.aborted ? messageOf(ctl.signal.reason) : messageOf(err);
        await this.#removeArtifacts(artifacts);
        if (!inAlways && this.#stopping) break;
      } finally {
        clearTimeout(timer);
        watched.removeEventListener('abort', onInterrupt);
      }
    }
    if (n.common.ignore_errors === true && !this.#stopping) {
      this.#pass.record(n, host, { kind: 'ignored', error: lastError });
      finish('ignored', { error: lastError });
      return true;
    }
    finish('failed', { error: lastError });
    if (inst.mutating && changed) this.#unknown.push({ host, title, address: n.address, error: lastError });
    this.#firstError ??= `${host}: ${title}: ${lastError}`;
    return false;
  }

  /**
   * Removes partial artifacts (a failed step's, or a killed attempt's), each with its own script,
   * even after a signal: they are clean-up. Returns false when one could not be removed.
   */
  async #removeArtifacts(list: PartialArtifact[]): Promise<boolean> {
    let ok = true;
    for (const a of list) {
      const signal = AbortSignal.any([this.#cleanup.signal, AbortSignal.timeout(UNDO_TIMEOUT_MS)]);
      const ev = { address: a.address, title: a.title, host: a.host, paths: a.paths };
      try {
        const h = this.#pass.hostScope(a.host).host;
        await removeArtifact(await this.#o.connections.transport(h), a, h.become, signal);
        this.#artifacts.removed.push(a);
        this.#o.bus.emit({ type: 'artifact_removed', ...ev, ok: true });
      } catch (err) {
        const error = signal.aborted ? messageOf(signal.reason) : messageOf(err);
        this.#artifacts.left.push({ a, error });
        this.#o.bus.emit({ type: 'artifact_removed', ...ev, ok: false, error });
        ok = false;
      }
    }
    return ok;
  }

  /** Whether the step, with these params, has an undo to push once it succeeds (as its plan says). */
  #declaresUndo(def: AnyStep, n: StepNode, host: string, params: Record<string, unknown>): boolean {
    if (!def.undo || n.common.undo === 'never') return false;
    try {
      return def.plan(this.#pass.planContext(host), params).undo !== undefined;
    } catch {
      return false;
    }
  }

  #pushUndo(
    def: AnyStep,
    n: StepNode,
    host: string,
    params: Record<string, unknown>,
    outputs: unknown,
    keptWhy?: string,
  ): void {
    if (!isMutating(def, params)) return;
    const pctx = this.#pass.planContext(host);
    // What the undo will really do depends on what apply found (e.g. a file that existed).
    const planned = def.undoPlan ? def.undoPlan(pctx, params, outputs) : def.plan(pctx, params).undo;
    if (keptWhy !== undefined) {
      this.#undo.kept.push({
        address: n.address,
        title: n.title,
        host,
        type: n.type,
        params,
        outputs,
        why: keptWhy,
      });
      this.#o.bus.emit({
        type: 'undo_kept',
        address: n.address,
        title: n.title,
        host,
        action: planned?.action ?? 'none',
        why: keptWhy,
        by: n.address,
      });
      return;
    }
    if (!def.undo || !planned || n.common.undo === 'never') {
      // Clean-up and rescue steps are the remedy, not changes to report.
      if (/\.(always|rescue)\./.test(n.address)) return;
      const why = n.common.undo === 'never' ? 'undo: never' : 'no undo declared';
      this.#undo.permanent.push({ address: n.address, title: n.title, host, why });
      return;
    }
    this.#undo.push({
      address: n.address,
      title: n.title,
      host,
      type: n.type,
      params,
      outputs,
      action: planned.action,
      ops: planned.ops,
    });
    this.#o.bus.emit({
      type: 'undo_pushed',
      address: n.address,
      title: n.title,
      host,
      action: planned.action,
    });
  }

  /** ctx.keep: earlier changes on `host` that `values` name leave the undo stack, journaled. */
  #keep(host: string, by: string, values: unknown[], why: string): void {
    for (const e of this.#undo.takeFor(host, values)) {
      this.#undo.kept.push({ ...e, why });
      this.#o.bus.emit({
        type: 'undo_kept',
        address: e.address,
        title: e.title,
        host,
        action: e.action,
        why,
        by,
      });
    }
  }

  #context(
    host: string,
    n: StepNode,
    signal: AbortSignal,
    onChanging: () => void = () => {},
    onArtifact: (a: Artifact) => void = () => {},
    onKeep: (values: unknown[], why: string) => void = () => {},
  ): ApplyContext & { flushOutput(): void } {
    const sc = this.#pass.hostScope(host);
    const { bus, connections, prompter } = this.#o;
    const h = sc.host;
    // Output is redacted line by line: a secret split across two chunks must not slip through.
    const pending: Record<'stdout' | 'stderr', string> = { stdout: '', stderr: '' };
    const emit = (stream: 'stdout' | 'stderr', text: string) =>
      bus.emit({ type: 'step_output', address: n.address, host, stream, text: redact(text) });
    return {
      flushOutput: () => {
        for (const stream of ['stdout', 'stderr'] as const) {
          if (pending[stream]) emit(stream, pending[stream]);
          pending[stream] = '';
        }
      },
      host: h,
      facts: {},
      unknown: new Set(),
      signal,
      evaluate: (e) => this.#pass.evaluate(e, host),
      peer: (name) => this.#o.inputs.inventory.hosts.get(name),
      transport: () => connections.transport(h),
      pg: () => connections.pg(h),
      sessions: {
        open: async (name, lostMessage, setup) =>
          (await connections.openPinned(h, name, lostMessage, setup)).session,
        get: (name) => connections.pinned(host, name)?.session,
        release: (name) => connections.releasePinned(host, name),
      },
      guards: {
        start: async (name, line, settings, lostMessage, opts) => {
          await connections.startGuard(h, name, line, settings, lostMessage, {
            readyMs: GUARD_READY_MS,
            beatMs: GUARD_BEAT_MS,
            pastPointOfNoReturn: opts?.pastPointOfNoReturn ?? false,
          });
        },
        tell: (name, word) => connections.tellGuard(name, word),
        end: (name, word) => connections.endGuard(name, word, GUARD_END_MS),
        has: (name) => connections.guard(name) !== undefined,
      },
      log: (text) =>
        bus.emit({ type: 'step_output', address: n.address, host, stream: 'log', text: redact(text) }),
      output: (stream, text) => {
        const all = pending[stream] + text;
        const cut = all.lastIndexOf('\n');
        if (cut < 0) {
          pending[stream] = all;
          return;
        }
        pending[stream] = all.slice(cut + 1);
        emit(stream, all.slice(0, cut + 1));
      },
      prompt: (q) =>
        this.#o.yes && !prompter.interactive ? Promise.resolve('') : prompter.ask(`${q} `, signal),
      changing: onChanging,
      artifact: onArtifact,
      keep: onKeep,
    };
  }

  /**
   * A failed run's lines for the changes a later step completed and kept: what they are, then
   * what each step that can say reads on its host now (a backup's manifest status, and how to
   * delete it).
   */
  async #keptLines(): Promise<string[]> {
    const kept = this.#undo.kept;
    if (!kept.length) return [];
    const lines = [
      'Kept, not undone (a later step completed them, so what failed after it does not take them back):',
      ...kept.map((k) => `  - ${k.host}: "${k.title}" (${k.address}): ${k.why}`),
    ];
    for (const k of kept) {
      const def = this.#def(k);
      if (!def.kept) continue;
      const signal = AbortSignal.any([this.#cleanup.signal, AbortSignal.timeout(KEPT_READ_MS)]);
      const node = { address: k.address, title: k.title, type: k.type } as StepNode;
      try {
        const uctx = this.#context(k.host, node, signal);
        lines.push(`  ${k.host}: ${await abortable(def.kept(uctx, k.params, k.outputs), signal)}`);
      } catch (err) {
        const error = signal.aborted ? messageOf(signal.reason) : messageOf(err);
        lines.push(`  ${k.host}: what "${k.title}" kept could not be read back: ${error}`);
      }
    }
    return lines;
  }

  #commands(): RunCommands {
    const { inputs, run } = this.#o;
    return (
      this.#o.commands ??
      runCommands({
        runId: run.id,
        playbook: inputs.playbook.file,
        inventory: run.inventory ?? inputs.inventory.doc.file,
        extraVars: inputs.extraVars ?? {},
        limit: inputs.limit,
      })
    );
  }

  /** Unwinds the undo stack when the run failed, then reports the state the hosts are in. */
  async #finish(): Promise<RunOutcome> {
    const { bus } = this.#o;
    const failed = this.#fatal || this.interrupted;
    let status: RunStatus = this.interrupted ? 'interrupted' : failed ? 'failed' : 'ok';
    const summary: string[] = [];
    if (failed) {
      if (this.#firstError) summary.push(`Failure: ${this.#firstError}`);
      bus.emit({ type: 'unwind_started', entries: this.#undo.size });
      const undone: string[] = [];
      const remedy: UndoEntry[] = [];
      const brokenHosts = new Set<string>();
      for (let e = this.#undo.pop(); e; e = this.#undo.pop()) {
        // After an undo failed on a host, its older changes may depend on the failed one: they are
        // left for the operator. Other hosts go on unwinding.
        if (brokenHosts.has(e.host)) {
          remedy.push(e);
          continue;
        }
        const started = Date.now();
        bus.emit({
          type: 'undo_started',
          address: e.address,
          title: e.title,
          host: e.host,
          action: e.action,
        });
        const def = this.#def(e);
        const node = { address: e.address, title: e.title, type: e.type } as StepNode;
        // A fresh signal: compensation runs to the end after Ctrl-C, within a time limit, unless
        // the operator gives up on it with a second signal.
        const signal = AbortSignal.any([this.#cleanup.signal, AbortSignal.timeout(UNDO_TIMEOUT_MS)]);
        try {
          const uctx = this.#context(e.host, node, signal);
          await abortable(def.undo!(uctx, e.params, e.outputs), signal).finally(() => uctx.flushOutput());
          bus.emit({
            type: 'undo_finished',
            address: e.address,
            title: e.title,
            host: e.host,
            ok: true,
            durationMs: Date.now() - started,
          });
          undone.push(`${e.host}: ${e.title} (${e.action})`);
        } catch (err) {
          const error = signal.aborted ? messageOf(signal.reason) : messageOf(err);
          bus.emit({
            type: 'undo_finished',
            address: e.address,
            title: e.title,
            host: e.host,
            ok: false,
            error,
            durationMs: Date.now() - started,
          });
          status = 'compensation_failed';
          summary.push(
            `COMPENSATION FAILED on ${e.host}: undo of "${e.title}" (${e.action}) failed: ${error}`,
          );
          brokenHosts.add(e.host);
          remedy.push(e);
        }
      }
      if (undone.length) summary.push(`Undone, most recent first: ${undone.join('; ')}.`);
      else if (remedy.length === 0) summary.push('Nothing needed undoing.');
      if (remedy.length) {
        summary.push('Manual remedy, most recent first — these changes are still in place:');
        for (const r of remedy) {
          summary.push(`  - ${r.host}: "${r.title}" (${r.address}) — to undo: ${r.action}`);
          for (const op of r.ops)
            if (op.kind === 'command') summary.push(`      $ ${op.line}`);
            else if (op.kind === 'sql') summary.push(`      SQL: ${op.sql}`);
            else if (op.kind === 'note') summary.push(`      ${op.text}`);
        }
      }
      if (this.#unknown.length) {
        summary.push(
          `State unknown — these steps failed or were stopped while changing things; check them by hand: ${this.#unknown.map((u) => `${u.host}: "${u.title}" (${u.address}): ${u.error}`).join('; ')}.`,
        );
      }
    }
    if (failed) summary.push(...(await this.#keptLines()));
    const { removed, left } = this.#artifacts;
    if (removed.length)
      summary.push(
        `Partial artifacts removed (made by steps that did not succeed): ${removed.map(describeArtifact).join('; ')}.`,
      );
    if (left.length) {
      summary.push('Partial artifacts left in place — remove them by hand:');
      for (const { a, error } of left) {
        summary.push(`  - ${describeArtifact(a)}: ${error}`);
        summary.push(`      $ ${a.remove.split('\n').join('; ')}`);
      }
    }
    if (failed && this.#ponr)
      for (const name of this.#stoodDown)
        summary.push(
          `${name}: left PAUSED — its guard stood down at the point of no return; the recovery below lifts it (a member started by hand stays paused and does nothing on its own).`,
        );
    if (failed && this.#ponr) {
      summary.push(
        `The run had passed its point of no return ("${this.#ponr.title}"): steps before it were not undone.${this.#ponr.recovery ? ` Recover with ${this.#ponr.recovery}.` : ''}`,
      );
    }
    if (failed && this.#undo.permanent.length) {
      summary.push(
        `Changes that remain (no automatic undo): ${this.#undo.permanent.map((p) => `${p.host}: "${p.title}" (${p.why})`).join('; ')}.`,
      );
    }
    // A guard still held means what it watches over is still in place (a playbook that paused
    // and never resumed, an undo that failed): it does now what it would do had the run died,
    // and the summary says what it found. A cluster left paused is a failure of the run.
    for (const g of this.#o.connections.heldGuards()) {
      const said = await this.#o.connections.endGuard(g.name, 'finish', GUARD_END_MS);
      if (said?.startsWith('ok:') || said?.startsWith('left:')) {
        summary.push(`${g.host}: ${g.name}: ${said.replace(/^\w+: /, '')}.`);
        continue;
      }
      summary.push(
        said === undefined
          ? `${g.host}: ${g.name}: STILL IN PLACE — its guard did not finish within ${GUARD_END_MS / 1000}s and goes on trying by itself on ${g.host} (journalctl -t pgrunbook-guard there).`
          : `${g.host}: ${g.name}: STILL IN PLACE — ${said.replace(/^\w+: /, '')}.`,
      );
      status = status === 'ok' ? 'failed' : status === 'failed' ? 'compensation_failed' : status;
    }
    if (status === 'ok') summary.unshift('All steps succeeded.');
    // Last, in every output: the one command that is the operator's next move (next-command.ts).
    const next = nextCommand(
      {
        status,
        recovery: this.#ponr?.recovery,
        // An earlier attempt's completed steps stand too: a resumed run that fails resumes again.
        remaining: this.#undo.permanent.length + (this.#o.done?.size ?? 0),
        unknown: this.#unknown.length,
        leftovers: left.length,
      },
      this.#commands(),
    );
    if (next) summary.push(next.line);
    const exitCode = EXIT[status];
    bus.emit({ type: 'run_finished', status, exitCode, summary, ...(next && { next: next.command }) });
    await this.#o.connections.closeAll();
    return { status, exitCode };
  }
}

/** How long a guard may take to say it is ready. */
const GUARD_READY_MS = 15_000;
/** How often the runner tells its guards it is alive. */
const GUARD_BEAT_MS = 2000;
/** How long the run waits for a guard's last word before leaving it to go on by itself. */
const GUARD_END_MS = 30_000;

/** How long reading back what a kept change is may take (a manifest over the host's transport). */
const KEPT_READ_MS = 30_000;
/** How long an undo may take before it counts as failed (and goes to the manual remedy). */
const UNDO_TIMEOUT_MS = 10 * 60_000;
/** After an abort, how long a step gets to stop its work before the run moves on. */
const ABORT_GRACE_MS = 5_000;

/**
 * Rejects once `signal` aborts and `p` has settled, or ABORT_GRACE_MS later at most: the run
 * must not go on to clean-up while the aborted work is still changing things, nor wait forever.
 */
function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      const timer = setTimeout(() => reject(signal.reason), ABORT_GRACE_MS);
      p.finally(() => {
        clearTimeout(timer);
        reject(signal.reason);
      }).catch(() => {});
    };
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

/** `hosts` kept in order where `allowed` has them. */
function intersect(hosts: readonly string[], allowed: readonly string[]): string[] {
  const set = new Set(allowed);
  return hosts.filter((h) => set.has(h));
}

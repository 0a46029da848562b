// Live progress on a terminal: a listr2 task tree of plays, batches and steps, fed by run events.
import { Listr, type ListrTask } from 'listr2';
import { type Plan, playSteps } from '../engine/model.js';
import type { RunEvent, StepStatus, Subscriber } from '../runner/events.js';
import { redact, redactValue } from '../util/secret.js';

interface Slot {
  key: string;
  title: string;
  statuses: Map<string, StepStatus | 'running'>;
  errors: string[];
  lastOutput: string;
  started: boolean;
  settle?: () => void;
  settled: boolean;
  update?: () => void;
}

/**
 * The step tree comes from the plan; hosts and batches from the runner's `play_started` events
 * (a later play on a dynamic group may run on other hosts than planned). Steps run in a fixed
 * order within a batch, so when one starts, every earlier step that never started was not
 * reached (skipped, or a rescue that was not needed).
 */
export function listrReporter(plan: Plan): { subscriber: Subscriber; done: Promise<void> } {
  const order: Slot[] = [];
  const byKey = new Map<string, Slot>();
  let play = -1;
  let batch = 0;
  /** Per play: the steps in order, from the plan. */
  const stepsOf = new Map<number, { address: string; title: string }[]>();
  for (const p of plan.plays) {
    // Rescue and always steps carry their section in the title: `rescue › …`, `always › …`.
    const titled = [...playSteps(p)].map(({ step, sections }) => ({
      address: step.address,
      title: `${sections
        .filter((x) => x !== 'block')
        .map((x) => `${x} › `)
        .join('')}${step.title}`,
    }));
    stepsOf.set(p.index, titled);
  }
  /**
   * Per play: resolves with its batches' slots when it starts (made at once, in the subscriber,
   * so no event of theirs can come before them), or undefined when the run ends first.
   */
  type Batches = { hosts: string[]; slots: Slot[] }[];
  const started = new Map<
    number,
    { promise: Promise<Batches | undefined>; resolve: (b?: Batches) => void }
  >();
  for (const p of plan.plays) {
    let resolve!: (b?: Batches) => void;
    const promise = new Promise<Batches | undefined>((r) => {
      resolve = r;
    });
    started.set(p.index, { promise, resolve });
  }
  const makeBatches = (playIndex: number, batches: string[][]): Batches =>
    batches.map((hosts, b) => ({
      hosts,
      slots: (stepsOf.get(playIndex) ?? []).map((s) => {
        const slot: Slot = {
          key: `${playIndex}:${b}:${s.address}`,
          title: s.title,
          statuses: new Map(),
          errors: [],
          lastOutput: '',
          started: false,
          settled: false,
        };
        order.push(slot);
        byKey.set(slot.key, slot);
        return slot;
      }),
    }));
  const playTasks: ListrTask[] = plan.plays.map((p) => ({
    title: `PLAY ${p.name}`,
    task: async (_ctx, task) => {
      const batches = await started.get(p.index)!.promise;
      if (!batches) return task.skip(`PLAY ${p.name} (not reached)`);
      return task.newListr(
        batches.map(({ hosts, slots }, b) => ({
          title:
            batches.length > 1 ? `batch ${b + 1}: ${hosts.join(', ')}` : hosts.join(', ') || '(no hosts)',
          task: (_c, t) => t.newListr(slots.map(stepTask), { concurrent: false, exitOnError: false }),
        })),
        { concurrent: false, exitOnError: false },
      );
    },
  }));
  const stepTask = (slot: Slot): ListrTask => ({
    title: slot.title,
    task: async (_c, t) => {
      slot.update = () => {
        const hs = [...slot.statuses].map(([h, st]) => `${h}:${st}`).join(' ');
        t.output = slot.lastOutput ? `${hs}  │ ${slot.lastOutput}` : hs;
      };
      await new Promise<void>((resolve) => {
        slot.settle = resolve;
        if (slot.settled) resolve();
      });
      // Later events for this address (its undo) must not touch a finished task.
      slot.update = undefined;
      const sts = [...slot.statuses.values()];
      if (!slot.started) return t.skip(`${slot.title} (not reached)`);
      if (sts.some((x) => x === 'failed'))
        throw new Error(`${slot.title}: ${redact(slot.errors.join('; '))}`);
      if (sts.length > 0 && sts.every((x) => x === 'skipped'))
        return t.skip(`${slot.title} (when was false)`);
      const done = sts.filter((x) => x === 'already_done').length;
      if (done) t.title = `${slot.title} (already done on ${done} host${done === 1 ? '' : 's'})`;
    },
  });
  const listr = new Listr(playTasks, {
    concurrent: false,
    exitOnError: false,
    // Signals belong to the runner: it must run clean-up and undo, not exit (listr2 would exit 127).
    registerSignalListeners: false,
    rendererOptions: { collapseSubtasks: false, showErrorMessage: true },
  });
  const settleUpTo = (slot: Slot | undefined) => {
    for (const s of order) {
      if (s === slot) break;
      s.settled = true;
      s.settle?.();
    }
  };
  const subscriber: Subscriber = (raw: RunEvent) => {
    const e = redactValue(raw) as RunEvent;
    if (e.type === 'play_started') {
      play = e.play;
      started.get(e.play)?.resolve(makeBatches(e.play, e.batches ?? [e.hosts]));
    }
    if (e.type === 'batch_started') batch = e.batch;
    if (e.type === 'step_started' || e.type === 'step_finished' || e.type === 'step_output') {
      const slot = byKey.get(`${play}:${batch}:${e.address}`);
      if (!slot) return;
      if (!slot.started) {
        slot.started = true;
        settleUpTo(slot);
      }
      if (e.type === 'step_finished') {
        slot.statuses.set(e.host, e.status);
        if (e.error) slot.errors.push(`${e.host}: ${e.error}`);
      } else if (e.type === 'step_output') {
        const line = e.text.trim().split('\n').at(-1);
        if (line) slot.lastOutput = `${e.host}: ${line}`.slice(0, 120);
      } else slot.statuses.set(e.host, 'running');
      slot.update?.();
    }
    if (e.type === 'run_finished' || e.type === 'unwind_started') {
      settleUpTo(undefined);
      for (const s of started.values()) s.resolve(undefined);
    }
  };
  const done = listr.run().then(() => undefined);
  return { subscriber, done };
}

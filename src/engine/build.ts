// Builds the plan: a playbook × inventory, per play, per step, per host, every value that can be
// known before apply resolved. `validate -i`, `plan` and `run` all start here; a run starts only
// when the plan has no problem.
import type { PgFacts } from '../connections/pg.js';
import type { Problem } from '../errors.js';
import { describePatroniGroups } from '../inventory/dynamic-groups.js';
import { matchHosts } from '../inventory/patterns.js';
import type { PathSeg } from '../playbook/load.js';
import type { Node, Play } from '../playbook/model.js';
import { rawTemplates } from '../playbook/shell-template.js';
import { confirmOf, pointOfNoReturnOf, requiresLeaderOn } from './gates.js';
import { batchesOf, narrowHosts, playHosts, usesDynamicGroups } from './hosts.js';
import type {
  HostStepPlan,
  NeedRequest,
  Plan,
  PlanNode,
  PlannedPlay,
  PlanStep,
  PreviewRequest,
} from './model.js';
import { checkableNeeds } from './needs.js';
import { type EngineInputs, Pass } from './pass.js';
import type { RunInfo } from './scope.js';

/** Options of a plan. */
export interface PlanOptions {
  /** Facts per host from `--check`. */
  facts?: Record<string, { pg?: PgFacts }>;
  /** `--check`: collects the previews of steps that offer one, for the caller to run. */
  previews?: PreviewRequest[];
  /** `--check` and run: collects what each step needs on its host, for the preflight. */
  needs?: NeedRequest[];
}

/** What a plan shows for `run`: values only a run has. */
export const PLAN_RUN: RunInfo = {
  id: '(known after apply)',
  started_at: '(known after apply)',
  check: true,
};

/**
 * How much work one plan may be. Each file is bounded on its own (MAX_VALUES, MAX_FILE_BYTES),
 * but a plan is steps × hosts, and each step renders its templates on each host: 1,000 steps on
 * 1,000 hosts, or one 300 KB template on 2,000 hosts, would take minutes and gigabytes. A step
 * (or block, or the play's vars) on a host costs PLAN_RUN_COST, plus one per value it holds,
 * plus the characters of the templates it renders there. The limit allows some 50,000 runs of
 * small steps (1,000 hosts × 50 steps), or 20,000 of steps with 100 characters of templates,
 * and keeps a plan within about a second (scripts/big-input.ts measures it).
 */
export const MAX_PLAN_COST = 3_000_000;
/** The cost of one step, block or play's vars on one host, besides its templates. */
export const PLAN_RUN_COST = 50;

/** The plan passed MAX_PLAN_COST: building it stops where it did. */
class PlanTooLarge extends Error {
  constructor(readonly problem: Problem) {
    super(problem.message);
  }
}

/** Counts the cost of a plan as it is built, and stops it at MAX_PLAN_COST. */
class Budget {
  #spent = 0;
  readonly #chars = new WeakMap<object, number>();

  constructor(private readonly playbook: EngineInputs['playbook']) {}

  /** Charges `hosts` runs of `what` (a node or a play's vars), located at `path` when over. */
  charge(what: object, hosts: number, path: readonly PathSeg[]): void {
    let chars = this.#chars.get(what);
    if (chars === undefined) {
      chars = templateChars(what);
      this.#chars.set(what, chars);
    }
    this.#spent += hosts * (PLAN_RUN_COST + chars);
    if (this.#spent > MAX_PLAN_COST)
      throw new PlanTooLarge(
        this.playbook.doc.problem(
          path,
          `the plan grows past its limit here (${MAX_PLAN_COST} units: ${PLAN_RUN_COST} for each step on each host, plus the characters of the templates it renders there); narrow the hosts of the plays or split the playbook`,
        ),
      );
  }
}

/** One per value, plus the characters of its templates (strings with `{{`, and `when` expressions). */
function templateChars(value: unknown): number {
  let n = 0;
  const walkValue = (v: unknown, key?: string): void => {
    if (typeof v === 'string') {
      n += 1;
      if (key === 'when' || key === 'until' || v.includes('{{')) n += v.length;
    } else if (Array.isArray(v)) for (const x of v) walkValue(x);
    else if (v && typeof v === 'object')
      for (const [k, x] of Object.entries(v)) {
        // A block's child lists are charged when their own steps are.
        if (k === 'block' || k === 'rescue' || k === 'always' || k === 'path') continue;
        walkValue(x, k);
      }
    else n += 1;
  };
  walkValue(value);
  return n;
}

/** Builds the plan; no connection is made (facts come in through options). */
export function buildPlan(inputs: EngineInputs, opts: PlanOptions = {}): Plan {
  const { playbook, inventory, limit } = inputs;
  const facts = opts.facts ?? {};
  // As the operator wrote it: the plan shows the command they would type (a run names the absolute path).
  const pass = new Pass(inputs, { ...PLAN_RUN, inventory: inventory.file }, 'plan');
  const problems: Problem[] = [];
  const budget = new Budget(playbook);
  let plays: PlannedPlay[];
  try {
    plays = playbook.plays.map((play) =>
      planPlay(pass, play, facts, problems, budget, opts.previews, opts.needs),
    );
  } catch (err) {
    if (!(err instanceof PlanTooLarge)) throw err;
    // Nothing of a plan that size is shown: the one problem says where it got too large.
    plays = [];
    problems.splice(0, problems.length, err.problem);
    opts.previews?.splice(0);
    opts.needs?.splice(0);
  }
  let dynamicGroups: Plan['dynamicGroups'];
  if (usesDynamicGroups(playbook.plays, limit)) {
    const candidates = [...inventory.hosts.values()].filter((h) => h.patroni).map((h) => h.name);
    dynamicGroups = inventory.dynamic
      ? { resolved: true, lines: describePatroniGroups(inventory.dynamic), groups: inventory.dynamic.groups }
      : {
          resolved: false,
          lines: [
            `patroni_leader and patroni_replicas are resolved from the Patroni REST API at run start; until then every host with patroni settings stands in (${candidates.join(', ') || 'none'}). plan --check asks Patroni now.`,
          ],
        };
  }
  return {
    playbook: playbook.file,
    inventory: inventory.file,
    checked: opts.facts !== undefined,
    limit,
    facts,
    plays,
    problems: dedupe(problems),
    dynamicGroups,
  };
}

function planPlay(
  pass: Pass,
  play: Play,
  facts: Record<string, { pg?: PgFacts }>,
  problems: Problem[],
  budget: Budget,
  previews?: PreviewRequest[],
  needs?: NeedRequest[],
): PlannedPlay {
  const { inventory, limit, playbook } = pass.inputs;
  const hosts = playHosts(play, inventory, limit);
  budget.charge(play.vars, hosts.length, play.path);
  problems.push(...pass.enterPlay(play, hosts));
  const dynamic = usesDynamicGroups([play], limit);
  // A play resolved to nothing did nothing: with --limit that is the operator's narrowing, but a
  // pattern of the playbook that matches no host of the inventory is a mistake.
  if (hosts.length === 0 && !limit && !dynamic && matchHosts(inventory, play.hosts).unmatched.length === 0) {
    // (terms that match nothing are the validator's to report; here every term matched)
    problems.push(
      playbook.doc.problem([...play.path, 'hosts'], `"${play.hosts}" matches no host of ${inventory.file}`),
    );
  }
  const list = (nodes: Node[], hs: string[]): PlanNode[] => nodes.map((n) => planNode(n, hs));
  const planNode = (n: Node, hs: string[]): PlanNode => {
    if (n.kind === 'block') {
      const targets = narrowHosts(inventory, hs, n.hosts);
      budget.charge(n, targets.length, n.path);
      const { active, skipped, problems: whenProblems } = pass.blockHosts(n, targets);
      problems.push(...whenProblems);
      return {
        kind: 'block',
        address: n.address,
        title: pass.agreedText(n.title, targets),
        hosts: targets,
        when: n.when,
        skippedHosts: skipped.length ? skipped : undefined,
        block: list(n.block, active),
        rescue: list(n.rescue, active),
        always: list(n.always, active),
      };
    }
    const def = pass.inputs.steps.get(n.type)!;
    const targets = narrowHosts(inventory, hs, n.common.hosts);
    budget.charge(n, targets.length, n.path);
    const stepNeeds: NeedRequest[] = [];
    const perHost = targets.map((h): HostStepPlan => {
      const inst = pass.resolve(n, h);
      if (inst.status === 'skipped') {
        pass.record(n, h, { kind: 'skipped' });
        return { host: h, status: 'skipped', when: inst.when };
      }
      if (inst.status === 'error') {
        problems.push(inst.problem);
        return { host: h, status: 'error', error: inst.error };
      }
      const when = typeof n.common.when === 'string' ? n.common.when : undefined;
      const ctx = pass.planContext(h, inst.unknownParams, facts[h] ?? {});
      let plan: ReturnType<Pass['stepPlan']>;
      try {
        plan = pass.stepPlan(n, def, ctx, inst.params);
      } catch (err) {
        // Values only a run knows stand in as text: a step cannot always describe its operations
        // before them (a list of replicas that Patroni names at run start). That is not an error.
        if (inst.unknownParams.size > 0) {
          const unknown = [...inst.unknownParams].join(', ');
          pass.record(n, h, { kind: 'ok', outputs: undefined }, inst.params, inst.unknownParams);
          return {
            host: h,
            status: inst.status,
            when,
            mutating: inst.mutating,
            unknownParams: [...inst.unknownParams],
            plan: { action: `${n.type}: its operations depend on ${unknown}, known after apply`, ops: [] },
            unchecked:
              needs && def.needs
                ? [`what ${n.type} needs on the host: ${unknown} known only after apply`]
                : undefined,
          };
        }
        // plan() refused the values (a step's own check): located at the step.
        const error = `${n.type}: ${(err as Error).message}`;
        problems.push(playbook.doc.problem([...n.path, n.type], `on host ${h}: ${error}`));
        return { host: h, status: 'error', error };
      }
      pass.record(n, h, { kind: 'ok', outputs: undefined }, inst.params, inst.unknownParams);
      const hp: HostStepPlan = { host: h, status: inst.status, when, plan, mutating: inst.mutating };
      if (inst.unknownParams.size > 0) hp.unknownParams = [...inst.unknownParams];
      if (needs && def.needs && !plan.noop) {
        if (inst.status === 'conditional')
          hp.unchecked = [`what ${n.type} needs on the host: runs only if \`when\` holds, known after apply`];
        else {
          const r = checkableNeeds(def, ctx, inst.params, inst.unknownParams);
          if (r.unchecked.length) hp.unchecked = r.unchecked;
          if (r.needs)
            stepNeeds.push({
              host: h,
              title: n.type,
              needs: r.needs,
              problem: (message) => playbook.doc.problem([...n.path, n.type], message, { key: true }),
            });
        }
      }
      if (previews && def.preview && !plan.noop) {
        if (inst.unknownParams.size > 0)
          hp.preview = {
            error: `not previewed: ${[...inst.unknownParams].join(', ')} known only after apply`,
          };
        else previews.push({ host: h, target: hp, run: (c) => def.preview!({ ...ctx, ...c }, inst.params) });
      }
      return hp;
    });
    const title = pass.agreedText(n.title, targets);
    for (const r of stepNeeds) r.title = title;
    needs?.push(...stepNeeds);
    const gate = confirmOf(def, n.common, n.params);
    const step: PlanStep = {
      kind: 'step',
      address: n.address,
      title,
      type: n.type,
      mutating: perHost.some((h) => h.mutating),
      undoMode: n.common.undo ?? 'auto',
      confirm: gate === true ? `Proceed with "${title}"?` : gate ? pass.agreedText(gate, targets) : undefined,
      retries: n.common.retries,
      timeout: n.common.timeout,
      ignoreErrors: n.common.ignore_errors === true,
      requiresLeader: targets.some((h) => requiresLeaderOn(n.common, inventory.hosts.get(h)!)) || undefined,
      downtime: n.common.downtime === true ? true : undefined,
      pointOfNoReturn: ((x) => (typeof x === 'string' ? pass.agreedText(x, targets) : x))(
        pointOfNoReturnOf(n.common),
      ),
      recovery:
        typeof n.common.recovery === 'string' ? pass.agreedText(n.common.recovery, targets) : undefined,
      rawShell: rawShellOf(def.shellParams ?? [], n.params),
      hosts: perHost,
    };
    return step;
  };
  return {
    index: play.index,
    name: play.name,
    pattern: play.hosts,
    hosts,
    batches: batchesOf(hosts, play.serial),
    dynamic,
    steps: list(play.steps, hosts),
    rescue: list(play.rescue, hosts),
    always: list(play.always, hosts),
  };
}

/** `param: {{ … | raw }}` for each `| raw` template of a step's shell scripts (argv lists refuse them). */
function rawShellOf(shellParams: readonly string[], params: unknown): string[] | undefined {
  const p = (params ?? {}) as Record<string, unknown>;
  const out = shellParams.flatMap((k) => {
    const v = p[k];
    return typeof v === 'string' ? rawTemplates(v).map((t) => `${k}: ${t}`) : [];
  });
  return out.length ? out : undefined;
}

/** One problem per place and message: the same mistake on ten hosts is one line naming them. */
function dedupe(problems: Problem[]): Problem[] {
  const byKey = new Map<string, { p: Problem; hosts: string[] }>();
  const out: Problem[] = [];
  for (const p of problems) {
    const m = /^on host (\S+): (.*)$/s.exec(p.message);
    if (!m) {
      out.push(p);
      continue;
    }
    const key = `${p.line}:${p.col}:${m[2]}`;
    const seen = byKey.get(key);
    if (seen) seen.hosts.push(m[1]!);
    else {
      const entry = { p: { ...p }, hosts: [m[1]!] };
      byKey.set(key, entry);
      out.push(entry.p);
    }
  }
  for (const { p, hosts } of byKey.values()) {
    const m = /^on host \S+: (.*)$/s.exec(p.message)!;
    p.message = `${m[1]} (on ${hosts.length === 1 ? 'host' : 'hosts'} ${hosts.join(', ')})`;
  }
  return out.sort((a, b) => a.line - b.line || a.col - b.col);
}

// Expands a playbook × inventory into a Plan value: per play, per step, per host, what will happen.
import type { PgFacts } from '../connections/pg.js';
import type { Inventory } from '../inventory/inventory.js';
import { describePatroniGroups, usesDynamicGroups } from '../inventory/patroni-groups.js';
import { matchHosts } from '../inventory/patterns.js';
import { evaluate, renderText, truthy, Unknown } from '../playbook/expressions.js';
import { type Node, type Play, type Playbook, walk } from '../playbook/model.js';
import { groupsOf, HostScope, type RunInfo } from '../runner/scope.js';
import {
  confirmOf,
  isMutating,
  type PreviewContext,
  type StepPlan,
  type StepPreview,
} from '../steps/define.js';
import { registry } from '../steps/registry.js';
import { renderParams } from './render-params.js';

/** One step on one host, as planned. */
export interface HostStepPlan {
  host: string;
  /** runs: will run; skipped: `when` is false; conditional: `when` needs run-time values; error: cannot be planned */
  status: 'runs' | 'skipped' | 'conditional' | 'error';
  when?: string;
  /** the step changes something on this host (its undo matters) */
  mutating?: boolean;
  plan?: StepPlan;
  error?: string;
  /** `plan --check`: what the host says apply would change (e.g. chef-client --why-run) */
  preview?: StepPreview | { error: string };
}

/** A read-only preview `plan --check` runs once the plan is built (see src/plan/previews.ts). */
export interface PreviewRequest {
  host: string;
  target: HostStepPlan;
  run(ctx: Pick<PreviewContext, 'transport' | 'signal'>): Promise<StepPreview>;
}

/** A planned step or block. */
export type PlanNode =
  | {
      kind: 'step';
      address: string;
      title: string;
      type: string;
      mutating: boolean;
      undoMode: 'auto' | 'never';
      confirm?: string;
      retries?: number;
      timeout?: number;
      ignoreErrors: boolean;
      /** requires_leader: Patroni is asked just before the step that the host still leads */
      requiresLeader?: boolean;
      /** downtime: true — runs while writes are stopped */
      downtime?: boolean;
      /** point_of_no_return: true, or the recovery it names */
      pointOfNoReturn?: true | string;
      /** recovery: the way back once this step has succeeded */
      recovery?: string;
      hosts: HostStepPlan[];
    }
  | {
      kind: 'block';
      address: string;
      title: string;
      block: PlanNode[];
      rescue: PlanNode[];
      always: PlanNode[];
    };

/** A planned play. */
export interface PlannedPlay {
  name: string;
  pattern: string;
  hosts: string[];
  batches: string[][];
  steps: PlanNode[];
  rescue: PlanNode[];
  always: PlanNode[];
}

/** The whole dry run: data that renderers turn into text, JSON or Markdown. */
export interface Plan {
  playbook: string;
  inventory: string;
  checked: boolean;
  /** --limit, when given */
  limit?: string;
  facts: Record<string, { pg?: PgFacts }>;
  plays: PlannedPlay[];
  problems: string[];
  /** patroni_leader / patroni_replicas: as Patroni described them (`--check`), or still open */
  dynamicGroups?: { resolved: boolean; lines: string[]; groups?: Record<string, string[]> };
}

/** Options of a plan. */
export interface PlanOptions {
  limit?: string;
  extraVars?: Record<string, unknown>;
  /** Facts per host from `--check`. */
  facts?: Record<string, { pg?: PgFacts }>;
  /** `--check`: collects the previews of steps that offer one, for the caller to run. */
  previews?: PreviewRequest[];
}

/** The hosts a play runs on after --limit, in inventory order. */
export function playHosts(play: Play, inventory: Inventory, limit?: string): string[] {
  let hosts = matchHosts(inventory, play.hosts).hosts;
  if (limit) {
    const allowed = new Set(matchHosts(inventory, limit).hosts);
    hosts = hosts.filter((h) => allowed.has(h));
  }
  return hosts;
}

/** Splits hosts into `serial` batches. */
export function batchesOf(hosts: string[], serial?: number): string[][] {
  if (!serial) return [hosts];
  const out: string[][] = [];
  for (let i = 0; i < hosts.length; i += serial) out.push(hosts.slice(i, i + serial));
  return out;
}

/** Builds the plan; no connection is made (facts come in through options). */
export function buildPlan(playbook: Playbook, inventory: Inventory, opts: PlanOptions = {}): Plan {
  const run: RunInfo = { id: '(known after apply)', started_at: '(known after apply)', check: true };
  const facts = opts.facts ?? {};
  const scopes = new Map<string, HostScope>();
  const world = { scopes, groups: () => groupsOf(inventory) };
  const problems: string[] = [];
  const plays: PlannedPlay[] = [];
  for (const play of playbook.plays) {
    const hosts = playHosts(play, inventory, opts.limit);
    for (const h of hosts) {
      if (!scopes.has(h))
        scopes.set(h, new HostScope(inventory.hosts.get(h)!, run, opts.extraVars ?? {}, world));
      const sc = scopes.get(h)!;
      // Registered outputs exist only after apply: in a plan they are Unknown.
      for (const s of walk([...play.steps, ...play.rescue, ...play.always])) {
        for (const name of [s.common.id, s.common.register])
          if (typeof name === 'string') sc.facts[name] = new Unknown(name);
      }
      try {
        sc.enterPlay(play.vars);
      } catch (err) {
        problems.push(`${h}: play "${play.name}" vars: ${(err as Error).message}`);
      }
    }
    const planList = (nodes: Node[], hs: string[]): PlanNode[] => nodes.map((n) => planNode(n, hs));
    const planNode = (n: Node, hs: string[]): PlanNode => {
      const narrowed = (pattern?: string) =>
        pattern ? hs.filter((h) => matchHosts(inventory, pattern).hosts.includes(h)) : hs;
      if (n.kind === 'block') {
        const bh = narrowed(n.hosts);
        return {
          kind: 'block',
          address: n.address,
          title: n.title,
          block: planList(n.block, bh),
          rescue: planList(n.rescue, bh),
          always: planList(n.always, bh),
        };
      }
      const def = registry.get(n.type)!;
      const perHost = narrowed(n.common.hosts as string | undefined).map((h): HostStepPlan => {
        const sc = scopes.get(h)!;
        const scope = sc.scope();
        let status: HostStepPlan['status'] = 'runs';
        const when = n.common.when as string | undefined;
        try {
          if (when) {
            const v = evaluate(when, scope);
            if (v instanceof Unknown) status = 'conditional';
            else if (!truthy(v)) return { host: h, status: 'skipped', when };
          }
          const r = renderParams(def, n, scope);
          if (!r.ok) return { host: h, status: 'error', error: r.error };
          const ctx = {
            host: sc.host,
            facts: facts[h] ?? {},
            unknown: r.unknownParams,
            evaluate: (e: string) => evaluate(e, scope),
            peer: (name: string) => inventory.hosts.get(name),
          };
          const plan = def.plan(ctx, r.params);
          if (n.common.undo === 'never' && plan.undo)
            plan.undo = { action: 'none: undo: never (the change stays if the run fails)', ops: [] };
          // A fact known only after apply stays a name later steps may use, shown as unknown.
          if (def.setsFacts)
            for (const [k, v] of Object.entries(r.params))
              sc.facts[k] = r.unknownParams.has(k) ? new Unknown(k) : v;
          const hp: HostStepPlan = { host: h, status, when, plan, mutating: isMutating(def, r.params) };
          if (opts.previews && def.preview && !plan.noop) {
            if (r.unknownParams.size > 0)
              hp.preview = {
                error: `not previewed: ${[...r.unknownParams].join(', ')} known only after apply`,
              };
            else
              opts.previews.push({
                host: h,
                target: hp,
                run: (c) => def.preview!({ ...ctx, ...c }, r.params),
              });
          }
          return hp;
        } catch (err) {
          return { host: h, status: 'error', error: (err as Error).message };
        }
      });
      // Names and questions may use templates: show them rendered when every host agrees.
      const shown = (text: string) => {
        const hs = narrowed(n.common.hosts as string | undefined);
        const texts = new Set(hs.map((h) => renderText(text, scopes.get(h)!.scope())));
        return texts.size === 1 ? [...texts][0]! : text;
      };
      const title = shown(n.title);
      return {
        kind: 'step',
        address: n.address,
        title,
        type: n.type,
        mutating: perHost.some((h) => h.mutating),
        undoMode: (n.common.undo as 'auto' | 'never' | undefined) ?? 'auto',
        confirm: ((gate) => (gate === true ? `Proceed with "${title}"?` : gate ? shown(gate) : undefined))(
          confirmOf(def, n.common, n.params),
        ),
        retries: n.common.retries as number | undefined,
        timeout: n.common.timeout as number | undefined,
        ignoreErrors: n.common.ignore_errors === true,
        requiresLeader:
          n.common.requires_leader === true ||
          (n.common.requires_leader === 'if_patroni' &&
            perHost.some((h) => inventory.hosts.get(h.host)?.patroni))
            ? true
            : undefined,
        downtime: n.common.downtime === true ? true : undefined,
        pointOfNoReturn:
          n.common.point_of_no_return === true || typeof n.common.point_of_no_return === 'string'
            ? (n.common.point_of_no_return as true | string)
            : undefined,
        recovery: typeof n.common.recovery === 'string' ? shown(n.common.recovery) : undefined,
        hosts: perHost,
      };
    };
    plays.push({
      name: play.name,
      pattern: play.hosts,
      hosts,
      batches: batchesOf(hosts, play.serial),
      steps: planList(play.steps, hosts),
      rescue: planList(play.rescue, hosts),
      always: planList(play.always, hosts),
    });
  }
  let dynamicGroups: Plan['dynamicGroups'];
  if (usesDynamicGroups(playbook.plays, opts.limit)) {
    const candidates = [...inventory.hosts.values()].filter((h) => h.patroni).map((h) => h.name);
    dynamicGroups = inventory.dynamic
      ? {
          resolved: true,
          lines: describePatroniGroups(inventory.dynamic),
          groups: inventory.dynamic.groups,
        }
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
    limit: opts.limit,
    facts,
    plays,
    problems,
    dynamicGroups,
  };
}

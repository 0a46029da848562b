// One pass over a playbook: the plan's (registered values unknown) or the run's (values as they
// come). Both decide `when`, render parameters and titles with the same code, so the plan a user
// approves and the run are one program.
import type { Problem } from '../errors.js';
import type { Inventory } from '../inventory/inventory.js';
import { evaluate, renderText, type Scope, type Shape, truthy, Unknown } from '../playbook/expressions.js';
import type { PathSeg } from '../playbook/load.js';
import {
  type BlockNode,
  type Node,
  type Play,
  type Playbook,
  playNodes,
  type StepNode,
  walk,
  walkNodes,
} from '../playbook/model.js';
import type { AnyStep, PlanContext, StepPlan } from '../steps/define.js';
import { isMutating } from '../steps/define.js';
import { type RenderFailure, renderParams } from './render.js';
import { GroupsView, HostScope, HostVars, type RunInfo } from './scope.js';

/** Step types by name; handed in by the caller (the CLI passes the registry). */
export type StepTypes = ReadonlyMap<string, AnyStep>;

/** What a playbook means is decided from these. */
export interface EngineInputs {
  playbook: Playbook;
  inventory: Inventory;
  steps: StepTypes;
  extraVars: Record<string, unknown>;
  limit?: string;
}

/** A step on one host, resolved in a pass. */
export type Instance =
  /** `when` is false */
  | { status: 'skipped'; when: string }
  /** a value that was needed could not be rendered, or breaks the step's schema */
  | { status: 'error'; error: string; problem: Problem }
  /** ready: `conditional` when `when` waits for a value only a run knows */
  | {
      status: 'runs' | 'conditional';
      params: Record<string, unknown>;
      /** parameters known only after apply (plan pass only) */
      unknownParams: Set<string>;
      mutating: boolean;
      def: AnyStep;
    };

/** How a step ended on a host, as later templates see it. */
export type Outcome =
  | { kind: 'ok'; outputs: unknown }
  | { kind: 'skipped' }
  | { kind: 'ignored'; error: string };

/** Variables per host for one pass, and the decisions taken with them. */
export class Pass {
  readonly scopes = new Map<string, HostScope>();
  readonly #hostvars = new HostVars();
  readonly #groups = new GroupsView(() => this.inputs.inventory);
  readonly #world = { hostvars: this.#hostvars.object, groups: () => this.#groups.get() };
  #nodes: Map<string, Node> | undefined;

  constructor(
    readonly inputs: EngineInputs,
    readonly run: RunInfo,
    readonly mode: 'plan' | 'run',
  ) {}

  /** The playbook's node at `address` (plan nodes carry addresses, not the parsed tree). */
  node(address: string): Node {
    if (!this.#nodes) {
      this.#nodes = new Map();
      for (const play of this.inputs.playbook.plays)
        for (const { node } of walkNodes(playNodes(play))) this.#nodes.set(node.address, node);
    }
    const n = this.#nodes.get(address);
    if (!n) throw new Error(`internal: no step or block at ${address}`);
    return n;
  }

  /** The declared variables' defaults (`variables:`), the lowest layer of every host's scope. */
  #defaults(): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const [k, d] of Object.entries(this.inputs.playbook.variables ?? {}))
      if (d.default !== undefined) out[k] = d.default;
    return out;
  }

  /** The host's scope, created on first use. */
  hostScope(host: string): HostScope {
    let sc = this.scopes.get(host);
    if (!sc) {
      const inv = this.inputs.inventory.hosts.get(host);
      if (!inv) throw new Error(`internal: host ${host} is not in the inventory`);
      // Steps that read a host variable themselves (pg_os_user, pg_bin_dir, rsync_ssh…) see what
      // templates see: a declared default, under the inventory's value, under -e.
      const h = { ...inv, vars: { ...this.#defaults(), ...inv.vars, ...this.inputs.extraVars } };
      sc = new HostScope(h, this.run, this.inputs.extraVars, this.#world, this.#defaults());
      this.scopes.set(host, sc);
      this.#hostvars.add(host, sc);
    }
    return sc;
  }

  scope(host: string, extra?: Scope): Scope {
    return this.hostScope(host).scope(extra);
  }

  /** A bare expression in a host's scope (a step's own `evaluate`). */
  evaluate(expr: string, host: string): unknown {
    return evaluate(expr, this.scope(host));
  }

  /**
   * Enters a play on its hosts: play vars rendered in order. In a plan, the values the play
   * registers exist only after apply: they are Unknown until then.
   */
  enterPlay(play: Play, hosts: readonly string[]): Problem[] {
    const problems: Problem[] = [];
    const { doc } = this.inputs.playbook;
    // The names the play registers and their shapes, found once for all its hosts.
    const registered: [string, Shape | undefined][] = [];
    if (this.mode === 'plan')
      for (const s of walk(playNodes(play)))
        for (const name of [s.common.id, s.common.register])
          if (typeof name === 'string') registered.push([name, this.#outputShape(s)]);
    for (const h of hosts) {
      const sc = this.hostScope(h);
      for (const [name, shape] of registered) sc.facts[name] = new Unknown(name, undefined, shape);
      try {
        sc.enterPlay(play.vars);
      } catch (err) {
        const key = sc.failedVar ?? '';
        problems.push(
          doc.problem(
            [...play.path, 'vars', ...(key ? [key] : [])],
            `on host ${h}: ${(err as Error).message}`,
          ),
        );
      }
    }
    return problems;
  }

  /** `when` on a host: true, false, or unknown (a plan waiting for a run-time value). Throws on error. */
  when(expr: string, host: string): boolean | 'unknown' {
    const v = evaluate(expr, this.scope(host));
    if (v instanceof Unknown) {
      if (this.mode === 'run') throw new Error(`"${expr}" has no value yet`);
      return 'unknown';
    }
    return truthy(v);
  }

  /** `until` after an attempt: the expression over `result` (the attempt's outputs). */
  until(expr: string, host: string, result: unknown): boolean {
    return truthy(evaluate(expr, this.scope(host, { result })));
  }

  /** The hosts of `hosts` on which a block's `when` may hold; problems for those where it fails. */
  blockHosts(
    b: BlockNode,
    hosts: readonly string[],
  ): { active: string[]; skipped: string[]; problems: Problem[] } {
    const out = { active: [] as string[], skipped: [] as string[], problems: [] as Problem[] };
    for (const h of hosts) {
      if (!b.when) {
        out.active.push(h);
        continue;
      }
      try {
        if (this.when(b.when, h) === false) out.skipped.push(h);
        else out.active.push(h);
      } catch (err) {
        out.problems.push(
          this.#problem([...b.path, 'when'], h, `when "${b.when}": ${(err as Error).message}`),
        );
      }
    }
    return out;
  }

  /** Decides `when` and renders the parameters of a step on a host. */
  resolve(n: StepNode, host: string): Instance {
    const def = this.inputs.steps.get(n.type);
    if (!def) throw new Error(`internal: unknown step type ${n.type}`);
    const when = typeof n.common.when === 'string' ? n.common.when : undefined;
    let status: 'runs' | 'conditional' = 'runs';
    if (when) {
      let holds: boolean | 'unknown';
      try {
        holds = this.when(when, host);
      } catch (err) {
        const error = `when "${when}": ${(err as Error).message}`;
        return { status: 'error', error, problem: this.#problem([...n.path, 'when'], host, error) };
      }
      if (holds === false) return { status: 'skipped', when };
      if (holds === 'unknown') status = 'conditional';
    }
    const r = renderParams(def, n, this.scope(host));
    if (!r.ok) return { status: 'error', error: r.error, problem: this.#renderProblem(n, host, r) };
    return {
      status,
      params: r.params,
      unknownParams: r.unknownParams,
      mutating: isMutating(def, r.params),
      def,
    };
  }

  /** What a step's plan() and undoPlan() see of a host. */
  planContext(
    host: string,
    unknown: ReadonlySet<string> = new Set(),
    facts: PlanContext['facts'] = {},
  ): PlanContext {
    const sc = this.hostScope(host);
    return {
      host: sc.host,
      facts,
      unknown,
      evaluate: (e: string) => evaluate(e, sc.scope()),
      peer: (name: string) => this.inputs.inventory.hosts.get(name),
    };
  }

  /** The step's plan on a host; `undo: never` replaces the undo it would register. */
  stepPlan(n: StepNode, def: AnyStep, ctx: PlanContext, params: Record<string, unknown>): StepPlan {
    const plan = def.plan(ctx, params);
    if (n.common.undo === 'never' && plan.undo)
      plan.undo = { action: 'none: undo: never (the change stays if the run fails)', ops: [] };
    return plan;
  }

  /**
   * Records how a step ended: registered names, and set_fact values. In a plan, a fact known only
   * after apply stays a name later steps may use, shown as unknown.
   */
  record(
    n: StepNode,
    host: string,
    outcome: Outcome,
    params?: Record<string, unknown>,
    unknownParams?: Set<string>,
  ): void {
    const sc = this.hostScope(host);
    const names = [n.common.id, n.common.register].filter((x): x is string => typeof x === 'string');
    const def = this.inputs.steps.get(n.type);
    if (outcome.kind === 'skipped') {
      for (const name of names) sc.facts[name] = { skipped: true };
      return;
    }
    if (outcome.kind === 'ignored') {
      for (const name of names) sc.facts[name] = { failed: true, msg: outcome.error };
      return;
    }
    if (this.mode === 'plan') {
      if (def?.setsFacts && params)
        for (const [k, v] of Object.entries(params)) sc.facts[k] = unknownParams?.has(k) ? new Unknown(k) : v;
      return;
    }
    for (const name of names) sc.facts[name] = outcome.outputs;
    if (def?.setsFacts) Object.assign(sc.facts, outcome.outputs as object);
  }

  /** A text with templates (a title, a question, a recovery) as shown on a host. */
  text(template: string, host: string): string {
    return renderText(template, this.scope(host));
  }

  /** A text rendered on several hosts: the rendering when they all agree, else the template. */
  agreedText(template: string, hosts: readonly string[]): string {
    const texts = new Set(hosts.map((h) => this.text(template, h)));
    return texts.size === 1 ? [...texts][0]! : template;
  }

  /**
   * What a registered value will look like: the step type's outputs, plus what a skipped
   * (`skipped`) or ignored failure (`failed`, `msg`) registers instead.
   */
  #outputShape(n: StepNode): Shape | undefined {
    const schema = this.inputs.steps.get(n.type)?.outputs as Shape | undefined;
    if (!schema || schema.type !== 'object' || !schema.properties) return undefined;
    return {
      ...schema,
      extra: ['skipped', 'failed', 'msg'],
      origin: `"${n.common.register ?? n.common.id}" (${n.type} outputs)`,
    };
  }

  #problem(path: PathSeg[], host: string, message: string): Problem {
    return this.inputs.playbook.doc.problem(path, `on host ${host}: ${message}`);
  }

  /** A render failure located at the expression that failed, when it can be found in the file. */
  #renderProblem(n: StepNode, host: string, f: RenderFailure): Problem {
    const { doc } = this.inputs.playbook;
    const path = [...n.path, ...f.path];
    const message = `on host ${host}: ${f.error}`;
    if (f.value !== undefined && f.expr !== undefined) {
      const index = f.value.indexOf(f.expr);
      if (index >= 0) return doc.problemAt(path, f.value, index, f.expr, message);
    }
    return doc.problem(path, message);
  }
}

// The variables a step sees on one host, in precedence order.
import { DYNAMIC_GROUPS, type Inventory, type InventoryHost } from '../inventory/inventory.js';
import { renderDeep, Unknown } from '../playbook/expressions.js';

/** Facts about the run itself, available as `run`. */
export interface RunInfo {
  id: string;
  started_at: string;
  /** true in a dry-run plan */
  check: boolean;
  /** the inventory's absolute path: a recovery command printed by the run names the real file */
  inventory?: string;
  /** `run --adopt-pause`: a Patroni cluster found paused by someone else is taken over, not refused */
  adopt_pause?: boolean;
}

/**
 * The other hosts of the run, for `hostvars` and `groups`: an upgrade's replica step compares its
 * pg_control with the leader's, which only the leader's scope holds.
 */
export interface ScopeWorld {
  /** group name → host names, with the dynamic groups once resolved (Unknown before, in a plan) */
  groups(): Record<string, unknown>;
  /** `hostvars`: one lazily computed entry per host that has entered (`HostVars.object`) */
  hostvars: Record<string, unknown>;
}

/** Per-host variable state that grows as steps register outputs and set facts. */
export class HostScope {
  /** set_fact values and registered outputs, by name */
  readonly facts: Record<string, unknown> = {};
  playVars: Record<string, unknown> = {};
  /** The play variable whose rendering failed last (to locate the problem). */
  failedVar: string | undefined;

  constructor(
    readonly host: InventoryHost,
    private readonly run: RunInfo,
    private readonly extraVars: Record<string, unknown>,
    private readonly world?: ScopeWorld,
    /** the playbook's declared defaults (`variables:`), below everything else */
    private readonly defaults: Record<string, unknown> = {},
  ) {}

  /** This host's variables as another host sees them in `hostvars[NAME]`. */
  vars(): Record<string, unknown> {
    return { ...this.defaults, ...this.host.vars, ...this.playVars, ...this.facts, ...this.extraVars };
  }

  /** Renders a play's vars in order (later vars may use earlier ones). */
  enterPlay(vars: Record<string, unknown>): void {
    this.playVars = {};
    this.failedVar = undefined;
    for (const [k, v] of Object.entries(vars)) {
      this.failedVar = k;
      this.playVars[k] = renderDeep(v, this.scope());
    }
    this.failedVar = undefined;
  }

  /**
   * declared defaults < inventory vars < play vars < facts and registered values < -e extra vars; then the names
   * pgrunbook sets (`vars`, `run`, `hostvars`, `groups`, `host`), then `extra`. A view, not a
   * copy: a scope is made for every step on every host, and copying every fact into each made a
   * plan grow with hosts × steps × facts. Names are looked up in the layers when read.
   */
  scope(extra: Record<string, unknown> = {}): Record<string, unknown> {
    const layers = () => [this.extraVars, this.facts, this.playVars, this.host.vars, this.defaults];
    const own = new Map<string, unknown>();
    const builtin = (name: string): unknown => {
      if (!own.has(name)) own.set(name, this.#builtin(name));
      return own.get(name);
    };
    const find = (name: string | symbol): { value: unknown } | undefined => {
      if (typeof name !== 'string') return undefined;
      if (Object.hasOwn(extra, name)) return { value: extra[name] };
      if (BUILTINS.has(name)) return { value: builtin(name) };
      for (const layer of layers()) if (Object.hasOwn(layer, name)) return { value: layer[name] };
      return undefined;
    };
    return new Proxy({} as Record<string, unknown>, {
      get: (_t, name) => find(name)?.value,
      has: (_t, name) => find(name) !== undefined,
      getOwnPropertyDescriptor: (_t, name) => {
        const found = find(name);
        return found && { value: found.value, writable: true, enumerable: true, configurable: true };
      },
      // The keys in the order the layers were once spread in: variables, built-ins, extra.
      ownKeys: () => [...new Set([...Object.keys(this.vars()), ...BUILTINS, ...Object.keys(extra)])],
    });
  }

  #builtin(name: string): unknown {
    const h = this.host;
    switch (name) {
      case 'vars':
        return this.vars();
      case 'run':
        return this.run;
      case 'hostvars':
        return this.world?.hostvars ?? {};
      case 'groups':
        return this.world?.groups() ?? {};
      default:
        return {
          name: h.name,
          groups: h.groups,
          transport: h.transport,
          address: h.ssh?.host ?? 'localhost',
          pg: h.pg
            ? { host: h.pg.host, port: h.pg.port, user: h.pg.user, database: h.pg.database }
            : undefined,
          patroni: h.patroni
            ? { url: h.patroni.url, member: h.patroni.member, config: h.patroni.config }
            : undefined,
          vars: h.vars,
        };
    }
  }
}

/** The names every scope sets itself, in the order they once were spread in. */
const BUILTINS = new Set(['vars', 'run', 'hostvars', 'groups', 'host']);

/**
 * `hostvars`, kept up to date as hosts enter instead of built for every scope: building it costs
 * one entry per host, and a scope is built for every step on every host (hosts × steps × hosts).
 * One lazily computed entry per host that has entered a play so far, in the order they entered.
 */
export class HostVars {
  readonly object: Record<string, unknown> = {};

  /** Adds the entry of a host that has just entered. */
  add(name: string, sc: HostScope): void {
    Object.defineProperty(this.object, name, { enumerable: true, get: () => sc.vars() });
  }
}

/**
 * `groups` for templates, built once per state of the inventory's groups (they change only when
 * the dynamic groups are resolved again): the same object serves every scope until then.
 */
export class GroupsView {
  #for: Inventory['dynamic'] | null = null;
  #groups: Record<string, unknown> = {};

  constructor(private readonly inventory: () => Inventory) {}

  /** `groups` as the inventory stands now. */
  get(): Record<string, unknown> {
    const inventory = this.inventory();
    if (this.#for !== inventory.dynamic) {
      this.#groups = groupsOf(inventory);
      this.#for = inventory.dynamic;
    }
    return this.#groups;
  }
}

/**
 * `groups` for templates: `all`, the inventory's groups and, once resolved, the dynamic Patroni
 * groups. Unresolved (an offline plan), those are Unknown: a plan shows them as known at run start.
 */
export function groupsOf(inventory: Inventory): Record<string, unknown> {
  const out: Record<string, unknown> = { all: [...inventory.hosts.keys()] };
  for (const [g, hs] of inventory.groups) out[g] = [...hs];
  for (const g of DYNAMIC_GROUPS)
    out[g] = inventory.dynamic ? [...(inventory.dynamic.groups[g] ?? [])] : new Unknown(`groups.${g}`);
  return out;
}

// The variables a step sees on one host, in precedence order.
import { DYNAMIC_GROUPS, type Inventory, type InventoryHost } from '../inventory/inventory.js';
import { renderDeep, Unknown } from '../playbook/expressions.js';

/** Facts about the run itself, available as `run`. */
export interface RunInfo {
  id: string;
  started_at: string;
  /** true in a dry-run plan */
  check: boolean;
}

/**
 * The other hosts of the run, for `hostvars` and `groups`: an upgrade's replica step compares its
 * pg_control with the leader's, which only the leader's scope holds.
 */
export interface ScopeWorld {
  scopes: ReadonlyMap<string, HostScope>;
  /** group name → host names, with the dynamic groups once resolved (Unknown before, in a plan) */
  groups(): Record<string, unknown>;
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
  ) {}

  /** This host's variables as another host sees them in `hostvars[NAME]`. */
  vars(): Record<string, unknown> {
    return { ...this.host.vars, ...this.playVars, ...this.facts, ...this.extraVars };
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

  /** inventory vars < play vars < facts and registered values < -e extra vars. */
  scope(extra: Record<string, unknown> = {}): Record<string, unknown> {
    const vars = this.vars();
    const h = this.host;
    return {
      ...vars,
      vars,
      run: this.run,
      hostvars: hostvarsOf(this.world),
      groups: this.world?.groups() ?? {},
      host: {
        name: h.name,
        groups: h.groups,
        transport: h.transport,
        address: h.ssh?.host ?? 'localhost',
        pg: h.pg ? { host: h.pg.host, port: h.pg.port, user: h.pg.user, database: h.pg.database } : undefined,
        patroni: h.patroni
          ? { url: h.patroni.url, member: h.patroni.member, config: h.patroni.config }
          : undefined,
        vars: h.vars,
      },
      ...extra,
    };
  }
}

/** `hostvars`: one lazily computed entry per host that has entered a play so far. */
function hostvarsOf(world: ScopeWorld | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [name, sc] of world?.scopes ?? []) {
    Object.defineProperty(out, name, { enumerable: true, get: () => sc.vars() });
  }
  return out;
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

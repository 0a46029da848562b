// The variables a step sees on one host, in precedence order.
import type { InventoryHost } from '../inventory/inventory.js';
import { renderDeep } from '../playbook/expressions.js';

/** Facts about the run itself, available as `run`. */
export interface RunInfo {
  id: string;
  started_at: string;
  /** true in a dry-run plan */
  check: boolean;
}

/** Per-host variable state that grows as steps register outputs and set facts. */
export class HostScope {
  /** set_fact values and registered outputs, by name */
  readonly facts: Record<string, unknown> = {};
  playVars: Record<string, unknown> = {};

  constructor(
    readonly host: InventoryHost,
    private readonly run: RunInfo,
    private readonly extraVars: Record<string, unknown>,
  ) {}

  /** Renders a play's vars in order (later vars may use earlier ones). */
  enterPlay(vars: Record<string, unknown>): void {
    this.playVars = {};
    for (const [k, v] of Object.entries(vars)) this.playVars[k] = renderDeep(v, this.scope());
  }

  /** inventory vars < play vars < facts and registered values < -e extra vars. */
  scope(extra: Record<string, unknown> = {}): Record<string, unknown> {
    const vars = { ...this.host.vars, ...this.playVars, ...this.facts, ...this.extraVars };
    const h = this.host;
    return {
      ...vars,
      vars,
      run: this.run,
      host: {
        name: h.name,
        groups: h.groups,
        transport: h.transport,
        address: h.ssh?.host ?? 'localhost',
        pg: h.pg ? { host: h.pg.host, port: h.pg.port, user: h.pg.user, database: h.pg.database } : undefined,
        patroni: h.patroni ? { url: h.patroni.url, member: h.patroni.member } : undefined,
        vars: h.vars,
      },
      ...extra,
    };
  }
}

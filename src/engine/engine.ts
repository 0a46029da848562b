// The entry the commands use: facts of the moment gathered once (who leads, server versions),
// then the whole plan built. `validate -i`, `plan` and `run` differ only in what they gather.
import { openPg } from '../connections/pg.js';
import { applyPatroniGroups } from '../inventory/dynamic-groups.js';
import type { PatroniGroups } from '../inventory/inventory.js';
import { buildPlan } from './build.js';
import { playHosts, usesDynamicGroups } from './hosts.js';
import type { NeedRequest, Plan, PreviewRequest } from './model.js';
import type { EngineInputs } from './pass.js';
import { assumedGroups, resolvePatroniGroups } from './patroni-groups.js';
import { preflight } from './preflight.js';
import { basisOf, digestOf, type PlanBasis } from './saved-plan.js';

/** What to learn from the hosts before the plan is built. */
export interface PrepareOptions {
  /**
   * offline: nothing is asked (validate, plan); check: Patroni and PostgreSQL are asked,
   * read-only (plan --check); run: Patroni is asked who leads (run start).
   */
  mode: 'offline' | 'check' | 'run';
  /** an offline plan as if Patroni named this host the leader (a change request written ahead) */
  assumeLeader?: string;
  signal?: AbortSignal;
}

/** The plan, with the groups it was built on and the previews `plan --check` may run. */
export interface Prepared {
  plan: Plan;
  /** patroni_leader/patroni_replicas as asked at this moment (check and run modes) */
  groups?: PatroniGroups;
  /** what the plan was built from; its digest is `plan.digest` */
  basis: PlanBasis;
  previews: PreviewRequest[];
}

/** Gathers the facts the mode allows, once, and builds the whole plan on them. */
export async function prepare(inputs: EngineInputs, opts: PrepareOptions): Promise<Prepared> {
  const { playbook, inventory, limit } = inputs;
  let groups: PatroniGroups | undefined;
  if (opts.assumeLeader !== undefined)
    applyPatroniGroups(inventory, assumedGroups(inventory, opts.assumeLeader));
  else if (opts.mode !== 'offline' && usesDynamicGroups(playbook.plays, limit)) {
    // Who leads decides which hosts the plays touch (read-only GET /cluster on each member).
    groups = await resolvePatroniGroups(inventory, opts.signal);
    applyPatroniGroups(inventory, groups);
  }
  let facts: Plan['facts'] | undefined;
  if (opts.mode === 'check') {
    // Read-only: one short session per host to learn version and role, then closed.
    facts = {};
    const hosts = new Set(playbook.plays.flatMap((p) => playHosts(p, inventory, limit)));
    for (const name of hosts) {
      const h = inventory.hosts.get(name)!;
      if (!h.pg) continue;
      const s = await openPg(name, h.pg, 'pgrunbook-plan-check');
      try {
        await s.query('set default_transaction_read_only = on');
        facts[name] = { pg: await s.facts() };
      } finally {
        await s.close();
      }
    }
  }
  const previews: PreviewRequest[] = [];
  const needs: NeedRequest[] = [];
  const plan = buildPlan(inputs, {
    facts,
    previews: opts.mode === 'check' ? previews : undefined,
    needs: opts.mode === 'offline' ? undefined : needs,
  });
  if (opts.mode !== 'offline') {
    // Every SSH host the plan targets is reached, key verified, become tried, and what the planned
    // steps need is there: plan --check is a preflight, and a run repeats it before its first step.
    // A plan that already has problems does not run; its needs may rest on values in error.
    const targeted = new Set(playbook.plays.flatMap((p) => playHosts(p, inventory, limit)));
    const found = await preflight(inventory, [...targeted], plan.problems.length ? [] : needs);
    plan.problems.push(...found.sort((a, b) => a.line - b.line || a.col - b.col));
  }
  const basis = basisOf(inputs, groups, plan);
  plan.digest = digestOf(basis);
  return { plan, groups, previews, basis };
}

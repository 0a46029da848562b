// Builds a plan the way the commands do (the engine with the shipped step types), for unit tests.
import { buildPlan, type PlanOptions } from '../../../src/engine/build.js';
import type { Plan } from '../../../src/engine/model.js';
import type { Inventory } from '../../../src/inventory/inventory.js';
import type { Playbook } from '../../../src/playbook/model.js';
import { registry } from '../../../src/steps/registry.js';

/** The plan of `playbook` on `inventory`, with -e vars and --limit as a command would pass them. */
export function planOf(
  playbook: Playbook,
  inventory: Inventory,
  opts: PlanOptions & { extraVars?: Record<string, unknown>; limit?: string } = {},
): Plan {
  const { extraVars, limit, ...rest } = opts;
  return buildPlan({ playbook, inventory, steps: registry, extraVars: extraVars ?? {}, limit }, rest);
}

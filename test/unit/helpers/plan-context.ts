// A PlanContext for calling a step's plan() directly: the host, and the other hosts it may name.
import type { InventoryHost } from '../../../src/inventory/inventory.js';
import type { PlanContext } from '../../../src/steps/define.js';

export const ctxOf = (h: InventoryHost, peers: Record<string, InventoryHost> = {}): PlanContext => ({
  host: h,
  facts: {},
  unknown: new Set(),
  evaluate: () => undefined,
  peer: (n) => peers[n],
});

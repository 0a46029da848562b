// The dynamic groups once resolved: entered into the inventory like any other group, and described
// for the plan and the log. Pure data: asking Patroni is the engine's (src/engine/patroni-groups.ts).
import type { Inventory, PatroniGroups } from './inventory.js';

/** Enters resolved groups into the inventory, so host patterns see them like any other group. */
export function applyPatroniGroups(inventory: Inventory, g: PatroniGroups): void {
  inventory.dynamic = g;
  for (const [name, hosts] of Object.entries(g.groups)) inventory.groups.set(name, hosts);
}

/** One line per cluster, for the plan and the log. */
export function describePatroniGroups(g: PatroniGroups): string[] {
  return g.clusters.map(
    (c) =>
      `Patroni cluster ${c.scope}: leader ${c.leader ?? '(none)'}${c.timeline !== undefined ? ` (timeline ${c.timeline})` : ''}; replicas ${c.replicas.join(', ') || '(none)'}${c.unknownMembers.length ? `; members not in the inventory: ${c.unknownMembers.join(', ')}` : ''}`,
  );
}

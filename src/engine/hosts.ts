// Which hosts a play, a batch, a block or a step works on: decided here for plan and run alike.
import { DYNAMIC_GROUPS, type Inventory } from '../inventory/inventory.js';
import { matchHosts } from '../inventory/patterns.js';
import { type Play, playNodes, walkNodes } from '../playbook/model.js';

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

/** `hosts` narrowed by a block's or step's `hosts:` pattern (none: all of them), order kept. */
export function narrowHosts(inventory: Inventory, hosts: readonly string[], pattern?: string): string[] {
  if (!pattern) return [...hosts];
  const allowed = new Set(matchHosts(inventory, pattern).hosts);
  return hosts.filter((h) => allowed.has(h));
}

/**
 * Whether any host pattern of these plays (or --limit) names a dynamic group, or any value
 * (a `when`, a parameter, a play variable) mentions one (`groups.patroni_replicas`): either way
 * the run must ask Patroni first, or that value has none.
 */
export function usesDynamicGroups(plays: readonly Play[], limit?: string): boolean {
  const patterns: string[] = limit ? [limit] : [];
  const values: unknown[] = [];
  for (const play of plays) {
    patterns.push(play.hosts);
    values.push(play.vars);
    for (const { node } of walkNodes(playNodes(play))) {
      const p = node.kind === 'block' ? node.hosts : node.common.hosts;
      if (typeof p === 'string') patterns.push(p);
      if (node.kind === 'block') values.push(node.when);
      else values.push(node.params, node.common);
    }
  }
  return (
    patterns.some((p) =>
      p
        .split(/[,:]/)
        .map((t) => t.trim().replace(/^[!&]/, ''))
        .some((t) => DYNAMIC_GROUPS.includes(t)),
    ) || values.some(mentionsDynamicGroup)
  );
}

const DYNAMIC_WORD = new RegExp(`\\b(?:${DYNAMIC_GROUPS.join('|')})\\b`);

/** A string anywhere in `v` that names a dynamic group. */
function mentionsDynamicGroup(v: unknown): boolean {
  if (typeof v === 'string') return DYNAMIC_WORD.test(v);
  if (Array.isArray(v)) return v.some(mentionsDynamicGroup);
  if (v && typeof v === 'object') return Object.values(v).some(mentionsDynamicGroup);
  return false;
}

// Loads the inventory and playbook together and collects every problem before anything runs.

import { playHosts } from '../engine/hosts.js';
import { UsageError, ValidationError } from '../errors.js';
import { type Inventory, loadInventory, resolveSecrets } from '../inventory/inventory.js';
import { type Playbook, playNodes, walk } from '../playbook/model.js';
import { loadPlaybook } from '../playbook/validate.js';
import { registry } from '../steps/registry.js';

/** A validated playbook with its inventory. */
export interface Inputs {
  playbook: Playbook;
  inventory: Inventory;
  unchecked: string[];
}

/** Validates both files; throws one ValidationError listing every problem. */
export function loadInputs(
  playbookFile: string,
  inventoryFile: string,
  opts: { extraVars: Record<string, unknown>; limit?: string; secrets: boolean },
): Inputs {
  const inv = loadInventory(inventoryFile);
  const pb = loadPlaybook(playbookFile, {
    inventory: inv.inventory,
    extraVars: opts.extraVars,
    limit: opts.limit,
  });
  const problems = [...inv.problems, ...pb.problems];
  if (problems.length === 0 && opts.secrets && inv.inventory && pb.playbook) {
    const hosts = new Set(pb.playbook.plays.flatMap((p) => playHosts(p, inv.inventory!, opts.limit)));
    for (const name of peerHosts(pb.playbook)) if (inv.inventory.hosts.has(name)) hosts.add(name);
    problems.push(...resolveSecrets(inv.inventory, [...hosts]));
  }
  if (problems.length > 0 || !pb.playbook || !inv.inventory) throw new ValidationError(problems);
  if (opts.limit && pb.playbook.plays.every((p) => playHosts(p, inv.inventory!, opts.limit).length === 0)) {
    // A typo in --limit must not look like a successful run that did nothing.
    throw new UsageError(
      `--limit ${opts.limit} matches no host of any play in ${playbookFile}: nothing would run`,
    );
  }
  return { playbook: pb.playbook, inventory: inv.inventory, unchecked: pb.unchecked };
}

/**
 * Hosts the steps name literally in their peer parameters (a subscription's publisher, a backup's
 * source): the step logs in there with that host's password, so it is read with the others. A
 * templated name is not known yet; the step then says which host's password was not read.
 */
function peerHosts(playbook: Playbook): string[] {
  const names: string[] = [];
  for (const play of playbook.plays)
    for (const step of walk(playNodes(play))) {
      const def = registry.get(step.type);
      const params = step.params as Record<string, unknown> | null;
      if (!def?.peerParams || !params || typeof params !== 'object') continue;
      for (const key of def.peerParams) {
        const v = params[key];
        if (typeof v === 'string' && !v.includes('{{')) names.push(v);
      }
    }
  return names;
}

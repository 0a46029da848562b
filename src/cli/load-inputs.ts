// Loads the inventory and playbook together and collects every problem before anything runs.

import { playHosts } from '../engine/hosts.js';
import { UsageError, ValidationError } from '../errors.js';
import { type Inventory, loadInventory, resolveSecrets } from '../inventory/inventory.js';
import type { Playbook } from '../playbook/model.js';
import { loadPlaybook } from '../playbook/validate.js';

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
  const pb = loadPlaybook(playbookFile, { inventory: inv.inventory, extraVars: opts.extraVars });
  const problems = [...inv.problems, ...pb.problems];
  if (problems.length === 0 && opts.secrets && inv.inventory && pb.playbook) {
    const hosts = new Set(pb.playbook.plays.flatMap((p) => playHosts(p, inv.inventory!, opts.limit)));
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

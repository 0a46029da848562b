// `pgrunbook validate PLAYBOOK [-i INVENTORY]`: every problem, located; nothing connects.
import { ValidationError } from '../../errors.js';
import { loadInventory } from '../../inventory/inventory.js';
import { loadPlaybook } from '../../playbook/validate.js';

export function validateCommand(
  playbookFile: string,
  opts: { inventory?: string; extraVars: Record<string, unknown> },
  out: (s: string) => void,
): number {
  const inv = opts.inventory ? loadInventory(opts.inventory) : undefined;
  const pb = loadPlaybook(playbookFile, { inventory: inv?.inventory, extraVars: opts.extraVars });
  const problems = [...(inv?.problems ?? []), ...pb.problems];
  if (problems.length > 0) throw new ValidationError(problems);
  const plays = pb.playbook!.plays.length;
  out(
    `${playbookFile}: valid (${plays} play${plays === 1 ? '' : 's'})${opts.inventory ? ` with ${opts.inventory}` : ''}\n`,
  );
  if (!opts.inventory) {
    out('  host patterns not checked (no inventory given)\n');
    if (pb.unchecked.length) out(`  names left to the inventory: ${pb.unchecked.join(', ')}\n`);
  }
  return 0;
}

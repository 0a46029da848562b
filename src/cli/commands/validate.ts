// `pgrunbook validate PLAYBOOK [-i INVENTORY]`: every problem, located; nothing connects. With an
// inventory, the whole plan is built offline as a run would build it before its first step.
import { prepare } from '../../engine/engine.js';
import { ValidationError } from '../../errors.js';
import { loadInventory } from '../../inventory/inventory.js';
import { loadPlaybook } from '../../playbook/validate.js';
import { registry } from '../../steps/registry.js';

export async function validateCommand(
  playbookFile: string,
  opts: { inventory?: string; extraVars: Record<string, unknown>; limit?: string },
  out: (s: string) => void,
): Promise<number> {
  const inv = opts.inventory ? loadInventory(opts.inventory) : undefined;
  const pb = loadPlaybook(playbookFile, {
    inventory: inv?.inventory,
    extraVars: opts.extraVars,
    limit: opts.limit,
  });
  const problems = [...(inv?.problems ?? []), ...pb.problems];
  if (problems.length > 0) throw new ValidationError(problems);
  const playbook = pb.playbook!;
  if (inv?.inventory) {
    const { plan } = await prepare(
      { playbook, inventory: inv.inventory, steps: registry, extraVars: opts.extraVars, limit: opts.limit },
      { mode: 'offline' },
    );
    if (plan.problems.length > 0) throw new ValidationError(plan.problems);
  }
  const plays = playbook.plays.length;
  out(
    `${playbookFile}: valid (${plays} play${plays === 1 ? '' : 's'})${opts.inventory ? ` with ${opts.inventory}` : ''}\n`,
  );
  if (!opts.inventory) {
    out('  host patterns and templates not checked against hosts (no inventory given)\n');
    if (pb.unchecked.length) out(`  names left to the inventory: ${pb.unchecked.join(', ')}\n`);
  }
  return 0;
}

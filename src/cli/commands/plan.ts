// `pgrunbook plan PLAYBOOK -i INVENTORY [--format text|json|markdown] [--check]`.
import { openPg } from '../../connections/pg.js';
import { UsageError } from '../../errors.js';
import type { Inventory, PatroniGroups } from '../../inventory/inventory.js';
import {
  applyPatroniGroups,
  resolvePatroniGroups,
  usesDynamicGroups,
} from '../../inventory/patroni-groups.js';
import { buildPlan, type Plan, type PreviewRequest, playHosts } from '../../plan/plan.js';
import { runPreviews } from '../../plan/previews.js';
import { renderPlanMarkdown } from '../../plan/render-markdown.js';
import { renderPlanText } from '../../plan/render-text.js';
import { redactValue } from '../../util/secret.js';
import { loadInputs } from '../load-inputs.js';

export async function planCommand(
  playbookFile: string,
  opts: {
    inventory?: string;
    extraVars: Record<string, unknown>;
    limit?: string;
    format?: string;
    check?: boolean;
    /** an offline plan as if Patroni named this host the leader (a change request written ahead) */
    assumeLeader?: string;
  },
  out: (s: string) => void,
): Promise<number> {
  if (!opts.inventory) throw new UsageError('plan needs an inventory: -i INVENTORY');
  const format = opts.format ?? 'text';
  if (!['text', 'json', 'markdown'].includes(format))
    throw new UsageError(`--format: expected text, json or markdown, got "${format}"`);
  const { playbook, inventory } = loadInputs(playbookFile, opts.inventory, {
    ...opts,
    secrets: opts.check === true,
  });
  if (opts.assumeLeader !== undefined) {
    if (opts.check)
      throw new UsageError('--assume-leader is for an offline plan; --check asks Patroni instead');
    applyPatroniGroups(inventory, assumedGroups(inventory, opts.assumeLeader));
  }
  let facts: Plan['facts'] | undefined;
  // Who leads decides which hosts the plays touch: --check asks Patroni (read-only GET /cluster).
  if (opts.check && usesDynamicGroups(playbook.plays, opts.limit))
    applyPatroniGroups(inventory, await resolvePatroniGroups(inventory));
  if (opts.check) {
    // Read-only: one short session per host to learn version and role, then closed.
    facts = {};
    const hosts = new Set(playbook.plays.flatMap((p) => playHosts(p, inventory, opts.limit)));
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
  const previews: PreviewRequest[] | undefined = opts.check ? [] : undefined;
  const plan = buildPlan(playbook, inventory, {
    limit: opts.limit,
    extraVars: opts.extraVars,
    facts,
    previews,
  });
  const previewsFailed = previews ? await runPreviews(previews, inventory) : 0;
  if (format === 'json') out(`${JSON.stringify(redactValue(plan), null, 2)}\n`);
  else if (format === 'markdown') out(renderPlanMarkdown(plan));
  else out(renderPlanText(plan));
  if (plan.problems.length > 0 || hasErrors(plan)) return 2;
  if (previewsFailed > 0) {
    process.stderr.write(
      `pgrunbook: ${previewsFailed} preview(s) failed; see "preview failed" in the plan\n`,
    );
    return 1;
  }
  return 0;
}

function hasErrors(plan: Plan): boolean {
  return JSON.stringify(plan).includes('"status":"error"');
}

/**
 * The dynamic groups as if `leader` led: the other hosts with Patroni settings are its replicas.
 * Only the plan uses this; a run always asks Patroni.
 */
function assumedGroups(inventory: Inventory, leader: string): PatroniGroups {
  const h = inventory.hosts.get(leader);
  if (!h?.patroni)
    throw new UsageError(
      `--assume-leader: "${leader}" is not a host with patroni settings in ${inventory.file}`,
    );
  const replicas = [...inventory.hosts.values()]
    .filter((x) => x.patroni && x.name !== leader)
    .map((x) => x.name);
  return {
    at: new Date().toISOString(),
    clusters: [
      {
        scope: '(assumed with --assume-leader; asked from Patroni at run start)',
        leader,
        replicas,
        unknownMembers: [],
      },
    ],
    groups: { patroni_leader: [leader], patroni_replicas: replicas },
  };
}

// `pgrunbook plan PLAYBOOK -i INVENTORY [--format text|json|markdown] [--check]`.
import { resolve } from 'node:path';
import { prepare } from '../../engine/engine.js';
import { writeSavedPlan } from '../../engine/saved-plan.js';
import { formatProblem, UsageError } from '../../errors.js';
import { renderPlanMarkdown } from '../../plan/render-markdown.js';
import { renderPlanText } from '../../plan/render-text.js';
import { runPreviews } from '../../runner/previews.js';
import { registry } from '../../steps/registry.js';
import { redact, redactValue } from '../../util/secret.js';
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
    /** write the plan, with its digest, for `run --plan` */
    out?: string;
  },
  out: (s: string) => void,
): Promise<number> {
  if (!opts.inventory) throw new UsageError('plan needs an inventory: -i INVENTORY');
  const format = opts.format ?? 'text';
  if (!['text', 'json', 'markdown'].includes(format))
    throw new UsageError(`--format: expected text, json or markdown, got "${format}"`);
  if (opts.assumeLeader !== undefined && opts.check)
    throw new UsageError('--assume-leader is for an offline plan; --check asks Patroni instead');
  const { playbook, inventory } = loadInputs(playbookFile, opts.inventory, {
    ...opts,
    secrets: opts.check === true,
  });
  const { plan, previews, basis } = await prepare(
    { playbook, inventory, steps: registry, extraVars: opts.extraVars, limit: opts.limit },
    { mode: opts.check ? 'check' : 'offline', assumeLeader: opts.assumeLeader },
  );
  // Previews only for a plan that builds: a broken plan is shown, not half-previewed.
  const previewsFailed = plan.problems.length === 0 ? await runPreviews(previews, inventory) : 0;
  if (format === 'json') out(`${JSON.stringify(redactValue(plan), null, 2)}\n`);
  else if (format === 'markdown') out(renderPlanMarkdown(plan));
  else out(renderPlanText(plan));
  if (plan.problems.length > 0) {
    // The plan above shows them in place; stderr gets them located, for editors and CI.
    for (const p of plan.problems) process.stderr.write(`${redact(formatProblem(p))}\n`);
    return 2;
  }
  if (opts.out) {
    // A saved plan must say who leads: the hosts of a dynamic group are a fact of the cluster.
    if (plan.dynamicGroups && !plan.dynamicGroups.resolved)
      throw new UsageError(
        `--out: ${playbookFile} uses patroni_leader/patroni_replicas; save a plan made with --check (asks Patroni) or --assume-leader HOST`,
      );
    writeSavedPlan(opts.out, {
      format: 'pgrunbook-plan/1',
      digest: plan.digest!,
      created_at: new Date().toISOString(),
      playbook: resolve(playbookFile),
      inventory: resolve(opts.inventory),
      facts: opts.check ? 'checked' : opts.assumeLeader !== undefined ? 'assumed' : 'offline',
      basis,
      plan: redactValue(plan) as typeof plan,
    });
    process.stderr.write(
      `plan ${plan.digest} written to ${opts.out}; run it with: pgrunbook run --plan ${opts.out}\n`,
    );
  }
  if (previewsFailed > 0) {
    process.stderr.write(
      `pgrunbook: ${previewsFailed} preview(s) failed; see "preview failed" in the plan\n`,
    );
    return 1;
  }
  return 0;
}

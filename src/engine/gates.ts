// The gates around a step, decided in one place for the plan and the run: the approval question,
// the point of no return, the leader guard and the recovery named once a step has succeeded.
import type { InventoryHost } from '../inventory/inventory.js';
import { renderText, type Scope } from '../playbook/expressions.js';
import { type Common, type Playbook, playNodes, walk } from '../playbook/model.js';
import type { AnyStep } from '../steps/define.js';

/**
 * The approval a step needs: the playbook's `confirm:` (true or a question), else the step
 * type's own gate; undefined when it runs without asking.
 */
export function confirmOf(
  def: AnyStep,
  common: { confirm?: unknown; point_of_no_return?: unknown },
  params: unknown,
): true | string | undefined {
  // Past a point of no return the run cannot put things back: nobody crosses it unasked, and a
  // playbook's own question cannot hide that it is one.
  const ponr = pointOfNoReturnOf(common);
  if (ponr !== undefined) {
    const own =
      typeof common.confirm === 'string' && common.confirm ? `${common.confirm.replace(/\?\s*$/, '')}. ` : '';
    return `${own}POINT OF NO RETURN: once this step starts, nothing before it is undone automatically${typeof ponr === 'string' ? `; a failure from here on is recovered by ${ponr}` : ''}. Proceed`;
  }
  if (typeof common.confirm === 'string' && common.confirm) return common.confirm;
  if (common.confirm === true) return true;
  // `confirm: false` cannot lift a step type's own gate.
  return def.confirm?.(asRecord(params));
}

/** `point_of_no_return:` as written: true, the recovery it names, or undefined. */
export function pointOfNoReturnOf(common: { point_of_no_return?: unknown }): true | string | undefined {
  const p = common.point_of_no_return;
  return p === true || (typeof p === 'string' && p) ? p : undefined;
}

/** Whether the leader guard applies on this host (`if_patroni`: only hosts with Patroni settings). */
export function requiresLeaderOn(common: Common, host: InventoryHost): boolean {
  const g = common.requires_leader;
  return g === true || (g === 'if_patroni' && host.patroni !== undefined);
}

/** The question a gate asks on one host, rendered in that host's scope, without a final "?". */
export function questionOn(gate: true | string, title: string, scope: Scope): string {
  return (gate === true ? `Proceed with "${renderText(title, scope)}"` : renderText(gate, scope)).replace(
    /\?\s*$/,
    '',
  );
}

/**
 * The approval prompt for a step on several hosts. Rendered per host: hosts whose question
 * differs (another candidate, another cluster) each show theirs, so nobody approves a text they
 * did not see.
 */
export function approvalPrompt(gate: true | string, title: string, scopes: Map<string, Scope>): string {
  const texts = new Map<string, string[]>();
  for (const [h, sc] of scopes) {
    const q = questionOn(gate, title, sc);
    texts.set(q, [...(texts.get(q) ?? []), h]);
  }
  const hosts = [...scopes.keys()];
  return texts.size === 1
    ? `${[...texts.keys()][0]} — on ${hosts.join(', ')}? [y/N] `
    : `${[...texts].map(([q, hs]) => `${q} — on ${hs.join(', ')}`).join('\n')}\nAll of the above? [y/N] `;
}

/** Steps that need an operator: approval gates and prompts. */
export function interactiveSteps(playbook: Playbook, steps: ReadonlyMap<string, AnyStep>): string[] {
  const out: string[] = [];
  for (const s of walk(playbook.plays.flatMap(playNodes))) {
    const def = steps.get(s.type)!;
    const prompt = def.interactive?.((s.params ?? {}) as never) === true;
    const gate = confirmOf(def, s.common, s.params);
    if (gate || prompt) {
      const { line, col } = playbook.doc.locate(s.path);
      out.push(`${playbook.file}:${line}:${col}: ${s.title} (${gate ? 'confirm' : 'prompt'})`);
    }
  }
  return out;
}

function asRecord(v: unknown): Record<string, unknown> {
  return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

// Renders a step's parameters in a host's scope and checks them against the step's schema again.
import { renderDeep, Unknown } from '../playbook/expressions.js';
import type { StepNode } from '../playbook/model.js';
import { renderShellTemplate } from '../playbook/shell-template.js';
import type { AnyStep } from '../steps/define.js';
import { describe, isValid, validatorFor } from '../util/schema-errors.js';

/** Parameters ready for plan()/apply(), or why they are not. */
export type Rendered =
  /** all values known and valid */
  | { ok: true; params: Record<string, unknown>; unknown: boolean; unknownParams: Set<string> }
  /** a rendered value breaks the step's schema */
  | { ok: false; error: string };

function hasUnknown(v: unknown): boolean {
  if (v instanceof Unknown) return true;
  if (Array.isArray(v)) return v.some(hasUnknown);
  if (v && typeof v === 'object') return Object.values(v).some(hasUnknown);
  return false;
}

/** Replaces Unknown markers by their display text, for plan output. */
export function displayUnknowns(v: unknown): unknown {
  if (v instanceof Unknown) return v.toString();
  if (Array.isArray(v)) return v.map(displayUnknowns);
  if (v && typeof v === 'object' && v.constructor === Object) {
    return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, displayUnknowns(x)]));
  }
  return v;
}

/** Renders templates (not raw-expression params) and re-validates once every value is known. */
export function renderParams(def: AnyStep, node: StepNode, scope: Record<string, unknown>): Rendered {
  const raw = (node.params ?? {}) as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  try {
    for (const [k, v] of Object.entries(raw)) {
      if (def.rawParams?.includes(k)) out[k] = v;
      else if (def.shellParams?.includes(k) && typeof v === 'string') out[k] = renderShellTemplate(v, scope);
      else out[k] = renderDeep(v, scope);
    }
  } catch (err) {
    return { ok: false, error: `${node.type}: ${(err as Error).message}` };
  }
  const unknownParams = new Set(Object.keys(out).filter((k) => hasUnknown(out[k])));
  const unknown = unknownParams.size > 0;
  if (unknown)
    return { ok: true, params: displayUnknowns(out) as Record<string, unknown>, unknown, unknownParams };
  if (!isValid(def.params, out)) {
    const validate = validatorFor(def.params);
    validate(out);
    const e = validate.errors![0]!;
    const at = e.instancePath ? e.instancePath.slice(1).replace(/\//g, '.') : '';
    return {
      ok: false,
      error: `${node.type}${at ? `.${at}` : ''}: after rendering templates: ${e.message}, got ${describe(valueAt(out, e.instancePath))}`,
    };
  }
  return { ok: true, params: out, unknown, unknownParams };
}

function valueAt(root: unknown, pointer: string): unknown {
  let cur = root;
  for (const seg of pointer.split('/').slice(1))
    cur = cur && typeof cur === 'object' ? (cur as Record<string, unknown>)[seg] : undefined;
  return cur;
}

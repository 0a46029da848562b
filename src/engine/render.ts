// Renders a step's parameters in a host's scope and checks them against the step's schema again.
// A failure says which value and which expression broke, so the engine can locate it in the file.
import {
  evaluate,
  renderTemplate,
  type Scope,
  templateExpressions,
  Unknown,
} from '../playbook/expressions.js';
import type { PathSeg } from '../playbook/load.js';
import type { StepNode } from '../playbook/model.js';
import {
  ArgvTemplateError,
  renderArgvTemplate,
  renderShellTemplate,
  shellMode,
} from '../playbook/shell-template.js';
import type { AnyStep } from '../steps/define.js';
import { describe, isValid, validatorFor } from '../util/schema-errors.js';

/** Why rendering failed, and where: `path` is inside the step (`[type, param, …]`). */
export interface RenderFailure {
  ok: false;
  error: string;
  path: PathSeg[];
  /** The string value that failed, and the expression in it that did (to point at its column). */
  value?: string;
  expr?: string;
}

/** Parameters ready for plan()/apply(), or why they are not. */
export type Rendered =
  /** all values known and valid */
  | { ok: true; params: Record<string, unknown>; unknown: boolean; unknownParams: Set<string> }
  /** a template failed, or a rendered value breaks the step's schema */
  | RenderFailure;

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

/** A string that failed to render, at its path. */
class LeafError extends Error {
  constructor(
    readonly path: PathSeg[],
    readonly value: string,
    readonly failure: Error,
  ) {
    super(failure.message);
  }
}

/** Renders every string inside a JSON-like value, remembering which one failed. */
function renderLeaves(value: unknown, scope: Scope, path: PathSeg[]): unknown {
  if (typeof value === 'string') {
    try {
      return renderTemplate(value, scope);
    } catch (err) {
      throw new LeafError(path, value, err as Error);
    }
  }
  if (Array.isArray(value)) return value.map((v, i) => renderLeaves(v, scope, [...path, i]));
  if (value && typeof value === 'object' && value.constructor === Object) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = renderLeaves(v, scope, [...path, k]);
    return out;
  }
  return value;
}

/** The first expression of a template string that fails on its own (the one to point at). */
function failingExpression(value: string, scope: Scope, shell: boolean): string | undefined {
  for (const e of templateExpressions(value)) {
    const expr = shell ? shellMode(e).expr : e;
    try {
      evaluate(expr, scope);
    } catch {
      return expr;
    }
  }
  return undefined;
}

/** Renders templates (not raw-expression params) and re-validates once every value is known. */
export function renderParams(def: AnyStep, node: StepNode, scope: Scope): Rendered {
  const raw = (node.params ?? {}) as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(raw)) {
    try {
      if (def.rawParams?.includes(k)) out[k] = v;
      else if (def.shellParams?.includes(k) && typeof v === 'string') {
        try {
          out[k] = renderShellTemplate(v, scope);
        } catch (err) {
          throw new LeafError([k], v, err as Error);
        }
      } else if (def.shellParams?.includes(k) && Array.isArray(v) && v.every((x) => typeof x === 'string')) {
        // An argv list: each element is one argument, placed by the same allowlist as scripts.
        try {
          out[k] = renderArgvTemplate(v, scope);
        } catch (err) {
          if (!(err instanceof ArgvTemplateError)) throw err;
          throw new LeafError([k, err.element], v[err.element]!, err);
        }
      } else out[k] = renderLeaves(v, scope, [k]);
    } catch (err) {
      if (!(err instanceof LeafError)) throw err;
      const shell = def.shellParams?.includes(k) === true && typeof v === 'string';
      return {
        ok: false,
        error: `${node.type}: ${err.message}`,
        path: [node.type, ...err.path],
        value: err.value,
        expr: failingExpression(err.value, scope, shell),
      };
    }
  }
  const unknownParams = new Set(Object.keys(out).filter((k) => hasUnknown(out[k])));
  const unknown = unknownParams.size > 0;
  if (unknown)
    return { ok: true, params: displayUnknowns(out) as Record<string, unknown>, unknown, unknownParams };
  if (!isValid(def.params, out)) {
    const validate = validatorFor(def.params);
    validate(out);
    const e = validate.errors![0]!;
    const segs = e.instancePath ? e.instancePath.slice(1).split('/') : [];
    const at = segs.join('.');
    return {
      ok: false,
      error: `${node.type}${at ? `.${at}` : ''}: after rendering templates: ${e.message}, got ${describe(valueAt(out, e.instancePath))}`,
      path: [node.type, ...segs.map((s) => (/^\d+$/.test(s) ? Number(s) : s))],
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

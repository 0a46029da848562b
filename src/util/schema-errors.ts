// Turns ajv's errors into one readable problem each: what was expected, what was found, where.

import { createRequire } from 'node:module';
import type { TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import type { Ajv as AjvType, ErrorObject, ValidateFunction } from 'ajv';
import { closest } from 'fastest-levenshtein';
import type { Problem } from '../errors.js';
import { isTemplate } from '../playbook/expressions.js';
import type { PathSeg, SourceDoc } from '../playbook/load.js';

let ajv: AjvType | undefined;

/** ajv, loaded on first need: valid input is checked without it (see isValid). */
function getAjv(): AjvType {
  if (!ajv) {
    const { Ajv } = createRequire(import.meta.url)('ajv') as typeof import('ajv');
    ajv = new Ajv({ allErrors: true, strict: false, useDefaults: false, verbose: true });
  }
  return ajv;
}
const compiled = new WeakMap<object, ValidateFunction>();

/** Compiles (once) and returns ajv's validator for a JSON schema object. */
export function validatorFor(schema: object): ValidateFunction {
  let v = compiled.get(schema);
  if (!v) {
    v = getAjv().compile(schema);
    compiled.set(schema, v);
  }
  return v;
}

/**
 * True when `value` is valid. Compiling a schema with ajv costs tens of milliseconds, most of a
 * CLI start: TypeBox checks the common (valid) case without compiling, and ajv, the authority,
 * decides whenever TypeBox says no (it ignores some JSON Schema keywords, e.g. patternProperties).
 */
export function isValid(schema: TSchema, value: unknown): boolean {
  try {
    if (Value.Check(schema, value)) return true;
  } catch {
    // a schema TypeBox cannot check on its own: ask ajv
  }
  return validatorFor(schema)(value) === true;
}

/** A short description of a value for "got …" in messages. */
export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return `string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
  return `${typeof v} ${String(v)}`;
}

/** Suggests the nearest of `candidates` to `name` when it is plausibly a typo. */
export function didYouMean(name: string, candidates: readonly string[]): string {
  if (candidates.length === 0) return '';
  return typoHint(name, closest(name, candidates as string[]));
}

/** The hint for `name` given the nearest candidate (the first one at the least edit distance). */
export function typoHint(name: string, best: string): string {
  // Short names are close to many others: allow fewer edits so the hint stays a real typo.
  const shorter = Math.min(name.length, best.length);
  const limit = shorter <= 4 ? 1 : shorter <= 8 ? 2 : 3;
  return editDistance(name, best) <= limit ? ` (did you mean "${best}"?)` : '';
}

function editDistance(a: string, b: string): number {
  const dp = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array(b.length).fill(0)] as number[]);
  for (let j = 1; j <= b.length; j++) dp[0]![j] = j;
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++)
      dp[i]![j] = Math.min(
        dp[i - 1]![j]! + 1,
        dp[i]![j - 1]! + 1,
        dp[i - 1]![j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
  return dp[a.length]![b.length]!;
}

/** True when TypeBox has no complaint but about `{{ template }}` strings (checked after rendering). */
function onlyTemplateErrors(schema: TSchema, value: unknown): boolean {
  try {
    if (Value.Check(schema, value)) return true;
    for (const e of Value.Errors(schema, value)) {
      const v = valueAt(value, pointerToPath(e.path, value));
      if (!(typeof v === 'string' && isTemplate(v))) return false;
    }
    return true;
  } catch {
    return false;
  }
}

function pointerToPath(pointer: string, root: unknown): PathSeg[] {
  if (!pointer) return [];
  const out: PathSeg[] = [];
  let cur: unknown = root;
  for (const raw of pointer.slice(1).split('/')) {
    const seg = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    const key: PathSeg = Array.isArray(cur) ? Number(seg) : seg;
    out.push(key);
    cur = cur && typeof cur === 'object' ? (cur as Record<PathSeg, unknown>)[key] : undefined;
  }
  return out;
}

function valueAt(root: unknown, path: readonly PathSeg[]): unknown {
  let cur = root;
  for (const seg of path)
    cur = cur && typeof cur === 'object' ? (cur as Record<PathSeg, unknown>)[seg] : undefined;
  return cur;
}

function branchText(s: Record<string, unknown>): string {
  if (typeof s.description === 'string' && s.description.length < 60) return s.description;
  if (s.type === 'array') return 'a list';
  if (s.type === 'object') return 'a mapping';
  if (s.const !== undefined) return JSON.stringify(s.const);
  if (Array.isArray(s.type)) return s.type.join(' or ');
  return String(s.type ?? 'a value');
}

/**
 * Validates `value` (found at `base` inside `doc`) and returns located problems.
 * `label` prefixes paths (e.g. `shell`); whole `{{ expr }}` strings are accepted anywhere, to be
 * checked again once rendered.
 */
export function schemaProblems(
  schema: object,
  value: unknown,
  doc: SourceDoc,
  base: readonly PathSeg[],
  opts: { allowTemplates?: boolean } = {},
): Problem[] {
  if (opts.allowTemplates && onlyTemplateErrors(schema as TSchema, value)) return [];
  if (isValid(schema as TSchema, value)) return [];
  const validate = validatorFor(schema);
  validate(value);
  const errors = (validate.errors ?? []) as ErrorObject[];
  // A failed anyOf/oneOf reports every branch; keep one message at the union's own path.
  // Schema paths, not instance paths: the same few for thousands of failing hosts, so a set.
  const unions = [
    ...new Set(errors.filter((e) => e.keyword === 'anyOf' || e.keyword === 'oneOf').map((e) => e.schemaPath)),
  ];
  const kept = errors.filter((e) => !unions.some((u) => e.schemaPath.startsWith(`${u}/`)));
  const problems: Problem[] = [];
  const seen = new Set<string>();
  for (const e of kept) {
    const rel = pointerToPath(e.instancePath, value);
    const actual = valueAt(value, rel);
    const path0 = [...base, ...rel];
    // A secret put inline by mistake must not be echoed back in the error.
    const sensitive = path0.some((p) => typeof p === 'string' && /pass|secret|token/i.test(p));
    const here = sensitive && typeof actual === 'string' ? '<a value not shown>' : actual;
    // Checked again after rendering, when the value is known.
    if (opts.allowTemplates && typeof actual === 'string' && isTemplate(actual)) continue;
    const path = path0;
    let msg: string;
    let key = false;
    switch (e.keyword) {
      case 'type': {
        const d = (e.parentSchema as { description?: string })?.description;
        msg = `expected ${(e.params as { type: string }).type}${d ? ` (${d})` : ''}, got ${describe(here)}`;
        break;
      }
      case 'required': {
        const p = (e.params as { missingProperty: string }).missingProperty;
        msg = `missing required property "${p}"`;
        break;
      }
      case 'additionalProperties': {
        const p = (e.params as { additionalProperty: string }).additionalProperty;
        const known = Object.keys((e.parentSchema as { properties?: object })?.properties ?? {});
        path.push(p);
        key = true;
        msg = `unknown property "${p}"${didYouMean(p, known)}; expected one of: ${known.join(', ')}`;
        break;
      }
      case 'enum':
        msg = `expected one of ${(e.params as { allowedValues: unknown[] }).allowedValues.map((x) => JSON.stringify(x)).join(', ')}, got ${describe(here)}`;
        break;
      case 'const':
        msg = `expected ${JSON.stringify((e.params as { allowedValue: unknown }).allowedValue)}, got ${describe(here)}`;
        break;
      case 'pattern': {
        const d = (e.parentSchema as { description?: string })?.description;
        msg = `expected ${d ?? `a string matching /${(e.params as { pattern: string }).pattern}/`}, got ${describe(here)}`;
        break;
      }
      case 'anyOf':
      case 'oneOf': {
        const parent = (e.parentSchema ?? {}) as { anyOf?: object[]; oneOf?: object[]; description?: string };
        const branches = (parent[e.keyword as 'anyOf'] ?? []) as Record<string, unknown>[];
        msg = `expected ${parent.description ?? branches.map(branchText).join(' or ')}, got ${describe(here)}`;
        break;
      }
      default:
        msg = `${e.message ?? 'invalid'}, got ${describe(here)}`;
    }
    const id = `${path.join('.')}|${msg}`;
    if (seen.has(id)) continue;
    seen.add(id);
    problems.push(doc.problem(path, msg, { key }));
  }
  return problems;
}

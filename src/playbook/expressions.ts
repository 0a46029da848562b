// `{{ expr }}` templates and bare expressions (`when`, `assert`, `until`): a small, safe,
// Jinja-flavoured language parsed by jsep and evaluated here over plain data — never eval().
import jsep, { type Expression } from 'jsep';
import { quote } from '../util/shell.js';

// Jinja precedence: filters bind tighter than arithmetic and comparison.
jsep.removeBinaryOp('|');
jsep.addBinaryOp('|', 11);
jsep.addBinaryOp('and', 2);
jsep.addBinaryOp('or', 1);
jsep.addBinaryOp('in', 7);
jsep.addBinaryOp('is', 7);
jsep.addUnaryOp('not');
jsep.removeIdentifierChar('$');

/** A value only a run can know (a registered output during `plan`). */
export class Unknown {
  constructor(
    readonly expr: string,
    /** Text to show instead, when the unknown sits inside a larger string. */
    readonly display?: string,
    /**
     * The JSON schema the value will have (a step type's outputs): its attributes can be checked
     * before the run. Absent: anything goes.
     */
    readonly shape?: Shape,
  ) {}
  toString(): string {
    return this.display ?? `(known after apply: ${this.expr})`;
  }
}

/** A name or attribute that does not exist. */
export class UndefinedError extends Error {
  override name = 'UndefinedError';
}

/** An expression that does not parse or cannot be evaluated. */
export class ExpressionError extends Error {
  override name = 'ExpressionError';
}

export type Scope = Record<string, unknown>;

const TEMPLATE = /\{\{(.*?)\}\}/gs;
const WHOLE = /^\s*\{\{(.*?)\}\}\s*$/s;
const FORBIDDEN = new Set(['__proto__', 'constructor', 'prototype']);
const cache = new Map<string, Expression>();

/** True when the string contains `{{`. */
export function isTemplate(s: string): boolean {
  return s.includes('{{');
}

/** True when the whole string is one `{{ expr }}`: it then stands for a value of any type. */
export function isWholeTemplate(s: string): boolean {
  return WHOLE.test(s) && (s.match(TEMPLATE)?.length ?? 0) === 1;
}

/** The longest expression accepted, in characters (a `when:` of a real playbook is under 200). */
export const MAX_EXPRESSION_CHARS = 2000;
/** How deep an expression's syntax tree may nest (`a + b + c` is one level per `+`). */
export const MAX_EXPRESSION_DEPTH = 64;

/** Depth of a syntax tree, counted without recursion (the tree may be deeper than the stack). */
function treeDepth(root: Expression): number {
  let max = 0;
  const todo: [unknown, number][] = [[root, 1]];
  while (todo.length > 0) {
    const [node, depth] = todo.pop()!;
    if (depth > max) max = depth;
    if (max > MAX_EXPRESSION_DEPTH) break;
    for (const v of Object.values(node as object)) {
      if (Array.isArray(v)) for (const x of v) if (x && typeof x === 'object') todo.push([x, depth + 1]);
      if (v && typeof v === 'object' && !Array.isArray(v)) todo.push([v, depth + 1]);
    }
  }
  return max;
}

/**
 * Parses an expression, caching the AST; syntax errors and expressions past the size limits
 * become ExpressionError (everything that walks an AST recurses, so its depth is bounded here).
 */
export function parseExpression(src: string): Expression {
  let ast = cache.get(src);
  if (!ast) {
    if (src.length > MAX_EXPRESSION_CHARS)
      throw new ExpressionError(
        `expression of ${src.length} characters (limit ${MAX_EXPRESSION_CHARS}); split it with set_fact`,
      );
    try {
      ast = jsep(src.trim());
    } catch (err) {
      const msg = (err as Error).message;
      const hint = /Unexpected "\{"/.test(msg) ? ' (object literals {…} are not supported)' : '';
      throw new ExpressionError(`cannot parse expression "${src.trim()}": ${msg}${hint}`);
    }
    if (ast.type === 'Compound') throw new ExpressionError(`expected one expression, got "${src.trim()}"`);
    if (treeDepth(ast) > MAX_EXPRESSION_DEPTH)
      throw new ExpressionError(
        `expression nested more than ${MAX_EXPRESSION_DEPTH} levels deep (limit ${MAX_EXPRESSION_DEPTH}); split it with set_fact`,
      );
    cache.set(src, ast);
  }
  return ast;
}

/** The expressions inside a template string, in order. */
export function templateExpressions(s: string): string[] {
  return [...s.matchAll(TEMPLATE)].map((m) => m[1]!.trim());
}

/** A name an expression reads; `optional` when it sits under `is defined` or `| default`. */
export interface NameRef {
  root: string;
  chain: string;
  optional: boolean;
}

function rootOf(n: Expression): string | undefined {
  let cur = n;
  while (cur.type === 'MemberExpression') cur = cur.object as Expression;
  return cur.type === 'Identifier' ? (cur.name as string) : undefined;
}

/** Root names an expression reads, with the dotted chain after each (`reg.stdout`). */
export function referencedNames(src: string): NameRef[] {
  const out: NameRef[] = [];
  const walk = (n: Expression | null | undefined, optional = false): void => {
    if (!n) return;
    switch (n.type) {
      case 'Identifier':
        out.push({ root: n.name as string, chain: n.name as string, optional });
        return;
      case 'MemberExpression': {
        const chain = memberChain(n);
        const root = rootOf(n);
        if (chain && root) out.push({ root, chain, optional });
        else walk(n.object as Expression, optional);
        // An index expression is evaluated whatever guards the member.
        if (n.computed) walk(n.property as Expression);
        return;
      }
      case 'BinaryExpression':
        if (n.operator === 'is') walk(n.left as Expression, true);
        else if (n.operator === '|') {
          walk(n.left as Expression, optional || filterName(n.right as Expression) === 'default');
          walkFilterArgs(n.right as Expression);
        } else {
          walk(n.left as Expression, optional);
          walk(n.right as Expression, optional);
        }
        return;
      case 'UnaryExpression':
        walk(n.argument as Expression);
        return;
      case 'ArrayExpression':
        for (const e of n.elements as Expression[]) walk(e);
        return;
      case 'CallExpression':
        throw new ExpressionError(
          `function calls are not supported; use a filter: value | ${calleeName(n)}(...)`,
        );
      default:
        return;
    }
  };
  const walkFilterArgs = (f: Expression) => {
    if (f.type === 'CallExpression') for (const a of f.arguments as Expression[]) walk(a);
  };
  walk(parseExpression(src));
  return out;
}

function memberChain(n: Expression): string | undefined {
  if (n.type === 'Identifier') return n.name as string;
  if (n.type === 'MemberExpression') {
    const base = memberChain(n.object as Expression);
    if (!base) return undefined;
    const p = n.property as Expression;
    if (!n.computed && p.type === 'Identifier') return `${base}.${p.name}`;
    if (n.computed && p.type === 'Literal') return `${base}[${JSON.stringify(p.value)}]`;
    return base;
  }
  return undefined;
}

function filterName(f: Expression): string {
  return f.type === 'Identifier' ? (f.name as string) : f.type === 'CallExpression' ? calleeName(f) : '';
}

function calleeName(n: Expression): string {
  const c = n.callee as Expression;
  return c.type === 'Identifier' ? (c.name as string) : 'filter';
}

/** Evaluates an expression; undefined names throw UndefinedError, Unknown values propagate. */
export function evaluate(src: string, scope: Scope): unknown {
  return evalNode(parseExpression(src), scope, src.trim());
}

/** Truthiness the way playbook authors expect (empty string, 0, [], {} and null are false). */
export function truthy(v: unknown): boolean {
  if (Array.isArray(v)) return v.length > 0;
  if (v && typeof v === 'object') return Object.keys(v).length > 0;
  return Boolean(v);
}

/** Renders a template: a whole `{{ expr }}` keeps its type; otherwise the parts are joined. */
export function renderTemplate(s: string, scope: Scope): unknown {
  if (!isTemplate(s)) return s;
  if (isWholeTemplate(s)) return evaluate(s.match(WHOLE)![1]!, scope);
  let unknown: Unknown | undefined;
  const text = s.replace(TEMPLATE, (_m, expr: string) => {
    const v = evaluate(expr, scope);
    if (v instanceof Unknown) {
      unknown ??= v;
      return v.toString();
    }
    return stringify(v);
  });
  return unknown ? new Unknown(s, text) : text;
}

/** Renders display text (a step name, a question); a template that cannot render stays as written. */
export function renderText(s: string, scope: Scope): string {
  if (!isTemplate(s)) return s;
  try {
    const v = renderTemplate(s, scope);
    return v instanceof Unknown ? v.toString() : stringify(v);
  } catch {
    return s;
  }
}

/** Renders every string inside a JSON-like value. */
export function renderDeep(value: unknown, scope: Scope): unknown {
  if (typeof value === 'string') return renderTemplate(value, scope);
  if (Array.isArray(value)) return value.map((v) => renderDeep(v, scope));
  if (value && typeof value === 'object' && value.constructor === Object) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = renderDeep(v, scope);
    return out;
  }
  return value;
}

/** Text form of a value inside a larger string. */
export function stringify(v: unknown): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'object' && !(v instanceof Unknown) && typeof (v as object).toString === 'function') {
    if (Array.isArray(v) || v.constructor === Object) return JSON.stringify(v);
  }
  return String(v);
}

function evalNode(n: Expression, scope: Scope, src: string): unknown {
  switch (n.type) {
    case 'Literal':
      return n.value;
    case 'Identifier': {
      const name = n.name as string;
      if (!Object.hasOwn(scope, name)) throw new UndefinedError(`undefined name "${name}"`);
      return scope[name];
    }
    case 'MemberExpression': {
      const obj = evalNode(n.object as Expression, scope, src);
      const p = n.property as Expression;
      const key = n.computed ? evalNode(p, scope, src) : (p.name as string);
      if (obj instanceof Unknown) return unknownMember(obj, key, memberChain(n) ?? src, src);
      if (key instanceof Unknown) return new Unknown(src);
      return member(obj, key, memberChain(n) ?? src);
    }
    case 'ArrayExpression':
      return (n.elements as (Expression | null)[]).map((e) => {
        if (!e) throw new ExpressionError(`an empty list element in "${src}"`);
        return evalNode(e, scope, src);
      });
    case 'UnaryExpression': {
      const v = evalNode(n.argument as Expression, scope, src);
      if (v instanceof Unknown) return new Unknown(src);
      if (n.operator === '!' || n.operator === 'not') return !truthy(v);
      if (n.operator === '-') return -Number(v);
      if (n.operator === '+') return Number(v);
      throw new ExpressionError(`unsupported operator "${n.operator}" in "${src}"`);
    }
    case 'BinaryExpression':
      return binary(n, scope, src);
    default:
      throw new ExpressionError(unsupported(n, src));
  }
}

/** Why a node the evaluator does not handle is refused, in the author's terms. */
function unsupported(n: Expression, src: string): string {
  switch (n.type) {
    case 'CallExpression':
      return `function calls are not supported; use a filter: value | ${calleeName(n)}(...)`;
    case 'ConditionalExpression':
      return `the ?: conditional is not supported in "${src}"; split the step with \`when:\`, or use "cond and a or b"`;
    case 'ThisExpression':
      return `"this" is not supported in "${src}"; name the variable (or use vars.NAME)`;
    case 'ObjectExpression':
      return `object literals {…} are not supported in "${src}"`;
    default:
      return `unsupported syntax (${n.type}) in "${src}"`;
  }
}

/** The part of a JSON schema an attribute check reads. */
export interface Shape {
  type?: unknown;
  properties?: Record<string, Shape>;
  items?: Shape;
  /** Attributes the value has besides `properties` whatever the schema says (`skipped`, `failed`). */
  extra?: readonly string[];
  /** Who makes the value, for the message: "shell registers …". */
  origin?: string;
}

/**
 * An attribute of a value known only after apply: when its schema lists the attributes, one it
 * does not list is an error now, not at run time; otherwise the attribute is unknown too.
 */
function unknownMember(obj: Unknown, key: unknown, chain: string, src: string): Unknown {
  const shape = obj.shape;
  if (!shape || key instanceof Unknown) return new Unknown(src);
  if (shape.type === 'object' && shape.properties && typeof key === 'string') {
    const sub = shape.properties[key];
    if (sub) return new Unknown(src, undefined, sub);
    if (shape.extra?.includes(key)) return new Unknown(src);
    const names = [...Object.keys(shape.properties), ...(shape.extra ?? [])];
    throw new UndefinedError(
      `undefined attribute "${chain}": ${shape.origin ? `${shape.origin} has` : 'it has'} ${names.join(', ')}`,
    );
  }
  if (shape.type === 'array' && typeof key === 'number') return new Unknown(src, undefined, shape.items);
  return new Unknown(src);
}

function member(obj: unknown, key: unknown, chain: string): unknown {
  if (typeof key !== 'string' && typeof key !== 'number') throw new ExpressionError(`bad index in ${chain}`);
  if (typeof key === 'string' && FORBIDDEN.has(key)) throw new ExpressionError(`"${key}" is not accessible`);
  if (obj === null || obj === undefined || typeof obj !== 'object') {
    if (typeof obj === 'string' && key === 'length') return obj.length;
    throw new UndefinedError(`undefined attribute "${chain}"`);
  }
  // An attribute set to undefined (host.patroni on a host without Patroni) is not defined.
  const v = Object.hasOwn(obj, key) ? (obj as Record<string | number, unknown>)[key] : undefined;
  if (v === undefined) throw new UndefinedError(`undefined attribute "${chain}"`);
  return v;
}

function binary(n: Expression, scope: Scope, src: string): unknown {
  const op = n.operator as string;
  if (op === '|') return applyFilter(n, scope, src);
  if (op === 'is') return isTest(n, scope, src);
  const l = evalNode(n.left as Expression, scope, src);
  if (op === 'and' || op === '&&') {
    if (l instanceof Unknown) return new Unknown(src);
    return truthy(l) ? evalNode(n.right as Expression, scope, src) : l;
  }
  if (op === 'or' || op === '||') {
    if (l instanceof Unknown) return new Unknown(src);
    return truthy(l) ? l : evalNode(n.right as Expression, scope, src);
  }
  const r = evalNode(n.right as Expression, scope, src);
  if (l instanceof Unknown || r instanceof Unknown) return new Unknown(src);
  switch (op) {
    case '==':
    case '===':
      return JSON.stringify(l) === JSON.stringify(r);
    case '!=':
    case '!==':
      return JSON.stringify(l) !== JSON.stringify(r);
    case '<':
      return (l as number) < (r as number);
    case '<=':
      return (l as number) <= (r as number);
    case '>':
      return (l as number) > (r as number);
    case '>=':
      return (l as number) >= (r as number);
    case '+':
      return typeof l === 'number' && typeof r === 'number' ? l + r : stringify(l) + stringify(r);
    case '-':
      return Number(l) - Number(r);
    case '*':
      return Number(l) * Number(r);
    case '/':
      return Number(l) / Number(r);
    case '%':
      return Number(l) % Number(r);
    case 'in':
      if (Array.isArray(r)) return r.some((x) => JSON.stringify(x) === JSON.stringify(l));
      if (typeof r === 'string') return r.includes(stringify(l));
      if (r && typeof r === 'object') return Object.hasOwn(r, String(l));
      return false;
    default:
      throw new ExpressionError(`unsupported operator "${op}" in "${src}"`);
  }
}

function isTest(n: Expression, scope: Scope, src: string): boolean | Unknown {
  let t = n.right as Expression;
  // `x is not defined` parses as `x is (not defined)`.
  const negated = t.type === 'UnaryExpression' && t.operator === 'not';
  if (negated) t = t.argument as Expression;
  const test = t.type === 'Identifier' ? (t.name as string) : '';
  if (test !== 'defined' && test !== 'undefined') {
    throw new ExpressionError(`"is" supports "defined" and "undefined", got "${src}"`);
  }
  let defined = true;
  try {
    const v = evalNode(n.left as Expression, scope, src);
    if (v instanceof Unknown) return new Unknown(src);
  } catch (err) {
    if (!(err instanceof UndefinedError)) throw err;
    defined = false;
  }
  const holds = test === 'defined' ? defined : !defined;
  return negated ? !holds : holds;
}

/** Names of the filters expressions may use, for error messages and docs. */
export const FILTERS = [
  'default',
  'int',
  'float',
  'string',
  'bool',
  'length',
  'lower',
  'upper',
  'trim',
  'join',
  'split',
  'first',
  'last',
  'keys',
  'json',
  'quote',
  'replace',
  'intersect',
  'difference',
] as const;

function applyFilter(n: Expression, scope: Scope, src: string): unknown {
  const f = n.right as Expression;
  const name =
    f.type === 'Identifier' ? (f.name as string) : f.type === 'CallExpression' ? calleeName(f) : '';
  const args =
    f.type === 'CallExpression' ? (f.arguments as Expression[]).map((a) => evalNode(a, scope, src)) : [];
  let v: unknown;
  try {
    v = evalNode(n.left as Expression, scope, src);
  } catch (err) {
    if (name === 'default' && err instanceof UndefinedError) return args[0] ?? '';
    throw err;
  }
  if (v instanceof Unknown || args.some((a) => a instanceof Unknown)) return new Unknown(src);
  switch (name) {
    case 'default':
      return v === undefined || v === null ? (args[0] ?? '') : v;
    case 'int': {
      const x = Number.parseInt(stringify(v), 10);
      if (Number.isNaN(x)) throw new ExpressionError(`int: "${stringify(v)}" is not an integer`);
      return x;
    }
    case 'float':
      return Number.parseFloat(stringify(v));
    case 'string':
      return stringify(v);
    case 'bool':
      return typeof v === 'string' ? ['true', 'yes', 'on', '1'].includes(v.toLowerCase()) : truthy(v);
    case 'length':
      if (Array.isArray(v) || typeof v === 'string') return v.length;
      if (v && typeof v === 'object') return Object.keys(v).length;
      return 0;
    case 'lower':
      return stringify(v).toLowerCase();
    case 'upper':
      return stringify(v).toUpperCase();
    case 'trim':
      return stringify(v).trim();
    case 'join':
      return (Array.isArray(v) ? v : [v]).map(stringify).join(stringify(args[0] ?? ''));
    case 'split':
      return stringify(v).split(args[0] === undefined ? /\s+/ : stringify(args[0]));
    case 'first':
      return Array.isArray(v) ? v[0] : stringify(v)[0];
    case 'last':
      return Array.isArray(v) ? v[v.length - 1] : stringify(v).slice(-1);
    case 'keys':
      return v && typeof v === 'object' ? Object.keys(v) : [];
    case 'json':
      return JSON.stringify(v);
    case 'quote':
      return quote(stringify(v));
    case 'replace':
      return stringify(v)
        .split(stringify(args[0]))
        .join(stringify(args[1] ?? ''));
    case 'intersect':
    case 'difference': {
      // Lists of names (hosts of two groups): the left list's order is kept.
      const other = Array.isArray(args[0]) ? args[0].map(stringify) : [stringify(args[0])];
      const list = Array.isArray(v) ? v : [v];
      return list.filter((x) => other.includes(stringify(x)) === (name === 'intersect'));
    }
    default:
      throw new ExpressionError(filterMessage(name));
  }
}

function filterMessage(name: string): string {
  if (name === 'raw') return RAW_ONLY_IN_SHELL;
  if (!name) return `a filter is a name, like "| default(1)"; known filters: ${FILTERS.join(', ')}`;
  return `unknown filter "${name}"; known filters: ${FILTERS.join(', ')}`;
}

const RAW_ONLY_IN_SHELL =
  '"| raw" only applies to a template in a shell script (shell cmd/revert), as its last filter';

const BINARY_OPS = new Set([
  '|',
  'is',
  'and',
  'or',
  '&&',
  '||',
  '==',
  '===',
  '!=',
  '!==',
  '<',
  '<=',
  '>',
  '>=',
  '+',
  '-',
  '*',
  '/',
  '%',
  'in',
]);
const UNARY_OPS = new Set(['!', 'not', '-', '+']);

/**
 * What evaluating `src` would refuse whatever the values: a parse error, syntax the evaluator does
 * not handle (`?:`, `this`, calls), an unknown filter or test. Empty when the expression is sound.
 * `suggest` turns a name into a " (did you mean …?)" hint.
 */
export function expressionProblems(
  src: string,
  suggest?: (name: string, candidates: readonly string[]) => string,
): string[] {
  let ast: Expression;
  try {
    ast = parseExpression(src);
  } catch (err) {
    if (err instanceof ExpressionError) return [err.message];
    throw err;
  }
  const out: string[] = [];
  const e = src.trim();
  const walk = (n: Expression | null | undefined): void => {
    if (!n) {
      out.push(`an empty list element in "${e}"`);
      return;
    }
    switch (n.type) {
      case 'Literal':
      case 'Identifier':
        return;
      case 'MemberExpression':
        if (n.optional) out.push(`"?." is not supported in "${e}"; use "x.y | default(…)" or "x is defined"`);
        walk(n.object as Expression);
        if (n.computed) walk(n.property as Expression);
        return;
      case 'ArrayExpression':
        for (const x of n.elements as (Expression | null)[]) walk(x);
        return;
      case 'UnaryExpression':
        if (!UNARY_OPS.has(n.operator as string)) out.push(`unsupported operator "${n.operator}" in "${e}"`);
        walk(n.argument as Expression);
        return;
      case 'BinaryExpression': {
        const op = n.operator as string;
        if (!BINARY_OPS.has(op)) {
          out.push(`unsupported operator "${op}" in "${e}"`);
        } else if (op === '|') {
          walk(n.left as Expression);
          const f = n.right as Expression;
          const name = filterName(f);
          const callee = f.type === 'CallExpression' ? (f.callee as Expression) : f;
          if (callee.type !== 'Identifier') out.push(`${filterMessage('')} (in "${e}")`);
          else if (!(FILTERS as readonly string[]).includes(name)) {
            const hint = name === 'raw' ? '' : (suggest?.(name, FILTERS) ?? '');
            out.push(
              name === 'raw'
                ? RAW_ONLY_IN_SHELL
                : `unknown filter "${name}"${hint} in "${e}"; known filters: ${FILTERS.join(', ')}`,
            );
          }
          if (f.type === 'CallExpression') for (const a of f.arguments as Expression[]) walk(a);
          return;
        } else if (op === 'is') {
          walk(n.left as Expression);
          let t = n.right as Expression;
          if (t.type === 'UnaryExpression' && t.operator === 'not') t = t.argument as Expression;
          const test = t.type === 'Identifier' ? (t.name as string) : '';
          if (test !== 'defined' && test !== 'undefined') {
            const hint = test ? (suggest?.(test, ['defined', 'undefined']) ?? '') : '';
            out.push(`"is" supports "defined" and "undefined", got "${e}"${hint}`);
          }
          return;
        }
        walk(n.left as Expression);
        walk(n.right as Expression);
        return;
      }
      default:
        out.push(unsupported(n, e));
    }
  };
  walk(ast);
  return out;
}

// GCE list filters (AIP-160 subset): `labels.env = "prod"`, `name != x`, `status:*`,
// `name eq 'pg-.*'`, terms joined by AND (or juxtaposed) and OR, with parentheses.
import { invalidField } from './errors.js';

/** A parsed filter: whether a rendered resource passes. */
export type Predicate = (resource: Record<string, unknown>) => boolean;

const TOKEN = /\s*(\(|\)|"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|!=|=|:|[^\s()=!:"']+)/y;

/** Parses a filter; throws GCE's 400 when it cannot. An empty filter passes everything. */
export function parseFilter(text: string | undefined): Predicate {
  if (!text || !text.trim()) return () => true;
  const tokens: string[] = [];
  TOKEN.lastIndex = 0;
  while (TOKEN.lastIndex < text.length) {
    const m = TOKEN.exec(text);
    if (!m) {
      if (/^\s*$/.test(text.slice(TOKEN.lastIndex))) break;
      throw bad(text);
    }
    tokens.push(m[1]!);
  }
  let i = 0;
  const peek = () => tokens[i];
  const next = () => {
    const t = tokens[i++];
    if (t === undefined) throw bad(text);
    return t;
  };
  const expr = (): Predicate => {
    const factors = [factor()];
    while (peek() !== undefined && peek() !== ')') {
      if (peek() === 'AND') i++;
      factors.push(factor());
    }
    return (r) => factors.every((f) => f(r));
  };
  const factor = (): Predicate => {
    const terms = [term()];
    while (peek() === 'OR') {
      i++;
      terms.push(term());
    }
    return (r) => terms.some((t) => t(r));
  };
  const term = (): Predicate => {
    if (peek() === '(') {
      i++;
      const e = expr();
      if (next() !== ')') throw bad(text);
      return e;
    }
    const field = next();
    const op = next();
    const value = unquote(next());
    return comparison(field, op, value, text);
  };
  const p = expr();
  if (i !== tokens.length) throw bad(text);
  return p;
}

function comparison(field: string, op: string, value: string, text: string): Predicate {
  const get = (r: Record<string, unknown>): unknown =>
    field
      .split('.')
      .reduce<unknown>(
        (o, k) => (o && typeof o === 'object' ? (o as Record<string, unknown>)[k] : undefined),
        r,
      );
  const glob = new RegExp(`^${value.split('*').map(escapeRegExp).join('.*')}$`);
  switch (op) {
    case '=':
      return (r) => matches(get(r), (s) => glob.test(s));
    case '!=':
      return (r) => !matches(get(r), (s) => glob.test(s));
    case ':':
      return (r) => (value === '*' ? get(r) !== undefined : matches(get(r), (s) => s === value));
    case 'eq':
    case 'ne': {
      let re: RegExp;
      try {
        re = new RegExp(`^(?:${value})$`);
      } catch {
        throw bad(text);
      }
      return op === 'eq'
        ? (r) => matches(get(r), (s) => re.test(s))
        : (r) => !matches(get(r), (s) => re.test(s));
    }
    default:
      throw bad(text);
  }
}

const matches = (v: unknown, test: (s: string) => boolean): boolean =>
  Array.isArray(v) ? v.some((x) => test(String(x))) : v !== undefined && test(String(v));

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function unquote(t: string): string {
  if ((t.startsWith('"') && t.endsWith('"')) || (t.startsWith("'") && t.endsWith("'")))
    return t.slice(1, -1).replace(/\\(.)/g, '$1');
  return t;
}

const bad = (text: string) => invalidField('filter', text, 'Invalid list filter expression.');

/** One page of a list: GCE's `items` (absent when empty) and `nextPageToken`. */
export function page<T>(items: T[], query: Record<string, string>): { items?: T[]; nextPageToken?: string } {
  const max = Math.min(500, Math.max(1, Number.parseInt(query.maxResults ?? '500', 10) || 500));
  const from = query.pageToken ? Number.parseInt(query.pageToken, 10) || 0 : 0;
  const slice = items.slice(from, from + max);
  return {
    ...(slice.length ? { items: slice } : {}),
    ...(from + max < items.length ? { nextPageToken: String(from + max) } : {}),
  };
}

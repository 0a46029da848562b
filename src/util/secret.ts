// Secrets render as *** in every string conversion, and their values are remembered so that
// any text leaving the process (journal, logs, reports, plans, errors) can be scrubbed as a
// second line of defence. Sinks scrub values before they format them (escaping for Markdown,
// quoting for JSON): a formatted secret is no longer the text a scrubber looks for.
import { inspect } from 'node:util';

/** The mask every secret is replaced with. */
export const MASK = '***';

/**
 * Secrets at least this long are masked wherever they appear, even inside a longer word. Shorter
 * ones are masked only as whole tokens (not touching a letter or digit on either side): masking
 * "ab" inside every word would wreck the output and point at the secret by what went missing.
 */
export const SUBSTRING_MIN = 6;

const known = new Set<string>();
let ordered: { value: string; token?: RegExp }[] = [];

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function register(value: string): void {
  if (value === '' || known.has(value)) return;
  known.add(value);
  // The forms a secret takes in text we did not format ourselves: a JSON file or JSON output
  // escapes it (a key file's private_key), and a multi-line one (a PEM key) is printed line by line.
  known.add(JSON.stringify(value).slice(1, -1));
  if (value.includes('\n'))
    for (const line of value.split(/\r?\n/))
      if (line.length >= SUBSTRING_MIN && !line.startsWith('-----')) known.add(line);
  // Longest first, so a secret that starts another one cannot leave the longer one's tail.
  ordered = [...known]
    .sort((a, b) => b.length - a.length)
    .map((v) => ({
      value: v,
      token:
        v.length < SUBSTRING_MIN
          ? new RegExp(`(?<![A-Za-z0-9])${escapeRe(v)}(?![A-Za-z0-9])`, 'g')
          : undefined,
    }));
}

/** A value that must never be printed; `reveal()` is the only way to the plain text. */
export class Secret {
  readonly #value: string;
  constructor(
    value: string,
    /** Where it came from, safe to print (e.g. `env PGPASSWORD_DB1`). */
    readonly source: string,
  ) {
    this.#value = value;
    register(value);
  }
  reveal(): string {
    return this.#value;
  }
  toString(): string {
    return MASK;
  }
  toJSON(): string {
    return MASK;
  }
  [inspect.custom](): string {
    return MASK;
  }
}

/** Replaces every known secret value in `text` with ***, short ones where they stand as a token. */
export function redact(text: string): string {
  let out = text;
  for (const { value, token } of ordered) {
    if (!out.includes(value)) continue;
    out = token ? out.replace(token, MASK) : out.split(value).join(MASK);
  }
  return out;
}

/**
 * Top-level fields of events and plans that are structure, not values: file paths the operator
 * gave, run ids, step addresses, host names, digests. They are never rewritten: `resume` reads
 * them back, and a masked segment of a path would both break it and point at the secret.
 */
const STRUCTURE = new Set([
  'type',
  'ts',
  'runId',
  'playbook',
  'inventory',
  'savedPlan',
  'playbookSha256',
  'inventorySha256',
  'planDigest',
  'digest',
  'address',
  'host',
  'hosts',
  'batches',
  'play',
  'batch',
  'limit',
]);

/**
 * Deep copy of a JSON-able value with secrets masked, for journals, events and plans. Object keys
 * and the top-level structure fields above are kept as they are; every other string is redacted.
 */
export function redactValue(value: unknown): unknown {
  if (value && typeof value === 'object' && !Array.isArray(value) && !(value instanceof Secret)) {
    const v = 'toJSON' in value && typeof value.toJSON === 'function' ? value.toJSON() : value;
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      const out: Record<string, unknown> = {};
      for (const [k, x] of Object.entries(v)) out[k] = STRUCTURE.has(k) ? x : redactDeep(x);
      return out;
    }
  }
  return redactDeep(value);
}

function redactDeep(value: unknown): unknown {
  if (value instanceof Secret) return MASK;
  if (typeof value === 'string') return redact(value);
  if (Array.isArray(value)) return value.map(redactDeep);
  if (value && typeof value === 'object') {
    if ('toJSON' in value && typeof value.toJSON === 'function') return redactDeep(value.toJSON());
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = redactDeep(v);
    return out;
  }
  return value;
}

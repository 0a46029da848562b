// Secrets render as *** in every string conversion, and their values are remembered so that
// any text leaving the process (journal, logs, reports) can be scrubbed as a second line of defence.
import { inspect } from 'node:util';

const known = new Set<string>();

/** A value that must never be printed; `reveal()` is the only way to the plain text. */
export class Secret {
  readonly #value: string;
  constructor(
    value: string,
    /** Where it came from, safe to print (e.g. `env PGPASSWORD_DB1`). */
    readonly source: string,
  ) {
    this.#value = value;
    if (value.length >= 3) known.add(value);
  }
  reveal(): string {
    return this.#value;
  }
  toString(): string {
    return '***';
  }
  toJSON(): string {
    return '***';
  }
  [inspect.custom](): string {
    return '***';
  }
}

/** Replaces every known secret value in `text` with ***. */
export function redact(text: string): string {
  let out = text;
  // Longest first, so a secret that starts another one cannot leave the longer one's tail.
  for (const s of [...known].sort((a, b) => b.length - a.length)) {
    if (out.includes(s)) out = out.split(s).join('***');
  }
  return out;
}

/** Deep copy of a JSON-able value with secrets masked, for journals and reports. */
export function redactValue(value: unknown): unknown {
  if (value instanceof Secret) return '***';
  if (typeof value === 'string') return redact(value);
  if (Array.isArray(value)) return value.map(redactValue);
  if (value && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = redactValue(v);
    return out;
  }
  return value;
}

// Shared option parsing: `-e key=value` (YAML-typed values), inventories, formats.
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { UsageError } from '../errors.js';

/** Options every command understands, parsed strictly (an unknown flag is a usage error). */
export function parseCommandArgs(argv: string[]) {
  try {
    return parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        inventory: { type: 'string', short: 'i' },
        'extra-vars': { type: 'string', short: 'e', multiple: true },
        limit: { type: 'string', short: 'l' },
        format: { type: 'string' },
        output: { type: 'string' },
        report: { type: 'string' },
        check: { type: 'boolean' },
        'assume-leader': { type: 'string' },
        out: { type: 'string' },
        'break-lock': { type: 'boolean' },
        'adopt-pause': { type: 'boolean' },
        plan: { type: 'string' },
        yes: { type: 'boolean', short: 'y' },
        'rerun-unfinished': { type: 'boolean' },
        write: { type: 'boolean' },
        markdown: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
        dir: { type: 'string' },
        version: { type: 'string' },
      },
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
}

/** `-e a=1 -e b=x` → { a: 1, b: 'x' }; values are YAML scalars (core schema). */
export function parseExtraVars(list: string[] | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const item of list ?? []) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new UsageError(`-e expects key=value, got "${item}"`);
    const key = item.slice(0, eq);
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key))
      throw new UsageError(`-e: "${key}" is not a valid variable name`);
    const raw = item.slice(eq + 1);
    let value: unknown = raw;
    try {
      value = parseYaml(raw, { version: '1.2', schema: 'core' }) ?? '';
    } catch {
      value = raw;
    }
    out[key] = value;
  }
  return out;
}

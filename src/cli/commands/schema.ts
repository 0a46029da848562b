// `pgrunbook schema [playbook|inventory] [--write]`: print or write the generated JSON schemas.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError } from '../../errors.js';
import { inventoryJsonSchema, playbookJsonSchema } from '../../playbook/json-schema.js';

/** The files `--write` produces, relative to the project root. */
export function schemaFiles(): Record<string, string> {
  return {
    'schemas/playbook.schema.json': `${JSON.stringify(playbookJsonSchema(), null, 2)}\n`,
    'schemas/inventory.schema.json': `${JSON.stringify(inventoryJsonSchema(), null, 2)}\n`,
  };
}

export function schemaCommand(args: string[], write: boolean, out: (s: string) => void): number {
  const files = schemaFiles();
  if (write) {
    for (const [path, text] of Object.entries(files)) writeFileSync(join(process.cwd(), path), text);
    out(`wrote ${Object.keys(files).join(', ')}\n`);
    return 0;
  }
  const which = args[0] ?? 'playbook';
  const text = files[`schemas/${which}.schema.json`];
  if (!text) throw new UsageError(`schema: expected "playbook" or "inventory", got "${which}"`);
  out(text);
  return 0;
}

import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { formatProblem } from '../../src/errors.js';
import { loadPlaybook } from '../../src/playbook/validate.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const SCHEMA_COMMENT = '# yaml-language-server: $schema=';

function ymlFiles(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(join(root, dir), { recursive: true, encoding: 'utf8' });
  } catch {
    return [];
  }
  return names.filter((n) => n.endsWith('.yml')).map((n) => `${dir}/${n}`);
}

// Playbooks are YAML lists; inventories (mappings) are skipped.
const playbooks = [...ymlFiles('playbooks'), ...ymlFiles('examples')]
  .filter((rel) =>
    Array.isArray(parse(readFileSync(join(root, rel), 'utf8'), { version: '1.2', schema: 'core' })),
  )
  .sort();

describe('shipped playbooks', () => {
  it('there is at least the lab demo', () => {
    expect(playbooks).toContain('examples/lab-demo.yml');
  });

  describe.each(playbooks)('%s', (rel) => {
    const file = join(root, rel);
    const text = readFileSync(file, 'utf8');

    it('starts with the yaml-language-server $schema comment pointing at schemas/playbook.schema.json', () => {
      const first = text.split('\n')[0]!;
      expect(first.startsWith(SCHEMA_COMMENT), `${rel}: first line must be "${SCHEMA_COMMENT}…"`).toBe(true);
      const target = first.slice(SCHEMA_COMMENT.length).trim();
      expect(resolve(dirname(file), target)).toBe(join(root, 'schemas/playbook.schema.json'));
    });

    it('validates with no problems', () => {
      const r = loadPlaybook(file);
      expect(r.problems.map(formatProblem)).toEqual([]);
      expect(r.playbook).toBeDefined();
    });

    // BUG (src/playbook/json-schema.ts): step params keep their patterns/types, so a template such as
    // `path: "{{ dir }}/x"` (accepted by validation) is flagged by editors using the generated schema.
    it('is accepted by the generated editor schema too', () => {
      const schema = JSON.parse(readFileSync(join(root, 'schemas/playbook.schema.json'), 'utf8'));
      const validate = new Ajv2020({ strict: false, allErrors: true }).compile(schema);
      const ok = validate(parse(text, { version: '1.2', schema: 'core' }));
      expect(ok, JSON.stringify(validate.errors?.slice(0, 5), null, 2)).toBe(true);
    });
  });
});

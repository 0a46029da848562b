// Example inventories are documentation: each must load with no problem, and every shipped
// playbook must validate against it.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { formatProblem } from '../../src/errors.js';
import { loadInventory } from '../../src/inventory/inventory.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const inventories = readdirSync(join(root, 'examples'), { recursive: true, encoding: 'utf8' })
  .filter((n) => /(^|\/)inventory\.yml$/.test(n))
  .map((n) => `examples/${n}`);

describe('example inventories', () => {
  it('there is the GitLab-like one', () => {
    expect(inventories).toContain('examples/gitlab-like/inventory.yml');
  });
  it.each(inventories)('%s loads with no problem', (rel) => {
    const r = loadInventory(join(root, rel));
    expect(r.problems.map(formatProblem)).toEqual([]);
    expect(r.inventory!.hosts.size).toBeGreaterThan(0);
  });
  it('the GitLab-like hosts are Patroni members on GCE instances, and PgBouncers in front', () => {
    const inv = loadInventory(join(root, 'examples/gitlab-like/inventory.yml')).inventory!;
    expect(inv.groups.get('pgbouncers')).toEqual(['pgbouncer-01-db-gprd', 'pgbouncer-02-db-gprd']);
    for (const h of inv.hosts.values()) {
      if (h.pgbouncer) {
        expect(h.pgbouncer).toMatchObject({ port: 6432, user: 'pgbouncer', database: 'pgbouncer' });
        expect(h.patroni).toBeUndefined();
        continue;
      }
      expect(h.patroni?.url).toMatch(/^https:/);
      expect(h.gcp).toMatchObject({ project: 'gitlab-production', zone: 'us-east1-c', instance: h.name });
      expect(h.gcp!.credentials.kind).toBe('impersonate');
    }
  });
});

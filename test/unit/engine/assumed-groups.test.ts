// `plan --assume-leader`: one leader, every other Patroni host its replica; several (a blue-green
// upgrade's two clusters), each replica with the leader it shares an inventory group with.
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { assumedGroups } from '../../../src/engine/patroni-groups.js';
import { UsageError } from '../../../src/errors.js';
import { type Inventory, loadInventory } from '../../../src/inventory/inventory.js';

const load = (rel: string) =>
  loadInventory(fileURLToPath(new URL(`../../../${rel}`, import.meta.url))).inventory as Inventory;

describe('assumedGroups', () => {
  it('one leader: the other Patroni hosts are its replicas (PgBouncer hosts are not)', () => {
    const g = assumedGroups(load('examples/gitlab-like/inventory.yml'), 'patroni-01-db-gprd');
    expect(g.groups).toEqual({
      patroni_leader: ['patroni-01-db-gprd'],
      patroni_replicas: ['patroni-02-db-gprd', 'patroni-03-db-gprd'],
    });
    expect(g.clusters).toHaveLength(1);
  });

  it('two leaders: two clusters, each replica placed by the group it shares with its leader', () => {
    const g = assumedGroups(
      load('examples/gitlab-like/inventory-bluegreen.yml'),
      'patroni-01-db-gprd, patroni-v15-01-db-gprd',
    );
    expect(g.groups.patroni_leader).toEqual(['patroni-01-db-gprd', 'patroni-v15-01-db-gprd']);
    expect(g.clusters.map((c) => [c.leader, c.replicas])).toEqual([
      ['patroni-01-db-gprd', ['patroni-02-db-gprd', 'patroni-03-db-gprd']],
      ['patroni-v15-01-db-gprd', ['patroni-v15-02-db-gprd', 'patroni-v15-03-db-gprd']],
    ]);
    expect(g.groups.patroni_replicas).toHaveLength(4);
  });

  it('refuses a name that is not a Patroni host, and an empty list', () => {
    const inv = load('examples/gitlab-like/inventory-bluegreen.yml');
    expect(() => assumedGroups(inv, 'patroni-01-db-gprd,pgbouncer-01-db-gprd')).toThrow(UsageError);
    expect(() => assumedGroups(inv, 'patroni-01-db-gprd,pgbouncer-01-db-gprd')).toThrow(
      /"pgbouncer-01-db-gprd" is not a host with patroni settings/,
    );
    expect(() => assumedGroups(inv, ' , ')).toThrow(/no host named/);
  });
});

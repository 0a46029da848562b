import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadInventory } from '../../../src/inventory/inventory.js';
import { matchHosts } from '../../../src/inventory/patterns.js';

const { inventory, problems } = loadInventory(
  fileURLToPath(new URL('../../fixtures/inventories/groups.yml', import.meta.url)),
);

describe('matchHosts', () => {
  it('the fixture loads', () => {
    expect(problems).toEqual([]);
  });

  // hosts in inventory order: db1, db2, web1, lonely
  it.each<[string, string[], string[]]>([
    ['all', ['db1', 'db2', 'web1', 'lonely'], []],
    ['*', ['db1', 'db2', 'web1', 'lonely'], []],
    ['db2', ['db2'], []],
    ['dbs', ['db1', 'db2'], []],
    ['prod', ['db1', 'db2', 'web1'], []],
    // globs match host names and group names
    ['db*', ['db1', 'db2'], []],
    ['?eb1', ['web1'], []],
    ['pro?', ['db1', 'db2', 'web1'], []],
    ['l*', ['db2', 'lonely'], []],
    // union, intersection, exclusion
    ['dbs:web1', ['db1', 'db2', 'web1'], []],
    ['web1:db1', ['db1', 'web1'], []],
    ['dbs,lonely', ['db1', 'db2', 'lonely'], []],
    ['prod:&dbs', ['db1', 'db2'], []],
    ['prod:!db1', ['db2', 'web1'], []],
    ['all:!prod', ['lonely'], []],
    ['prod:!dbs:&web', ['web1'], []],
    ['all:&late', ['db2'], []],
    ['prod:!db*', ['web1'], []],
    // terms that match nothing are reported
    ['nope', [], ['nope']],
    ['dbs:nope', ['db1', 'db2'], ['nope']],
    ['dbs:!ghost', ['db1', 'db2'], ['ghost']],
    ['zz*', [], ['zz*']],
    [' dbs : web1 ', ['db1', 'db2', 'web1'], []],
  ])('%j → hosts %j, unmatched %j', (pattern, hosts, unmatched) => {
    expect(matchHosts(inventory!, pattern)).toEqual({ hosts, unmatched, unresolved: [] });
  });

  it('a glob treats regular-expression characters literally', () => {
    expect(matchHosts(inventory!, 'db.').hosts).toEqual([]);
    expect(matchHosts(inventory!, 'db(1)').hosts).toEqual([]);
  });
});

describe('the derived pgbouncers group', () => {
  const load = (text: string) => {
    const dir = mkdtempSync(join(tmpdir(), 'pgrb-inv-'));
    writeFileSync(join(dir, 'inv.yml'), text);
    const r = loadInventory(join(dir, 'inv.yml'));
    return { problems: r.problems, inventory: r.inventory! };
  };

  it('holds the hosts with pgbouncer settings, and naming it empty is no mistake', () => {
    const withBouncer = load(
      'hosts:\n  db1: { transport: local }\n  pool1: { transport: local, pgbouncer: { port: 6432 } }\n',
    );
    expect(withBouncer.problems).toEqual([]);
    expect(matchHosts(withBouncer.inventory, 'pgbouncers')).toMatchObject({
      hosts: ['pool1'],
      unmatched: [],
    });
    expect(withBouncer.inventory.hosts.get('pool1')!.groups).toContain('pgbouncers');
    const without = load('hosts:\n  db1: { transport: local }\n');
    expect(matchHosts(without.inventory, 'pgbouncers')).toMatchObject({ hosts: [], unmatched: [] });
    // Any other empty name is still reported.
    expect(matchHosts(without.inventory, 'pgbouncer').unmatched).toEqual(['pgbouncer']);
  });

  it('a group of that name written in the file wins', () => {
    const own = load(
      'hosts:\n  db1: { transport: local }\n  pool1: { transport: local, pgbouncer: { port: 6432 } }\ngroups:\n  pgbouncers: { hosts: [db1] }\n',
    );
    expect(matchHosts(own.inventory, 'pgbouncers').hosts).toEqual(['db1']);
  });
});

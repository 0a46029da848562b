// The logical replication steps' text: the connection string a subscriber gets (libpq quoting,
// the password masked unless revealed), SQL literals, and the names they accept.
import { Value } from '@sinclair/typebox/value';
import { describe, expect, it } from 'vitest';
import type { InventoryHost } from '../../../src/inventory/inventory.js';
import copySequences from '../../../src/steps/pg/copy-sequences.js';
import { conninfo, literal, NAME_PATTERN } from '../../../src/steps/pg/logical.js';
import subscription from '../../../src/steps/pg/subscription.js';
import { Secret } from '../../../src/util/secret.js';
import { ctxOf } from '../helpers/plan-context.js';

const pw = "it's a \\ secret";
const blue = {
  name: 'blue',
  transport: 'ssh',
  ssh: { host: '10.0.0.1', user: 'dbre' },
  pg: {
    host: 'db-blue',
    port: 5432,
    user: 'replicator',
    database: 'app',
    sslmode: 'require',
    password: new Secret(pw, 'env X'),
  },
  vars: {},
  groups: [],
} as unknown as InventoryHost;
const green = {
  ...blue,
  name: 'green',
  pg: { ...blue.pg!, host: 'db-green', password: undefined },
} as InventoryHost;

describe('logical replication text', () => {
  it('conninfo: libpq quoting, the password only when revealed', () => {
    expect(conninfo(blue, undefined, {}, false)).toBe(
      "host='db-blue' port='5432' user='replicator' dbname='app' sslmode='require' password='***'",
    );
    expect(conninfo(blue, 'other', { host: '10.1.1.1', port: 6432 }, true)).toBe(
      "host='10.1.1.1' port='6432' user='replicator' dbname='other' sslmode='require' password='it\\'s a \\\\ secret'",
    );
    expect(literal("a'b")).toBe("'a''b'");
  });

  it('the plan shows the CREATE SUBSCRIPTION with the password masked', () => {
    const plan = subscription.plan(ctxOf(green, { blue }), {
      name: 'bg_sub',
      source: 'blue',
      publication: 'bg_pub',
      slot_name: 'bg_slot',
      origin_lsn: '0/3000060',
    });
    const text = plan.ops.map((o) => ('sql' in o ? o.sql : '')).join('\n');
    expect(text).toContain(
      "CONNECTION 'host=''db-blue'' port=''5432'' user=''replicator'' dbname=''app'' sslmode=''require'' password=''***'''",
    );
    expect(text).not.toContain('secret');
    expect(text).toContain("pg_replication_origin_advance('pg_' || oid::text, '0/3000060'::pg_lsn)");
    expect(plan.undo?.ops.map((o) => ('sql' in o ? o.sql : ''))).toEqual([
      'ALTER SUBSCRIPTION bg_sub DISABLE',
      'ALTER SUBSCRIPTION bg_sub SET (slot_name = NONE)',
      'DROP SUBSCRIPTION bg_sub',
    ]);
  });

  it('names are lower-case identifiers only', () => {
    const ok = (n: string) => new RegExp(NAME_PATTERN).test(n);
    expect(['bg_pub', '_x', 'a1'].every(ok)).toBe(true);
    expect(['Bg', 'bg-pub', '1a', '"x"', "x'; drop", 'a'.repeat(64), ''].some(ok)).toBe(false);
    expect(Value.Check(subscription.params, { name: 'bad name' })).toBe(false);
    expect(Value.Check(subscription.params, { name: 'ok', origin_lsn: '0/1; drop' })).toBe(false);
  });

  it('a publisher that is not an inventory host is refused when the plan is built, before anything runs', () => {
    expect(() =>
      subscription.plan(ctxOf(green, { blue }), {
        name: 's',
        source: 'nowhere',
        publication: 'p',
        slot_name: 'x',
      }),
    ).toThrow('source: no host "nowhere" in the inventory');
    expect(() => copySequences.plan(ctxOf(green, { blue }), { source: 'nowhere' })).toThrow(
      'source: no host "nowhere" in the inventory',
    );
    expect(() => copySequences.plan(ctxOf(green, { blue }), { source: 'blue' })).not.toThrow();
    expect(() => subscription.plan(ctxOf(green, { blue }), { name: 's' })).toThrow(
      'state present needs source, publication and slot_name',
    );
  });
});

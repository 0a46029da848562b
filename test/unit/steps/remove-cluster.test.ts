// patroni.remove_cluster reads what the DCS held at the wipe from patronictl remove's own output
// (its member listing, printed before its questions), and plans a check that changes nothing.
import { describe, expect, it } from 'vitest';
import type { InventoryHost } from '../../../src/inventory/inventory.js';
import remove, { removeListing } from '../../../src/steps/patroni/remove-cluster.js';
import { ctxOf } from '../helpers/plan-context.js';

const db1: InventoryHost = {
  name: 'db1',
  transport: 'ssh',
  ssh: { host: '10.0.0.1', user: 'dbre' } as InventoryHost['ssh'],
  patroni: {
    url: 'http://10.0.0.1:8008',
    config: '/etc/patroni.yml',
    patronictl: 'patronictl',
  } as InventoryHost['patroni'],
  vars: {},
  groups: [],
} as InventoryHost;

describe('patroni.remove_cluster', () => {
  it("reads patronictl remove's listing, prompts and all", () => {
    const out =
      '[{"Cluster": "main", "Member": "m1", "Host": "127.0.0.1:5432", "Role": "Leader", "State": "running", "TL": 1}, {"Cluster": "main", "Member": "m2", "Role": "Replica", "State": "stopped"}]\n' +
      'Please confirm the cluster name to remove: You are about to remove all information in DCS for main, please type: "Yes I am aware": This cluster currently is healthy. Please specify the leader name to continue: ';
    expect(removeListing(out)?.map((m) => [m.Member, m.Role, m.State])).toEqual([
      ['m1', 'Leader', 'running'],
      ['m2', 'Replica', 'stopped'],
    ]);
    expect(removeListing('[]\nPlease confirm')).toEqual([]);
    expect(removeListing('Error: no DCS\n')).toBeUndefined();
    expect(removeListing('[not json\n')).toBeUndefined();
  });

  it('check: true lists and refuses, asks no approval and changes nothing', () => {
    expect(remove.confirm?.({ scope: 'main', check: true })).toBeUndefined();
    expect(remove.confirm?.({ scope: 'main' })).toMatch(/Wipe the DCS state of Patroni cluster main/);
    const mutating = remove.mutating as (p: unknown) => boolean;
    expect(mutating({ scope: 'main', check: true })).toBe(false);
    expect(mutating({ scope: 'main' })).toBe(true);
    const plan = remove.plan(ctxOf(db1), { scope: 'main', check: true });
    const lines = plan.ops.flatMap((o) => ('line' in o ? [o.line] : []));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('list main -f json');
    expect(plan.undo).toBeUndefined();
  });

  it('with a listing from before, the plan says when the wipe skips its own listing', () => {
    const plan = remove.plan(ctxOf(db1), {
      scope: 'main',
      listed: { members_before: ['m1', 'm2'], leader: 'm1' },
      stopped_hosts: ['db1', 'db2'],
    });
    const text = plan.ops.map((o) => ('line' in o ? o.line : 'text' in o ? o.text : '')).join('\n');
    expect(text).toMatch(/one of db1, db2 and its REST API refuses connections: no listing of its own/);
    expect(text).toContain('remove main -f json');
    expect(text).toContain("patronictl remove's own listing is compared with the earlier one");
  });
});

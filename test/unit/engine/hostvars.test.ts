// `hostvars` and `groups` in templates: what one host sees of another (inventory vars < play vars
// < facts < extra vars of THAT host, computed when read), the groups (all, the inventory's, the
// dynamic Patroni ones — Unknown until resolved), their validation, and the offline plan.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { PlanNode } from '../../../src/engine/model.js';
import { groupsOf, HostScope, HostVars, type RunInfo, type ScopeWorld } from '../../../src/engine/scope.js';
import { formatProblem } from '../../../src/errors.js';
import { applyPatroniGroups } from '../../../src/inventory/dynamic-groups.js';
import { type Inventory, loadInventory } from '../../../src/inventory/inventory.js';
import { renderPlanText } from '../../../src/plan/render-text.js';
import { evaluate, renderText, Unknown } from '../../../src/playbook/expressions.js';
import { parseSource } from '../../../src/playbook/load.js';
import { BUILTIN_NAMES, type Playbook, RESERVED_NAMES } from '../../../src/playbook/model.js';
import { validatePlaybook } from '../../../src/playbook/validate.js';
import { planOf } from '../helpers/plan.js';

const dir = mkdtempSync(join(tmpdir(), 'pgrb-hostvars-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const INV = `
vars: { color: inventory, pgdata: /var/lib/postgresql/13/main }
hosts:
  db1: { transport: local, vars: { who: db1 }, patroni: { url: "http://127.0.0.1:1" } }
  db2: { transport: local, vars: { who: db2, color: host2 }, patroni: { url: "http://127.0.0.1:2" } }
  db3: { transport: local, vars: { who: db3 }, patroni: { url: "http://127.0.0.1:3" } }
  tool: { transport: local }
groups:
  patroni: { hosts: [db1, db2, db3] }
  pair: { hosts: [db1, db2], vars: { color: group } }
  ops: { children: [pair], hosts: [tool] }
`;

let n = 0;
function inventory(text = INV): Inventory {
  const f = join(dir, `inv${n++}.yml`);
  writeFileSync(f, text);
  const r = loadInventory(f);
  expect(r.problems.map(formatProblem)).toEqual([]);
  return r.inventory!;
}

const RUN: RunInfo = { id: 'r1', started_at: '2024-01-01T00:00:00Z', check: false };

/** Scopes of several hosts sharing one world, as the executor and the planner build them. */
function world(inv: Inventory, extraVars: Record<string, unknown> = {}) {
  const scopes = new Map<string, HostScope>();
  const hostvars = new HostVars();
  const w: ScopeWorld = { hostvars: hostvars.object, groups: () => groupsOf(inv) };
  const enter = (name: string, vars: Record<string, unknown> = {}) => {
    if (!scopes.has(name)) {
      scopes.set(name, new HostScope(inv.hosts.get(name)!, RUN, extraVars, w));
      hostvars.add(name, scopes.get(name)!);
    }
    const sc = scopes.get(name)!;
    sc.enterPlay(vars);
    return sc;
  };
  return { scopes, enter };
}

const fromText = (text: string, inv?: Inventory) => {
  const { doc, problems } = parseSource('mem.yml', text);
  expect(problems).toEqual([]);
  return validatePlaybook(doc!, { inventory: inv });
};

describe('hostvars', () => {
  it('one entry per host that has entered a play, each with that host’s own variables', () => {
    const inv = inventory();
    const { enter } = world(inv);
    const a = enter('db1');
    enter('db2');
    const hv = evaluate('hostvars', a.scope()) as Record<string, Record<string, unknown>>;
    expect(Object.keys(hv)).toEqual(['db1', 'db2']);
    expect(evaluate("hostvars['db2'].who", a.scope())).toBe('db2');
    expect(evaluate('hostvars.db1.who', a.scope())).toBe('db1');
    // db2's host var beats the group var; db1 gets the group's (which beats the inventory's).
    expect(evaluate('hostvars.db2.color', a.scope())).toBe('host2');
    expect(evaluate('hostvars.db1.color', a.scope())).toBe('group');
    expect(evaluate('hostvars.db1.pgdata', a.scope())).toBe('/var/lib/postgresql/13/main');
  });

  it('precedence of THAT host: inventory vars < play vars < facts < extra vars', () => {
    const inv = inventory();
    const { enter } = world(inv, { size: 'extra' });
    const a = enter('db1', { color: 'play-db1' });
    const b = enter('db2', { color: 'play-db2', size: 'play' });
    const see = (expr: string) => evaluate(expr, a.scope());
    expect(see('hostvars.db2.color')).toBe('play-db2');
    expect(see('color')).toBe('play-db1');
    b.facts.color = 'fact-db2';
    expect(see('hostvars.db2.color')).toBe('fact-db2');
    expect(see('color')).toBe('play-db1');
    b.facts.size = 'fact';
    expect(see('hostvars.db2.size')).toBe('extra');
  });

  it('is computed when read: a fact set after the scope was taken is seen', () => {
    const inv = inventory();
    const { enter } = world(inv);
    const a = enter('db1');
    const b = enter('db2');
    const scope = a.scope();
    b.facts.ctl = { checkpoint_lsn: '0/5000028' };
    expect(evaluate("hostvars['db2'].ctl.checkpoint_lsn", scope)).toBe('0/5000028');
    expect(renderText('{{ hostvars[x].ctl.checkpoint_lsn }}', { ...scope, x: 'db2' })).toBe('0/5000028');
  });

  it('a host that has not entered a play yet is not there', () => {
    const inv = inventory();
    const { enter } = world(inv);
    const a = enter('db1');
    expect(() => evaluate('hostvars.db3.who', a.scope())).toThrow('undefined attribute "hostvars.db3"');
    expect(() => evaluate('hostvars[x].who', { ...a.scope(), x: 'db3' })).toThrow(/undefined attribute/);
    enter('db3');
    expect(evaluate('hostvars.db3.who', a.scope())).toBe('db3');
  });

  it('an Unknown value (registered, in a plan) or an Unknown key stays Unknown', () => {
    const inv = inventory();
    const { enter } = world(inv);
    const a = enter('db1');
    const b = enter('db2');
    b.facts.ctl = new Unknown('ctl');
    expect(evaluate('hostvars.db2.ctl.checkpoint_lsn', a.scope())).toBeInstanceOf(Unknown);
    // Offline, the leader is not known: hostvars[leader] is not either.
    const leader = evaluate('groups.patroni_leader | first', a.scope());
    expect(leader).toBeInstanceOf(Unknown);
    expect(evaluate('hostvars[leader].pgdata', { ...a.scope(), leader })).toBeInstanceOf(Unknown);
  });
});

describe('groups', () => {
  it('all, the inventory’s groups (children expanded), and the Patroni groups Unknown until resolved', () => {
    const inv = inventory();
    const g = groupsOf(inv);
    expect(g.all).toEqual(['db1', 'db2', 'db3', 'tool']);
    expect(g.patroni).toEqual(['db1', 'db2', 'db3']);
    expect(g.pair).toEqual(['db1', 'db2']);
    expect([...(g.ops as string[])].sort()).toEqual(['db1', 'db2', 'tool']);
    expect(g.patroni_leader).toBeInstanceOf(Unknown);
    expect(g.patroni_replicas).toBeInstanceOf(Unknown);
    expect(String(g.patroni_leader)).toBe('(known after apply: groups.patroni_leader)');
  });

  it('once resolved from Patroni, the dynamic groups are lists like any other', () => {
    const inv = inventory();
    const { enter } = world(inv);
    const a = enter('db1');
    expect(evaluate('groups.patroni_replicas | length', a.scope())).toBeInstanceOf(Unknown);
    applyPatroniGroups(inv, {
      at: '2024-01-01T00:00:00Z',
      clusters: [{ scope: 'main', leader: 'db2', replicas: ['db1', 'db3'], unknownMembers: [] }],
      groups: { patroni_leader: ['db2'], patroni_replicas: ['db1', 'db3'] },
    });
    // The world reads the inventory at each lookup: the same scope object sees the resolution.
    expect(evaluate('groups.patroni_leader | first', a.scope())).toBe('db2');
    expect(evaluate('groups.patroni_replicas | length', a.scope())).toBe(2);
    enter('db2');
    expect(evaluate('hostvars[groups.patroni_leader[0]].who', a.scope())).toBe('db2');
    // The copy a template gets cannot change the inventory.
    (evaluate('groups.patroni_replicas', a.scope()) as string[]).push('db9');
    expect(inv.dynamic!.groups.patroni_replicas).toEqual(['db1', 'db3']);
  });

  it('a scope without a world (no other hosts known) has empty hostvars and groups', () => {
    const inv = inventory();
    const sc = new HostScope(inv.hosts.get('db1')!, RUN, {});
    expect(evaluate('hostvars', sc.scope())).toEqual({});
    expect(evaluate('groups', sc.scope())).toEqual({});
  });
});

describe('validation', () => {
  it('hostvars and groups are built-in and reserved names', () => {
    expect(BUILTIN_NAMES).toEqual(expect.arrayContaining(['hostvars', 'groups']));
    expect(RESERVED_NAMES).toEqual(expect.arrayContaining(['hostvars', 'groups']));
  });

  it('accepts {{ hostvars[x].y }} and {{ groups.patroni | length }}, with and without an inventory', () => {
    const pb = `- name: p
  hosts: all
  vars: { leader: "{{ groups.patroni_leader | first }}" }
  steps:
    - shell: "echo {{ hostvars[leader].pgdata }} {{ groups.patroni | length }}"
    - assert: { that: "hostvars[leader].ctl.checkpoint_lsn == hostvars['db1'].ctl.checkpoint_lsn" }
`;
    expect(fromText(pb).problems.map(formatProblem)).toEqual([]);
    expect(fromText(pb, inventory()).problems.map(formatProblem)).toEqual([]);
  });

  it.each([
    ['a set_fact', '    - set_fact: { groups: 1 }', '"groups" cannot be a set_fact name'],
    ['a register', '    - shell: "true"\n      register: hostvars', '"hostvars" cannot be a register name'],
    ['a step id', '    - id: groups\n      shell: "true"', '"groups" cannot be a step id'],
  ])('refuses hostvars/groups as %s', (_what, step, message) => {
    const r = fromText(`- name: p\n  hosts: all\n  steps:\n${step}\n`);
    expect(r.problems.map((p) => p.message)).toEqual([
      `${message}: run, host, vars, hostvars, groups, result are reserved (set by pgrunbook); choose another name`,
    ]);
  });

  it('refuses hostvars as a play variable, located at its key', () => {
    const r = fromText('- name: p\n  hosts: all\n  vars:\n    hostvars: {}\n  steps: []\n');
    expect(r.problems.map(formatProblem)).toEqual([
      'mem.yml:4:5: [0].vars.hostvars: "hostvars" cannot be a play variable: run, host, vars, hostvars, groups, result are reserved (set by pgrunbook); choose another name',
    ]);
  });
});

describe('offline plan', () => {
  /** Plans `text` against the inventory; problems in validation fail the test. */
  function plan(text: string, inv = inventory()) {
    const r = fromText(text, inv);
    expect(r.problems.map(formatProblem)).toEqual([]);
    const p = planOf(r.playbook as Playbook, inv);
    return { plan: p, text: renderPlanText(p) };
  }
  const steps = (nodes: PlanNode[]): Extract<PlanNode, { kind: 'step' }>[] =>
    nodes.flatMap((x) =>
      x.kind === 'step' ? [x] : [...steps(x.block), ...steps(x.rescue), ...steps(x.always)],
    );

  it('another host’s registered output is "(known after apply…)", not an error', () => {
    const { plan: p, text } = plan(`
- name: leader
  hosts: db1
  steps:
    - id: ctl
      pg.controldata: { data_dir: /var/lib/postgresql/13/main, bin_dir: /usr/lib/postgresql/13/bin }
- name: replicas
  hosts: pair
  vars: { leader: db1 }
  steps:
    - name: compare
      shell: "echo {{ hostvars[leader].ctl.checkpoint_lsn }} {{ hostvars[leader].who }}"
`);
    expect(p.problems).toEqual([]);
    const compare = steps(p.plays[1]!.steps).find((s) => s.title === 'compare')!;
    expect(compare.hosts.map((h) => h.status)).toEqual(['runs', 'runs']);
    const line = (compare.hosts[0]!.plan!.ops[0] as { line: string }).line;
    expect(line).toBe('echo (known after apply: hostvars[leader].ctl.checkpoint_lsn) db1');
    expect(text).toContain('known after apply');
    expect(text).not.toContain('ERROR');
  });

  it('the dynamic groups offline: a template over them is known at run start, not an error', () => {
    const { plan: p } = plan(`
- name: all of them
  hosts: patroni
  vars: { leader: "{{ groups.patroni_leader | first }}" }
  steps:
    - name: count
      shell: "echo {{ groups.patroni | length }} {{ groups.patroni_replicas | length }} {{ hostvars[leader].who }}"
`);
    const count = steps(p.plays[0]!.steps)[0]!;
    expect(count.hosts.map((h) => h.status)).toEqual(['runs', 'runs', 'runs']);
    expect((count.hosts[0]!.plan!.ops[0] as { line: string }).line).toMatch(/^echo 3 .*known after apply/);
  });

  it('a set_fact only known after apply still lets later steps, and other hosts, use its name', () => {
    const { plan: p, text } = plan(`
- name: first
  hosts: db1
  steps:
    - id: r
      shell: "echo 0/5000028"
    - set_fact: { lsn: "{{ r.stdout | trim }}", known: fixed }
    - name: use it
      shell: "echo {{ lsn }} {{ known }}"
- name: second
  hosts: db2
  steps:
    - name: from db2
      shell: "echo {{ hostvars['db1'].lsn }} {{ hostvars['db1'].known }}"
`);
    expect(p.problems).toEqual([]);
    const all = p.plays.flatMap((pl) => steps(pl.steps));
    for (const s of all) expect(s.hosts.every((h) => h.status === 'runs')).toBe(true);
    const lineOf = (title: string) =>
      (all.find((s) => s.title === title)!.hosts[0]!.plan!.ops[0] as { line: string }).line;
    expect(lineOf('use it')).toBe('echo (known after apply: lsn) fixed');
    expect(lineOf('from db2')).toBe('echo (known after apply: lsn) fixed');
    expect(text).not.toContain('ERROR');
  });
});

// Plans of playbooks that use Patroni: the dynamic groups offline and resolved, requires_leader,
// a switchover's approval, and previews (plan --check) as text.
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { HostStepPlan, Plan, PlanNode } from '../../../src/engine/model.js';
import { resolvePatroniGroups } from '../../../src/engine/patroni-groups.js';
import { formatProblem } from '../../../src/errors.js';
import { applyPatroniGroups } from '../../../src/inventory/dynamic-groups.js';
import type { Inventory } from '../../../src/inventory/inventory.js';
import { renderPlanMarkdown } from '../../../src/plan/render-markdown.js';
import { previewLines, renderPlanText } from '../../../src/plan/render-text.js';
import type { Playbook } from '../../../src/playbook/model.js';
import { loadPlaybook } from '../../../src/playbook/validate.js';
import {
  closeFakes,
  cluster4,
  fakePatroni,
  inventoryOf,
  memberStatus,
  removeTemps,
  writeTemp,
} from '../helpers/fake-patroni.js';
import { planOf } from '../helpers/plan.js';

afterEach(closeFakes);
afterAll(removeTemps);

/** db1, db2 with Patroni at the given URLs (never contacted unless a test resolves), web1 without. */
const inventory = (url1 = 'http://10.0.0.1:8008', url2 = 'http://10.0.0.2:8008') =>
  inventoryOf(
    `hosts:\n  db1: { transport: local, patroni: { url: "${url1}", timeout: 1 } }\n  db2: { transport: local, patroni: { url: "${url2}", timeout: 1 } }\n  web1: { transport: local }\n`,
  );

function playbook(yaml: string, inv: Inventory): Playbook {
  const r = loadPlaybook(writeTemp('pb.yml', yaml), { inventory: inv });
  expect(r.problems.map(formatProblem)).toEqual([]);
  return r.playbook!;
}

const steps = (plan: Plan): Extract<PlanNode, { kind: 'step' }>[] =>
  plan.plays
    .flatMap((p) => p.steps)
    .filter((n): n is Extract<PlanNode, { kind: 'step' }> => n.kind === 'step');

const LEADER_AND_REPLICAS = `
- name: on the leader
  hosts: patroni_leader
  steps:
    - shell: "echo leader"
- name: on the replicas
  hosts: patroni_replicas
  steps:
    - shell: "echo replica"
`;

describe('plans with patroni_leader / patroni_replicas', () => {
  it('offline: the run-start line, and every host with patroni settings stands in', () => {
    const inv = inventory();
    const plan = planOf(playbook(LEADER_AND_REPLICAS, inv), inv);
    const line =
      'patroni_leader and patroni_replicas are resolved from the Patroni REST API at run start; until then every host with patroni settings stands in (db1, db2). plan --check asks Patroni now.';
    expect(plan.dynamicGroups).toEqual({ resolved: false, lines: [line] });
    expect(plan.plays.map((p) => p.hosts)).toEqual([
      ['db1', 'db2'],
      ['db1', 'db2'],
    ]);
    const text = renderPlanText(plan);
    expect(text).toContain(`(offline: no connection made)\n  ${line}\n`);
    expect(text).toContain('  hosts: patroni_leader → db1, db2\n');
    expect(text).toContain('  hosts: patroni_replicas → db1, db2\n');
    expect(renderPlanMarkdown(plan)).toContain(`- ${line}`);
  });

  it('after applyPatroniGroups: the leader and replicas Patroni named, and no run-start line', async () => {
    const members = [
      { name: 'db1', role: 'replica', timeline: 4 },
      { name: 'db2', role: 'leader', timeline: 4 },
    ];
    const a = await fakePatroni({
      '/cluster': cluster4('demo', members),
      '/patroni': memberStatus({ role: 'replica', scope: 'demo', name: 'db1' }),
    });
    const b = await fakePatroni({
      '/cluster': cluster4('demo', members),
      '/patroni': memberStatus({ role: 'primary', scope: 'demo', name: 'db2' }),
    });
    const inv = inventory(a.url, b.url);
    const pb = playbook(LEADER_AND_REPLICAS, inv);
    applyPatroniGroups(inv, await resolvePatroniGroups(inv));
    const plan = planOf(pb, inv);
    const line = 'Patroni cluster demo: leader db2 (timeline 4); replicas db1';
    expect(plan.dynamicGroups).toEqual({
      resolved: true,
      lines: [line],
      groups: { patroni_leader: ['db2'], patroni_replicas: ['db1'] },
    });
    expect(plan.plays.map((p) => p.hosts)).toEqual([['db2'], ['db1']]);
    const text = renderPlanText(plan);
    expect(text).toContain(`\n  ${line}\n`);
    expect(text).toContain('  hosts: patroni_leader → db2\n');
    expect(text).toContain('  hosts: patroni_replicas → db1\n');
    expect(text).not.toContain('at run start');
    expect(renderPlanMarkdown(plan)).toContain(`- ${line}`);
  });

  it('a playbook that names no dynamic group has no such line', () => {
    const inv = inventory();
    const plan = planOf(playbook('- name: all\n  hosts: all\n  steps:\n    - shell: "true"\n', inv), inv);
    expect(plan.dynamicGroups).toBeUndefined();
    expect(renderPlanText(plan)).not.toContain('Patroni');
  });
});

describe('requires_leader in the plan', () => {
  const PB = `
- name: leader work
  hosts: patroni_leader
  steps:
    - name: guarded
      requires_leader: true
      shell: "echo first"
    - name: unguarded
      shell: "echo second"
`;

  it('the guarded step is tagged and carries the guard line; the other one not', () => {
    const inv = inventory();
    const plan = planOf(playbook(PB, inv), inv);
    expect(steps(plan).map((s) => [s.title, s.requiresLeader])).toEqual([
      ['guarded', true],
      ['unguarded', undefined],
    ]);
    const text = renderPlanText(plan);
    expect(text).toContain(
      '  1. guarded [shell, only while this host is the Patroni leader]\n' +
        '     guard: GET /patroni and GET /cluster just before; refused if the host no longer leads\n' +
        '     on db1, db2:\n',
    );
    expect(text).toContain('  2. unguarded [shell]\n     on db1, db2:\n');
    expect(text.match(/guard: GET \/patroni/g)).toHaveLength(1);
    expect(renderPlanMarkdown(plan)).toContain('requires leader');
  });

  it('requires_leader: if_patroni guards a step only where some host has patroni settings', () => {
    const inv = inventory();
    const pb = playbook(
      `
- name: everywhere
  hosts: all
  steps:
    - name: on all
      requires_leader: if_patroni
      shell: "true"
    - name: on web1
      hosts: web1
      requires_leader: if_patroni
      shell: "true"
`,
      inv,
    );
    expect(steps(planOf(pb, inv)).map((s) => [s.title, s.requiresLeader])).toEqual([
      ['on all', true],
      ['on web1', undefined],
    ]);
  });
});

describe('patroni.switchover in the plan', () => {
  it('needs approval, asks its own question, and shows the REST calls', () => {
    const inv = inventory();
    const plan = planOf(
      playbook(
        `
- name: switch
  hosts: patroni_leader
  vars: { target: db1 }
  steps:
    - patroni.switchover: { candidate: "{{ target }}" }
`,
        inv,
      ),
      inv,
    );
    const text = renderPlanText(plan);
    expect(steps(plan)[0]!.confirm).toBe('Switch the Patroni leader over to db1?');
    expect(text).toContain(
      '  1. patroni.switchover [patroni.switchover, needs approval]\n' +
        '     approval: Switch the Patroni leader over to db1?\n',
    );
    expect(text).toContain('HTTP GET http://10.0.0.1:8008/cluster\n');
    expect(text).toContain(
      'HTTP POST http://10.0.0.2:8008/switchover {"leader":"(the current leader)","candidate":"db1"}\n',
    );
  });

  it('confirm: false leaves the approval in place; a question of the playbook replaces it', () => {
    const inv = inventory();
    const plan = planOf(
      playbook(
        `
- name: switch
  hosts: db1
  steps:
    - name: no gate?
      confirm: false
      patroni.switchover: { candidate: db2 }
    - name: own words
      confirm: "Hand over to db2 now?"
      patroni.switchover: { candidate: db2 }
`,
        inv,
      ),
      inv,
    );
    const text = renderPlanText(plan);
    expect(text).toContain(
      '1. no gate? [patroni.switchover, needs approval]\n     approval: Switch the Patroni leader over to db2?\n',
    );
    expect(text).toContain(
      '2. own words [patroni.switchover, needs approval]\n     approval: Hand over to db2 now?\n',
    );
  });
});

describe('previews (plan --check) as text', () => {
  const base: HostStepPlan = { host: 'db1', status: 'runs', plan: { action: 'run chef-client', ops: [] } };

  it('previewLines: nothing without a preview; summary and indented lines; an error', () => {
    expect(previewLines(base)).toEqual([]);
    expect(
      previewLines({
        ...base,
        preview: { summary: '2/31 resources would be updated', lines: ['file[/etc/motd]', 'service[nginx]'] },
      }),
    ).toEqual([
      'preview (asked the host, nothing changed): 2/31 resources would be updated',
      '  file[/etc/motd]',
      '  service[nginx]',
    ]);
    expect(
      previewLines({ ...base, preview: { error: 'not previewed: role known only after apply' } }),
    ).toEqual(['preview: not previewed: role known only after apply']);
  });

  it('a preview prints under its host in the plan text, and hosts with different previews are not grouped', () => {
    const inv = inventory();
    const plan = planOf(playbook('- name: p\n  hosts: db1:db2\n  steps:\n    - shell: "true"\n', inv), inv);
    const [h1, h2] = steps(plan)[0]!.hosts;
    h1!.preview = { summary: '1 change', lines: ['template[/etc/x]'] };
    h2!.preview = { error: 'ssh: connection refused' };
    const text = renderPlanText(plan);
    expect(text).toContain(
      '     on db1:\n' +
        '       run command:\n' +
        '         $ true\n' +
        '       preview (asked the host, nothing changed): 1 change\n' +
        '         template[/etc/x]\n' +
        '     on db2:\n' +
        '       run command:\n' +
        '         $ true\n' +
        '       preview: ssh: connection refused\n',
    );
    expect(text).not.toContain('on db1, db2:');
  });
});

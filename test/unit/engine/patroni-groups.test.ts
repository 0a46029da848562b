// Leader discovery (patroni_leader / patroni_replicas) against fake Patroni REST APIs; the real
// cluster is in test/integration/patroni-leader.test.ts.
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { usesDynamicGroups } from '../../../src/engine/hosts.js';
import { resolvePatroniGroups } from '../../../src/engine/patroni-groups.js';
import { ConnectionError, formatProblem } from '../../../src/errors.js';
import { applyPatroniGroups, describePatroniGroups } from '../../../src/inventory/dynamic-groups.js';
import { loadInventory, type PatroniGroups } from '../../../src/inventory/inventory.js';
import { matchHosts } from '../../../src/inventory/patterns.js';
import type { Playbook } from '../../../src/playbook/model.js';
import { loadPlaybook } from '../../../src/playbook/validate.js';
import {
  closeFakes,
  cluster3,
  cluster4,
  deadUrl,
  type FakePatroni,
  fakePatroni,
  inventoryOf,
  memberStatus,
  Raw,
  removeTemps,
  writeTemp,
} from '../helpers/fake-patroni.js';

afterEach(closeFakes);
afterAll(removeTemps);

/** An inventory line for a host whose Patroni API is at `url`. */
const host = (name: string, url: string, extra = '') =>
  `  ${name}: { transport: local, patroni: { url: "${url}", timeout: 1${extra} } }`;
const inventory = (...lines: string[]) => inventoryOf(`hosts:\n${lines.join('\n')}\n`);

/** Patroni 4.x member: /cluster with scope, /patroni with role primary/replica. */
const member4 = (scope: string, me: string, role: string, members: Parameters<typeof cluster4>[1]) =>
  fakePatroni({ '/cluster': cluster4(scope, members), '/patroni': memberStatus({ role, scope, name: me }) });

function playbook(yaml: string): Playbook {
  const r = loadPlaybook(writeTemp('pb.yml', yaml));
  expect(r.problems.map(formatProblem)).toEqual([]);
  return r.playbook!;
}

describe('usesDynamicGroups', () => {
  const play = (hosts: string, steps = '    - shell: "true"') =>
    `- name: p\n  hosts: "${hosts}"\n  steps:\n${steps}\n`;

  it.each<[string, string, boolean]>([
    ['a play on patroni_leader', play('patroni_leader'), true],
    ['a play on patroni_replicas', play('patroni_replicas'), true],
    ['a play on all', play('all'), false],
    ['an exclusion a:!patroni_leader', play('db1:!patroni_leader'), true],
    ['an intersection &patroni_replicas', play('dbs:&patroni_replicas'), true],
    ['a comma list with spaces', play('dbs, patroni_replicas'), true],
    ['names that only contain a dynamic group', play('patroni_leaders:old_patroni_replicas:dbs'), false],
    [
      "a block's hosts",
      play('all', '    - block:\n        - shell: "true"\n      hosts: patroni_replicas'),
      true,
    ],
    ["a step's hosts", play('all', '    - shell: "true"\n      hosts: "all:!patroni_leader"'), true],
    [
      "a step's hosts in a block's rescue",
      play(
        'all',
        '    - block:\n        - shell: "true"\n      rescue:\n        - shell: "true"\n          hosts: patroni_leader',
      ),
      true,
    ],
    [
      "a block's hosts inside a block's always",
      play(
        'all',
        '    - block:\n        - shell: "true"\n      always:\n        - block:\n            - shell: "true"\n          hosts: "&patroni_replicas"',
      ),
      true,
    ],
    [
      "a step's hosts in the play's always",
      `${play('all')}  always:\n    - shell: "true"\n      hosts: patroni_leader\n`,
      true,
    ],
    [
      "a play's rescue that names none",
      `${play('all')}  rescue:\n    - shell: "true"\n      hosts: dbs\n`,
      false,
    ],
    // A value that reads the group has none unless Patroni is asked first (basebackup.yml's when).
    [
      "a block's when",
      play(
        'all',
        '    - block:\n        - shell: "true"\n      when: not (host.name in groups.patroni_replicas)',
      ),
      true,
    ],
    [
      "a step's when",
      play('all', '    - shell: "true"\n      when: host.name in groups.patroni_leader'),
      true,
    ],
    ["a step's parameter", play('all', '    - shell: "echo {{ groups.patroni_leader | first }}"'), true],
    [
      "a play's variable",
      `- name: p\n  hosts: all\n  vars: { l: "{{ groups.patroni_leader }}" }\n  steps:\n    - shell: "true"\n`,
      true,
    ],
    [
      'a when that names none',
      play('all', '    - shell: "true"\n      when: host.name in groups.dbs'),
      false,
    ],
  ])('%s → %s', (_what, yaml, expected) => {
    expect(usesDynamicGroups(playbook(yaml).plays)).toBe(expected);
  });

  it('is asked per play: only the play that names a dynamic group uses one', () => {
    const pb = playbook(`${play('all')}${play('patroni_leader')}`);
    expect(usesDynamicGroups(pb.plays)).toBe(true);
    expect(usesDynamicGroups([pb.plays[0]!])).toBe(false);
    expect(usesDynamicGroups([pb.plays[1]!])).toBe(true);
  });
});

describe('matchHosts with the dynamic groups', () => {
  // db1, db2 have Patroni settings (never contacted here); web1 has none.
  const fresh = () =>
    inventoryOf(
      `hosts:\n${host('db1', 'http://127.0.0.1:9')}\n${host('db2', 'http://127.0.0.1:9')}\n  web1: { transport: local }\ngroups:\n  dbs: { hosts: [db1, db2] }\n`,
    );
  const resolved: PatroniGroups = {
    at: '2026-11-25T10:00:00.000Z',
    clusters: [{ scope: 'demo', leader: 'db2', timeline: 4, replicas: ['db1'], unknownMembers: [] }],
    groups: { patroni_leader: ['db2'], patroni_replicas: ['db1'] },
  };

  it.each<[string, string[], string[]]>([
    ['patroni_leader', ['db1', 'db2'], ['patroni_leader']],
    ['patroni_replicas', ['db1', 'db2'], ['patroni_replicas']],
    ['web1:patroni_leader', ['db1', 'db2', 'web1'], ['patroni_leader']],
    // Excluding an unresolved group excludes nothing: the plan shows every host the run may select.
    ['all:!patroni_leader', ['db1', 'db2', 'web1'], ['patroni_leader']],
    ['all:!patroni_replicas', ['db1', 'db2', 'web1'], ['patroni_replicas']],
    ['patroni_leader:patroni_replicas', ['db1', 'db2'], ['patroni_leader', 'patroni_replicas']],
  ])('unresolved: %j stands for the hosts with patroni settings → %j', (pattern, hosts, unresolved) => {
    expect(matchHosts(fresh(), pattern)).toEqual({ hosts, unmatched: [], unresolved });
  });

  it.each<[string, string[]]>([
    ['patroni_leader', ['db2']],
    ['patroni_replicas', ['db1']],
    ['all:!patroni_leader', ['db1', 'web1']],
    ['all:!patroni_replicas', ['db2', 'web1']],
    ['dbs:&patroni_replicas', ['db1']],
    ['web1,patroni_leader', ['db2', 'web1']],
  ])('once applied, %j is an ordinary group → %j', (pattern, hosts) => {
    const inv = fresh();
    applyPatroniGroups(inv, resolved);
    expect(matchHosts(inv, pattern)).toEqual({ hosts, unmatched: [], unresolved: [] });
  });

  it('applyPatroniGroups keeps what was resolved on the inventory', () => {
    const inv = fresh();
    expect(inv.dynamic).toBeUndefined();
    applyPatroniGroups(inv, resolved);
    expect(inv.dynamic).toBe(resolved);
    expect(inv.groups.get('patroni_leader')).toEqual(['db2']);
    expect(inv.groups.get('dbs')).toEqual(['db1', 'db2']);
  });
});

describe('inventory: dynamic group names and patroni settings', () => {
  it('a user-defined group named patroni_leader or patroni_replicas is a problem at its key', () => {
    const file = writeTemp(
      'inv.yml',
      'hosts:\n  db1: { transport: local }\ngroups:\n  patroni_leader:\n    hosts: [db1]\n  dbs:\n    hosts: [db1]\n  patroni_replicas: { hosts: [db1] }\n',
    );
    const r = loadInventory(file);
    expect(r.problems.map(formatProblem)).toEqual([
      `${file}:4:3: groups.patroni_leader: "patroni_leader" is a dynamic group, resolved from Patroni at run start`,
      `${file}:8:3: groups.patroni_replicas: "patroni_replicas" is a dynamic group, resolved from Patroni at run start`,
    ]);
  });

  it('patroni.member defaults to the host name; config and patronictl are carried over', () => {
    const inv = inventory(
      host('db1', 'http://10.0.0.1:8008/'),
      host(
        'db2',
        'https://10.0.0.2:8008',
        ', member: pg2, config: /etc/patroni/patroni.yml, patronictl: /usr/bin/patronictl',
      ),
    );
    expect(inv.hosts.get('db1')!.patroni).toMatchObject({
      url: 'http://10.0.0.1:8008',
      member: 'db1',
      patronictl: 'patronictl',
      timeoutMs: 1000,
    });
    expect(inv.hosts.get('db1')!.patroni!.config).toBeUndefined();
    expect(inv.hosts.get('db2')!.patroni).toMatchObject({
      url: 'https://10.0.0.2:8008',
      member: 'pg2',
      config: '/etc/patroni/patroni.yml',
      patronictl: '/usr/bin/patronictl',
    });
  });
});

describe('resolvePatroniGroups', () => {
  it('Patroni 3.0: /cluster has no scope, so it is read from /patroni', async () => {
    const members = [
      { name: 'db1', role: 'leader', timeline: 3 },
      { name: 'db2', role: 'replica', timeline: 3 },
    ];
    const a = await fakePatroni({
      '/cluster': cluster3(members),
      '/patroni': memberStatus({ role: 'master', scope: 'batman', version: '3.0.4', timeline: 3 }),
    });
    const b = await fakePatroni({
      '/cluster': cluster3(members),
      '/patroni': memberStatus({ role: 'replica', scope: 'batman', version: '3.0.4', timeline: 3 }),
    });
    const inv = inventory(host('db1', a.url), host('db2', b.url));
    const g = await resolvePatroniGroups(inv);
    expect(g.clusters).toEqual([
      { scope: 'batman', leader: 'db1', timeline: 3, replicas: ['db2'], unknownMembers: [] },
    ]);
    expect(g.groups).toEqual({ patroni_leader: ['db1'], patroni_replicas: ['db2'] });
    expect(g.at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d/);
    expect(a.requests).toContain('GET /patroni');
    expect(describePatroniGroups(g)).toEqual([
      'Patroni cluster batman: leader db1 (timeline 3); replicas db2',
    ]);
  });

  it('Patroni 3.0 during a switchover: a member whose /patroni fails is silent, not a cluster of its own', async () => {
    // pg1 still says it leads, but its /patroni does not answer (demoting); pg2 already leads.
    const a = await fakePatroni({
      '/cluster': cluster3([
        { name: 'pg1', role: 'leader', timeline: 3 },
        { name: 'pg2', role: 'replica', timeline: 3 },
      ]),
    });
    const b = await fakePatroni({
      '/cluster': cluster3([
        { name: 'pg1', role: 'replica', timeline: 4 },
        { name: 'pg2', role: 'leader', timeline: 4 },
      ]),
      '/patroni': memberStatus({ role: 'master', scope: 'batman', version: '3.0.2', timeline: 4 }),
    });
    const g = await resolvePatroniGroups(inventory(host('pg1', a.url), host('pg2', b.url)), undefined, 0);
    expect(g.groups).toEqual({ patroni_leader: ['pg2'], patroni_replicas: ['pg1'] });
    expect(g.clusters).toHaveLength(1);
  });

  it('a cluster without a leader is refused (after settling), never an empty patroni_leader', async () => {
    const members = [
      { name: 'db1', role: 'replica', timeline: 2 },
      { name: 'db2', role: 'replica', timeline: 2 },
    ];
    const a = await member4('demo', 'db1', 'replica', members);
    const b = await member4('demo', 'db2', 'replica', members);
    await expect(
      resolvePatroniGroups(inventory(host('db1', a.url), host('db2', b.url)), undefined, 300),
    ).rejects.toThrow('Patroni cluster demo has no leader');
  });

  it('Patroni 4.x: scope in /cluster (no /patroni needed); sync_standby and quorum_standby are replicas', async () => {
    const members = [
      { name: 'db1', role: 'sync_standby', timeline: 7 },
      { name: 'db2', role: 'leader', timeline: 7 },
      { name: 'db3', role: 'quorum_standby', timeline: 7 },
      { name: 'db4', role: 'replica', timeline: 7, state: 'running' },
    ];
    const fakes: FakePatroni[] = [];
    for (const m of members)
      fakes.push(await member4('demo', m.name, m.role === 'leader' ? 'primary' : 'replica', members));
    const inv = inventory(...fakes.map((f, i) => host(`db${i + 1}`, f.url)));
    const g = await resolvePatroniGroups(inv);
    expect(g.clusters).toEqual([
      { scope: 'demo', leader: 'db2', timeline: 7, replicas: ['db1', 'db3', 'db4'], unknownMembers: [] },
    ]);
    expect(g.groups).toEqual({ patroni_leader: ['db2'], patroni_replicas: ['db1', 'db3', 'db4'] });
    for (const f of fakes) expect(f.requests).toEqual(['GET /cluster']);
  });

  it('a standby cluster: its standby_leader is the patroni_leader', async () => {
    const members = [
      { name: 'db1', role: 'standby_leader', timeline: 2 },
      { name: 'db2', role: 'replica', timeline: 2 },
    ];
    const a = await member4('dr', 'db1', 'standby_leader', members);
    const b = await member4('dr', 'db2', 'replica', members);
    const g = await resolvePatroniGroups(inventory(host('db1', a.url), host('db2', b.url)));
    expect(g.groups).toEqual({ patroni_leader: ['db1'], patroni_replicas: ['db2'] });
    expect(g.clusters[0]).toMatchObject({ scope: 'dr', leader: 'db1', timeline: 2 });
  });

  it('maps members to hosts by patroni.member when the names differ', async () => {
    const members = [
      { name: 'pg1', role: 'replica', timeline: 5 },
      { name: 'pg2', role: 'leader', timeline: 5 },
    ];
    const a = await member4('demo', 'pg1', 'replica', members);
    const b = await member4('demo', 'pg2', 'primary', members);
    const mapped = await resolvePatroniGroups(
      inventory(host('db-a', a.url, ', member: pg1'), host('db-b', b.url, ', member: pg2')),
    );
    expect(mapped.groups).toEqual({ patroni_leader: ['db-b'], patroni_replicas: ['db-a'] });
    expect(mapped.clusters).toEqual([
      { scope: 'demo', leader: 'db-b', timeline: 5, replicas: ['db-a'], unknownMembers: [] },
    ]);
    // Without the mapping no member is known by the host names: refused rather than an empty
    // patroni_leader that would make a play silently do nothing.
    await expect(resolvePatroniGroups(inventory(host('db-a', a.url), host('db-b', b.url)))).rejects.toThrow(
      'its leader pg2 is no host of the inventory (set patroni.member',
    );
  });

  it('lists members that are not in the inventory as unknownMembers', async () => {
    const members = [
      { name: 'db1', role: 'leader', timeline: 9 },
      { name: 'db2', role: 'replica', timeline: 9 },
      { name: 'dr-east', role: 'replica', timeline: 9 },
    ];
    const a = await member4('demo', 'db1', 'primary', members);
    const b = await member4('demo', 'db2', 'replica', members);
    const g = await resolvePatroniGroups(inventory(host('db1', a.url), host('db2', b.url)));
    expect(g.clusters).toEqual([
      { scope: 'demo', leader: 'db1', timeline: 9, replicas: ['db2'], unknownMembers: ['dr-east'] },
    ]);
    expect(describePatroniGroups(g)).toEqual([
      'Patroni cluster demo: leader db1 (timeline 9); replicas db2; members not in the inventory: dr-east',
    ]);
  });

  it('one member unreachable: the other one describes the cluster, the silent host still grouped', async () => {
    const members = [
      { name: 'db1', role: 'leader', timeline: 4 },
      { name: 'db2', role: 'replica', timeline: 4 },
    ];
    const a = await member4('demo', 'db1', 'primary', members);
    const g = await resolvePatroniGroups(inventory(host('db1', a.url), host('db2', await deadUrl())));
    expect(g.groups).toEqual({ patroni_leader: ['db1'], patroni_replicas: ['db2'] });
    // And with the leader's API down, the replica's view still names the leader.
    const b = await member4('demo', 'db2', 'replica', members);
    const g2 = await resolvePatroniGroups(inventory(host('db1', await deadUrl()), host('db2', b.url)));
    expect(g2.groups).toEqual({ patroni_leader: ['db1'], patroni_replicas: ['db2'] });
  });

  it('no API answers: an error naming every host and URL', async () => {
    const u1 = await deadUrl();
    const u2 = await deadUrl();
    const err = await resolvePatroniGroups(inventory(host('db1', u1), host('db2', u2))).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(ConnectionError);
    const msg = (err as Error).message;
    expect(msg).toContain('no Patroni REST API answered');
    expect(msg).toContain(`Patroni REST API of db1 at ${u1} unreachable`);
    expect(msg).toContain(`Patroni REST API of db2 at ${u2} unreachable`);
  });

  it('an answer that is not JSON counts as no answer', async () => {
    const a = await fakePatroni({ '/cluster': new Raw(503, '<html>') });
    await expect(resolvePatroniGroups(inventory(host('db1', a.url)))).rejects.toThrow(
      /no Patroni REST API answered:\n {2}Patroni db1: GET \/cluster answered 503 without JSON/,
    );
  });

  it('no host with patroni settings: both groups empty, and no host without them is ever asked', async () => {
    const none = await resolvePatroniGroups(inventoryOf('hosts:\n  web1: { transport: local }\n'));
    expect(none.groups).toEqual({ patroni_leader: [], patroni_replicas: [] });
    expect(none.clusters).toEqual([]);
    const members = [{ name: 'db1', role: 'leader' }];
    const a = await member4('demo', 'db1', 'primary', members);
    const g = await resolvePatroniGroups(
      inventoryOf(`hosts:\n${host('db1', a.url)}\n  web1: { transport: local }\n`),
    );
    expect(g.groups).toEqual({ patroni_leader: ['db1'], patroni_replicas: [] });
  });

  it('a member that sees no leader while another names one is a disagreement too', async () => {
    const a = await member4('demo', 'db1', 'primary', [
      { name: 'db1', role: 'leader' },
      { name: 'db2', role: 'replica' },
    ]);
    const b = await member4('demo', 'db2', 'replica', [
      { name: 'db1', role: 'replica', state: 'stopped' },
      { name: 'db2', role: 'replica' },
    ]);
    await expect(
      resolvePatroniGroups(inventory(host('db1', a.url), host('db2', b.url)), undefined, 0),
    ).rejects.toThrow('disagree on the leader (db1 says db1, db2 says none)');
  });

  it('persistent disagreement: members are asked again until settleMs, then an error saying what each says', async () => {
    const a = await member4('demo', 'db1', 'primary', [
      { name: 'db1', role: 'leader' },
      { name: 'db2', role: 'replica' },
    ]);
    const b = await member4('demo', 'db2', 'primary', [
      { name: 'db1', role: 'replica' },
      { name: 'db2', role: 'leader' },
    ]);
    const t0 = Date.now();
    const err = await resolvePatroniGroups(
      inventory(host('db1', a.url), host('db2', b.url)),
      undefined,
      300,
    ).catch((e: unknown) => e);
    const elapsed = Date.now() - t0;
    expect(err).toBeInstanceOf(ConnectionError);
    expect((err as Error).message).toContain(
      'Patroni members of demo disagree on the leader (db1 says db1, db2 says db2)',
    );
    expect(elapsed).toBeGreaterThanOrEqual(250);
    expect(elapsed).toBeLessThan(3000);
    expect(a.requests.filter((r) => r === 'GET /cluster').length).toBeGreaterThan(1);
    expect(b.requests.filter((r) => r === 'GET /cluster').length).toBeGreaterThan(1);
  });

  it('an abort ends the wait for a disagreement to settle', async () => {
    const a = await member4('demo', 'db1', 'primary', [
      { name: 'db1', role: 'leader' },
      { name: 'db2', role: 'replica' },
    ]);
    const b = await member4('demo', 'db2', 'primary', [
      { name: 'db1', role: 'replica' },
      { name: 'db2', role: 'leader' },
    ]);
    const ac = new AbortController();
    setTimeout(() => ac.abort(new Error('stopped by the operator')), 100);
    const t0 = Date.now();
    await expect(
      resolvePatroniGroups(inventory(host('db1', a.url), host('db2', b.url)), ac.signal, 10_000),
    ).rejects.toThrow();
    expect(Date.now() - t0).toBeLessThan(1500);
  });

  it('a transient disagreement that settles within settleMs resolves to the new leader', async () => {
    const before = [
      { name: 'db1', role: 'leader', timeline: 1 },
      { name: 'db2', role: 'replica', timeline: 1 },
    ];
    const after = [
      { name: 'db1', role: 'replica', timeline: 2 },
      { name: 'db2', role: 'leader', timeline: 2 },
    ];
    // db1 still believes it leads on its first answer; db2 already leads.
    const a = await fakePatroni({
      '/cluster': (n: number) => cluster4('demo', n === 0 ? before : after),
      '/patroni': memberStatus({ role: 'replica', scope: 'demo', name: 'db1' }),
    });
    const b = await member4('demo', 'db2', 'primary', after);
    const g = await resolvePatroniGroups(inventory(host('db1', a.url), host('db2', b.url)), undefined, 3000);
    expect(g.groups).toEqual({ patroni_leader: ['db2'], patroni_replicas: ['db1'] });
    expect(g.clusters[0]).toMatchObject({ leader: 'db2', timeline: 2 });
  });

  it('two clusters in one inventory (4.x and 3.x): groups span both, in inventory order', async () => {
    const alpha = [
      { name: 'a1', role: 'leader', timeline: 3 },
      { name: 'a2', role: 'replica', timeline: 3 },
    ];
    const beta = [
      { name: 'b1', role: 'replica', timeline: 8 },
      { name: 'b2', role: 'leader', timeline: 8 },
    ];
    const a1 = await member4('alpha', 'a1', 'primary', alpha);
    const a2 = await member4('alpha', 'a2', 'replica', alpha);
    const b1 = await fakePatroni({
      '/cluster': cluster3(beta),
      '/patroni': memberStatus({ role: 'replica', scope: 'beta', version: '3.0.4' }),
    });
    const b2 = await fakePatroni({
      '/cluster': cluster3(beta),
      '/patroni': memberStatus({ role: 'master', scope: 'beta', version: '3.0.4' }),
    });
    const g = await resolvePatroniGroups(
      inventory(host('b1', b1.url), host('a1', a1.url), host('b2', b2.url), host('a2', a2.url)),
    );
    // inventory order: b1, a1, b2, a2
    expect(g.groups).toEqual({ patroni_leader: ['a1', 'b2'], patroni_replicas: ['b1', 'a2'] });
    expect(g.clusters).toHaveLength(2);
    expect(g.clusters.find((c) => c.scope === 'alpha')).toEqual({
      scope: 'alpha',
      leader: 'a1',
      timeline: 3,
      replicas: ['a2'],
      unknownMembers: [],
    });
    expect(g.clusters.find((c) => c.scope === 'beta')).toEqual({
      scope: 'beta',
      leader: 'b2',
      timeline: 8,
      replicas: ['b1'],
      unknownMembers: [],
    });
    expect(describePatroniGroups(g).sort()).toEqual([
      'Patroni cluster alpha: leader a1 (timeline 3); replicas a2',
      'Patroni cluster beta: leader b2 (timeline 8); replicas b1',
    ]);
  });

  it('two clusters with the same member names: each member maps to the host of its own cluster', async () => {
    const alpha = [
      { name: 'pg1', role: 'leader' },
      { name: 'pg2', role: 'replica' },
    ];
    const beta = [
      { name: 'pg1', role: 'replica' },
      { name: 'pg2', role: 'leader' },
    ];
    const fa1 = await member4('alpha', 'pg1', 'primary', alpha);
    const fa2 = await member4('alpha', 'pg2', 'replica', alpha);
    const fb1 = await member4('beta', 'pg1', 'replica', beta);
    const fb2 = await member4('beta', 'pg2', 'primary', beta);
    const g = await resolvePatroniGroups(
      inventory(
        host('a1', fa1.url, ', member: pg1'),
        host('a2', fa2.url, ', member: pg2'),
        host('b1', fb1.url, ', member: pg1'),
        host('b2', fb2.url, ', member: pg2'),
      ),
    );
    expect(g.groups).toEqual({ patroni_leader: ['a1', 'b2'], patroni_replicas: ['a2', 'b1'] });
  });

  // BUG: a host whose API did not answer is matched to a member by name alone, against every
  // cluster: here a1 (alpha's pg1, down) is taken for beta's pg1 too, and beta's leader b1 (also
  // down) is left out of patroni_leader. Matching silent hosts by the member's api_url (or only
  // when the name is unambiguous) would keep them in their own cluster.
  it('two clusters with the same member names and both leaders down: silent hosts stay in their cluster', async () => {
    const urlA1 = await deadUrl();
    const urlB1 = await deadUrl();
    const alpha = [
      { name: 'pg1', role: 'leader', url: urlA1 },
      { name: 'pg2', role: 'replica' },
    ];
    const beta = [
      { name: 'pg1', role: 'leader', url: urlB1 },
      { name: 'pg2', role: 'replica' },
    ];
    const fa2 = await member4('alpha', 'pg2', 'replica', alpha);
    const fb2 = await member4('beta', 'pg2', 'replica', beta);
    const g = await resolvePatroniGroups(
      inventory(
        host('a1', urlA1, ', member: pg1'),
        host('a2', fa2.url, ', member: pg2'),
        host('b1', urlB1, ', member: pg1'),
        host('b2', fb2.url, ', member: pg2'),
      ),
    );
    expect(g.groups).toEqual({ patroni_leader: ['a1', 'b1'], patroni_replicas: ['a2', 'b2'] });
  });
});

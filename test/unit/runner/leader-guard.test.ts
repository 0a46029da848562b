// requires_leader's guard against fake Patroni REST APIs; the switchover mid-run against a real
// cluster is in test/integration/patroni-leader.test.ts.
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { StepFailure } from '../../../src/errors.js';
import type { InventoryHost } from '../../../src/inventory/inventory.js';
import { checkLeader } from '../../../src/runner/leader-guard.js';
import {
  closeFakes,
  cluster3,
  cluster4,
  deadUrl,
  fakePatroni,
  inventoryOf,
  memberStatus,
  Raw,
  removeTemps,
} from '../helpers/fake-patroni.js';

afterEach(closeFakes);
afterAll(removeTemps);

/** The inventory host `name` whose Patroni API is at `url`. */
function hostAt(name: string, url: string, member?: string): InventoryHost {
  const m = member ? `, member: ${member}` : '';
  return inventoryOf(
    `hosts:\n  ${name}: { transport: local, patroni: { url: "${url}", timeout: 1${m} } }\n`,
  ).hosts.get(name)!;
}

/** The StepFailure checkLeader rejects with (fails the test if it resolves or throws anything else). */
async function refusal(host: InventoryHost): Promise<string> {
  const err = await checkLeader(host).then(
    (line) => new Error(`resolved: ${line}`),
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(StepFailure);
  return (err as Error).message;
}

const twoMembers = (leader: string, timeline = 1) =>
  ['db1', 'db2'].map((name) => ({ name, role: name === leader ? 'leader' : 'replica', timeline }));

describe('checkLeader', () => {
  it('Patroni 4.x: the leader per /cluster with role primary is confirmed, with scope and timeline', async () => {
    const f = await fakePatroni({
      '/cluster': cluster4('demo', twoMembers('db1', 5)),
      '/patroni': memberStatus({ role: 'primary', scope: 'demo', name: 'db1', timeline: 5 }),
    });
    await expect(checkLeader(hostAt('db1', f.url))).resolves.toBe(
      'leader confirmed: db1 leads demo (timeline 5)',
    );
    expect(f.requests.sort()).toEqual(['GET /cluster', 'GET /patroni']);
  });

  it('Patroni 3.0: role master, scope from /patroni, member name different from the host name', async () => {
    const members = [
      { name: 'pg1', role: 'replica', timeline: 3 },
      { name: 'pg2', role: 'leader', timeline: 3 },
    ];
    const f = await fakePatroni({
      '/cluster': cluster3(members),
      '/patroni': memberStatus({ role: 'master', scope: 'batman', version: '3.0.4', timeline: 3 }),
    });
    await expect(checkLeader(hostAt('db-b', f.url, 'pg2'))).resolves.toBe(
      'leader confirmed: pg2 leads batman (timeline 3)',
    );
  });

  it('the standby leader of a standby cluster counts as its leader', async () => {
    const f = await fakePatroni({
      '/cluster': cluster4('dr', [
        { name: 'db1', role: 'standby_leader', timeline: 2 },
        { name: 'db2', role: 'replica', timeline: 2 },
      ]),
      '/patroni': memberStatus({ role: 'standby_leader', scope: 'dr', name: 'db1', timeline: 2 }),
    });
    await expect(checkLeader(hostAt('db1', f.url))).resolves.toBe(
      'leader confirmed: db1 leads dr (timeline 2)',
    );
  });

  it('a replica: refused, naming the actual leader and the role it reports', async () => {
    const f = await fakePatroni({
      '/cluster': cluster4('demo', twoMembers('db2', 6)),
      '/patroni': memberStatus({ role: 'replica', scope: 'demo', name: 'db1', timeline: 6 }),
    });
    const msg = await refusal(hostAt('db1', f.url));
    expect(msg).toContain(
      'requires_leader: db1 (member db1) is not the leader of demo now: the leader is db2 and db1 reports role replica.',
    );
    expect(msg).toContain('a switchover or failover happened since; refusing the step');
  });

  it('a member mapped by patroni.member is named by both names in the refusal', async () => {
    const f = await fakePatroni({
      '/cluster': cluster4('demo', [
        { name: 'pg1', role: 'replica' },
        { name: 'pg2', role: 'leader' },
      ]),
      '/patroni': memberStatus({ role: 'replica', scope: 'demo', name: 'pg1' }),
    });
    expect(await refusal(hostAt('db-a', f.url, 'pg1'))).toContain(
      'db-a (member pg1) is not the leader of demo now: the leader is pg2 and pg1 reports role replica',
    );
  });

  it('named leader in /cluster but already demoted in its own /patroni: refused', async () => {
    const f = await fakePatroni({
      '/cluster': cluster4('demo', twoMembers('db1')),
      '/patroni': memberStatus({ role: 'demoted', scope: 'demo', name: 'db1' }),
    });
    expect(await refusal(hostAt('db1', f.url))).toContain(
      'is not the leader of demo now: the leader is db1 and db1 reports role demoted',
    );
  });

  it('role primary in /patroni but another member holds the leader key in /cluster: refused', async () => {
    const f = await fakePatroni({
      '/cluster': cluster4('demo', twoMembers('db2')),
      '/patroni': memberStatus({ role: 'primary', scope: 'demo', name: 'db1' }),
    });
    expect(await refusal(hostAt('db1', f.url))).toContain('the leader is db2 and db1 reports role primary');
  });

  it('no leader at all (a failover under way): refused with "(none)"', async () => {
    const f = await fakePatroni({
      '/cluster': cluster4('demo', [
        { name: 'db1', role: 'replica', state: 'running' },
        { name: 'db2', role: 'replica', state: 'stopped' },
      ]),
      '/patroni': memberStatus({ role: 'replica', scope: 'demo', name: 'db1' }),
    });
    expect(await refusal(hostAt('db1', f.url))).toContain(
      'the leader is (none) and db1 reports role replica',
    );
  });

  it('unreachable API: refused, "cannot confirm", with the connection error', async () => {
    const url = await deadUrl();
    const msg = await refusal(hostAt('db1', url));
    expect(msg).toMatch(
      new RegExp(
        `^requires_leader: cannot confirm db1 is the Patroni leader \\(Patroni REST API of db1 at ${url} unreachable: .+\\); refusing the step$`,
      ),
    );
  });

  it('an answer that is not JSON: refused, "cannot confirm"', async () => {
    const f = await fakePatroni({
      '/cluster': new Raw(502, '<html>bad gateway</html>'),
      '/patroni': memberStatus({ role: 'primary', scope: 'demo', name: 'db1' }),
    });
    expect(await refusal(hostAt('db1', f.url))).toContain(
      'cannot confirm db1 is the Patroni leader (Patroni db1: GET /cluster answered 502 without JSON: bad gateway)',
    );
  });

  it('a host without patroni settings: refused without asking anything', async () => {
    const h = inventoryOf('hosts:\n  web1: { transport: local }\n').hosts.get('web1')!;
    expect(await refusal(h)).toBe(
      'requires_leader: host web1 has no patroni settings (patroni.url) in the inventory',
    );
  });
});

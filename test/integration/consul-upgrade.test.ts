// playbooks/pg-major-upgrade.yml on a Patroni cluster whose DCS is Consul: a real Consul dev agent,
// two Patroni members on PostgreSQL 13 driven over a real sshd, upgraded to 15 (pg_upgrade --link,
// the replica rsynced, the DCS wiped with patronictl remove, which reads Consul from patroni.yml).
// The run holds its lock in Consul. Afterwards the servers are asked: both members on 15, the
// replica streaming, Patroni resumed, and Consul's keys of the scope on the new system identifier.
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from '../../tools/testenv/checks.js';
import {
  type ConsulServer,
  httpRequest,
  type PatroniCluster,
  type SshServer,
  startConsul,
  startPatroniCluster,
  startSshd,
} from '../../tools/testenv/index.js';
import { events, runCli } from './cli.js';
import { contents, expectMembers, failures, seed, upgradeInventory } from './upgrade-setup.js';

const PLAYBOOK = fileURLToPath(new URL('../../playbooks/pg-major-upgrade.yml', import.meta.url));

let consul: ConsulServer;
let sshd: SshServer;
let cluster: PatroniCluster | undefined;

beforeAll(async () => {
  [consul, sshd] = await Promise.all([startConsul(), startSshd()]);
  cluster = await startPatroniCluster({ consul, members: 2, version: 13 });
}, 90_000);
afterAll(async () => {
  await cluster?.stop();
  await sshd?.stop();
  await consul?.stop();
});

/** Consul's keys under a prefix with their decoded values. */
async function keys(prefix: string): Promise<Record<string, string>> {
  const r = await httpRequest('GET', `${consul.httpUrl}/v1/kv/${prefix}?recurse=true`);
  if (r.status === 404) return {};
  const out: Record<string, string> = {};
  for (const e of JSON.parse(r.body) as { Key: string; Value: string | null }[])
    out[e.Key.slice(prefix.length)] = e.Value ? Buffer.from(e.Value, 'base64').toString() : '';
  return out;
}

/** The system identifier in a member's pg_control. */
async function systemId(c: PatroniCluster, name: string): Promise<string> {
  const [r] = await sql<{ id: string }>(
    c.clientConfig(name),
    'select system_identifier::text as id from pg_control_system()',
  );
  return String(r?.id);
}

describe('pg-major-upgrade.yml on a Consul-backed Patroni cluster', () => {
  it('upgrades both members 13 → 15 with every row, the replica streaming, Patroni resumed, Consul on the new system identifier', async () => {
    const c = cluster!;
    const leader = await c.leader();
    const replica = c.members.find((m) => m.name !== leader)!.name;
    const prefix = `service/${c.scope}/`;
    const oldId = await systemId(c, leader);
    const before13 = await keys(prefix);
    expect(before13.initialize).toBe(oldId);
    expect(before13.leader).toBe(leader);
    await seed(c.clientConfig(leader));
    const before = await contents(c.clientConfig(leader));
    const { cwd } = await upgradeInventory(sshd, c, {
      dcs: `{ consul: "${consul.httpUrl}", scope: ${c.scope} }`,
    });
    const t0 = Date.now();
    const r = await runCli(['run', PLAYBOOK, '-i', 'inv.yml', '--yes', '--output', 'json'], { cwd });
    expect(r.code, failures(r.stdout) + r.stderr).toBe(0);
    console.log(`pg-major-upgrade.yml on Consul: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    expect(r.stdout + r.stderr).toContain(
      `lock: Patroni cluster ${c.scope} in its DCS (Consul ${consul.httpUrl}, session for 20 s)`,
    );
    const ev = events(r.stdout);
    const wipe = ev.find(
      (e) =>
        e.type === 'step_finished' &&
        e.stepType === 'patroni.remove_cluster' &&
        e.outputs &&
        (e.outputs as { removed?: boolean }).removed,
    );
    expect(wipe?.status).toBe('ok');

    // Both members on 15, the same leader, Patroni running and not paused on each.
    await expectMembers(c, '15', leader);
    const streaming = await sql<{ application_name: string }>(
      c.clientConfig(leader),
      "select application_name from pg_stat_replication where state = 'streaming'",
    );
    expect(streaming.map((s) => s.application_name)).toEqual([replica]);
    expect(await contents(c.clientConfig(leader))).toEqual(before);
    expect(await contents(c.clientConfig(replica))).toEqual(before);
    const config = JSON.parse((await httpRequest('GET', `${c.members[0]!.restUrl}/config`)).body);
    expect(config.pause).toBeFalsy();

    // Consul: the scope's state is the new cluster's (pg_upgrade's initdb made a new system
    // identifier; the wipe let Patroni write it), both members registered, no pause, the run's
    // lock released.
    const newId = await systemId(c, leader);
    expect(newId).not.toBe(oldId);
    expect(await systemId(c, replica)).toBe(newId);
    const after = await keys(prefix);
    expect(after.initialize).toBe(newId);
    expect(after.leader).toBe(leader);
    expect(
      Object.keys(after)
        .filter((k) => k.startsWith('members/'))
        .sort(),
    ).toEqual(c.members.map((m) => `members/${m.name}`).sort());
    for (const m of c.members) {
      const member = JSON.parse(after[`members/${m.name}`] ?? '{}');
      expect(member.state, m.name).toBe('running');
      expect(String(member.version ?? ''), m.name).toMatch(/^3\./);
    }
    expect(JSON.parse(after.config ?? '{}').pause).toBeFalsy();
    expect(await keys(`pgrunbook/locks/${c.scope}`)).toEqual({});
  }, 240_000);
});

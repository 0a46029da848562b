// Leader discovery, the leader guard, and the REST-driven Patroni steps against a real etcd and
// a two-member Patroni cluster (PostgreSQL 15). The tests share one cluster and run in order:
// the switchover tests leave the leader where the next test expects it.
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { type EtcdServer, httpRequest, type PatroniCluster } from '../../tools/testenv/index.js';
import { events, journalOf, outputsOf, runCli, runIds, startCli, waitUntil, workdir } from './cli.js';
import { usePatroniCluster } from './patroni-cluster.js';

let etcd: EtcdServer;
let cluster: PatroniCluster;

usePatroniCluster((lab) => {
  ({ etcd, cluster } = lab);
});

/** Inventory hosts named db-<member>, so host and member names differ (patroni.member maps them). */
const hostOf = (member: string) => `db-${member}`;
const inventory = (extra = '') =>
  `hosts:\n${cluster.members
    .map(
      (m) =>
        `  ${hostOf(m.name)}: { transport: local, patroni: { url: "${m.restUrl}", member: ${m.name}, timeout: 2${extra} } }`,
    )
    .join('\n')}\n`;

async function memberStatus(name: string): Promise<Record<string, unknown>> {
  const m = cluster.members.find((x) => x.name === name)!;
  return JSON.parse((await httpRequest('GET', `${m.restUrl}/patroni`)).body);
}

/** Switches over outside pgrunbook (as another operator would) and waits until it settled. */
async function switchoverTo(candidate: string): Promise<void> {
  const leader = await cluster.leader();
  const m = cluster.members[0]!;
  const r = await httpRequest('POST', `${m.restUrl}/switchover`, { leader, candidate }, 30_000);
  expect(r.status, r.body).toBe(200);
  await waitUntilAsync(`${candidate} leads`, async () => (await cluster.leader()) === candidate);
  await waitUntilAsync('both members run', async () => {
    const st = await Promise.all(cluster.members.map((x) => memberStatus(x.name)));
    return st.every((s) => s.state === 'running');
  });
}

async function waitUntilAsync(what: string, ready: () => Promise<boolean>, timeoutMs = 60_000) {
  const t0 = Date.now();
  for (;;) {
    try {
      if (await ready()) return;
    } catch {
      // not answering yet
    }
    if (Date.now() - t0 > timeoutMs) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('Patroni leader discovery and guard', () => {
  it('the plan names the current leader (plan --check), and an offline plan says it is resolved at run start', async () => {
    const leader = await cluster.leader();
    const replica = cluster.members.find((m) => m.name !== leader)!.name;
    const cwd = workdir({
      'inv.yml': inventory(),
      'pb.yml': `
- name: on the leader
  hosts: patroni_leader
  steps:
    - shell: "echo leader"
- name: on the replicas
  hosts: patroni_replicas
  steps:
    - shell: "echo replica"
`,
    });
    const checked = await runCli(['plan', 'pb.yml', '-i', 'inv.yml', '--check'], { cwd });
    expect(checked.code, checked.stderr).toBe(0);
    expect(checked.stdout).toContain(`Patroni cluster ${cluster.scope}: leader ${hostOf(leader)}`);
    expect(checked.stdout).toContain(`hosts: patroni_leader → ${hostOf(leader)}\n`);
    expect(checked.stdout).toContain(`hosts: patroni_replicas → ${hostOf(replica)}\n`);
    const md = await runCli(['plan', 'pb.yml', '-i', 'inv.yml', '--check', '--format', 'markdown'], { cwd });
    expect(md.stdout).toContain(`leader ${hostOf(leader)}`);
    const offline = await runCli(['plan', 'pb.yml', '-i', 'inv.yml'], { cwd });
    expect(offline.code).toBe(0);
    expect(offline.stdout).toContain('resolved from the Patroni REST API at run start');
    // A run resolves them too, and says so in the journal.
    const r = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json'], { cwd });
    expect(r.code, r.stderr).toBe(0);
    const plays = events(r.stdout).filter((e) => e.type === 'play_started');
    expect(plays.map((p) => p.hosts)).toEqual([[hostOf(leader)], [hostOf(replica)]]);
    const resolved = journalOf(cwd).find((e) => e.type === 'groups_resolved');
    expect(resolved).toMatchObject({
      groups: { patroni_leader: [hostOf(leader)], patroni_replicas: [hostOf(replica)] },
    });
  });

  it('after a switchover done outside the run, a step that requires the leader refuses and nothing after it runs', async () => {
    const leader = await cluster.leader();
    const other = cluster.members.find((m) => m.name !== leader)!.name;
    const dir = workdir();
    const cwd = workdir({
      'inv.yml': inventory(),
      'pb.yml': `
- name: leader work
  hosts: patroni_leader
  steps:
    - name: confirmed
      requires_leader: true
      shell: "echo first >> ${dir}/log"
    - name: waits for the operator
      shell: "while [ ! -e ${dir}/go ]; do sleep 0.1; done"
    - name: must not run on a demoted leader
      requires_leader: true
      shell: "echo second >> ${dir}/log"
`,
    });
    const { done } = startCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json'], { cwd });
    await waitUntil(
      'the run never reached the waiting step',
      () =>
        runIds(cwd).length > 0 &&
        journalOf(cwd).some((e) => e.type === 'step_started' && e.title === 'waits for the operator'),
    );
    await switchoverTo(other);
    writeFileSync(join(dir, 'go'), '');
    const r = await done;
    expect(r.code).toBe(1);
    const failed = events(r.stdout).find((e) => e.type === 'step_finished' && e.status === 'failed')!;
    expect(failed.title).toBe('must not run on a demoted leader');
    expect(String(failed.error)).toContain(`${hostOf(leader)} (member ${leader}) is not the leader`);
    expect(String(failed.error)).toContain(`the leader is ${other}`);
    // The first guarded step ran (and logged the confirmation); the second never did.
    expect(
      events(r.stdout).some((e) => e.type === 'step_output' && String(e.text).startsWith('leader confirmed')),
    ).toBe(true);
    expect(existsSync(join(dir, 'log'))).toBe(true);
    const { readFileSync } = await import('node:fs');
    expect(readFileSync(join(dir, 'log'), 'utf8')).toBe('first\n');
  }, 90_000);

  it('patroni.switchover needs approval: refused without a terminal or --yes, nothing runs', async () => {
    const leader = await cluster.leader();
    const other = cluster.members.find((m) => m.name !== leader)!.name;
    const cwd = workdir({
      'inv.yml': inventory(),
      'pb.yml': `
- name: switch
  hosts: patroni_leader
  steps:
    - patroni.switchover: { candidate: ${other} }
`,
    });
    const plan = await runCli(['plan', 'pb.yml', '-i', 'inv.yml'], { cwd });
    expect(plan.stdout).toContain(`approval: Switch the Patroni leader over to ${other}?`);
    expect(plan.stdout).toContain('/switchover');
    const r = await runCli(['run', 'pb.yml', '-i', 'inv.yml'], { cwd });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('needs an operator');
    expect(await cluster.leader()).toBe(leader);
  });

  it('patroni.switchover with --yes hands over to the candidate, and patroni.status reports the new leader', async () => {
    const leader = await cluster.leader();
    const other = cluster.members.find((m) => m.name !== leader)!.name;
    const cwd = workdir({
      'inv.yml': inventory(),
      'pb.yml': `
- name: switch
  hosts: patroni_leader
  steps:
    - id: sw
      patroni.switchover: { candidate: ${other} }
    - id: st
      patroni.status: {}
`,
    });
    const r = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json', '--yes'], { cwd });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const ev = events(r.stdout);
    expect(outputsOf(ev, 'sw')).toMatchObject({ switched: true, from: leader, to: other });
    const st = outputsOf<{ leader: string; members: { name: string; role: string; state: string }[] }>(
      ev,
      'st',
    );
    expect(st.leader).toBe(other);
    expect(st.members.map((m) => m.name).sort()).toEqual(cluster.members.map((m) => m.name).sort());
    expect(await cluster.leader()).toBe(other);
    expect(ev.find((e) => e.type === 'approval')).toMatchObject({ approved: true, by: '--yes' });
  }, 90_000);

  it('patroni.restart restarts one member, and patroni.reinit rebuilds a replica', async () => {
    const leader = await cluster.leader();
    const replica = cluster.members.find((m) => m.name !== leader)!.name;
    const before = await memberStatus(replica);
    const cwd = workdir({
      'inv.yml': inventory(),
      'pb.yml': `
- name: replica maintenance
  hosts: patroni_replicas
  steps:
    - id: rs
      patroni.restart: { timeout: 60 }
    - id: ri
      patroni.reinit: { timeout: 120 }
`,
    });
    // reinit wipes a data directory: it always asks (here --yes answers).
    const r = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json', '--yes'], { cwd });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const ev = events(r.stdout);
    expect(outputsOf(ev, 'rs')).toMatchObject({ restarted: true });
    expect(outputsOf<{ postmaster_start_time: string }>(ev, 'rs').postmaster_start_time).not.toBe(
      before.postmaster_start_time,
    );
    expect(outputsOf(ev, 'ri')).toMatchObject({ state: 'running' });
    const after = await memberStatus(replica);
    expect(after).toMatchObject({ role: 'replica', state: 'running' });
    // Still streaming from the leader after the rebuild.
    await waitUntilAsync('the rebuilt replica streams', async () => {
      const c = JSON.parse((await httpRequest('GET', `${cluster.members[0]!.restUrl}/cluster`)).body);
      return c.members.some(
        (m: { name: string; state: string }) => m.name === replica && m.state === 'running',
      );
    });
  }, 180_000);

  it('patroni.reinit refuses the leader', async () => {
    const cwd = workdir({
      'inv.yml': inventory(),
      'pb.yml': '- name: wrong\n  hosts: patroni_leader\n  steps:\n    - patroni.reinit: {}\n',
    });
    const r = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json', '--yes'], { cwd });
    expect(r.code).toBe(1);
    const failed = events(r.stdout).find((e) => e.type === 'step_finished' && e.status === 'failed')!;
    expect(String(failed.error)).toContain('is the leader: only a replica can be reinitialised');
  });

  it('patroni.remove_cluster refuses while members run, then wipes the DCS state once Patroni is stopped', async () => {
    const ctlConfig = join(workdir(), 'patronictl.yml');
    writeFileSync(
      ctlConfig,
      stringify({ scope: cluster.scope, etcd3: { hosts: [`127.0.0.1:${etcd.clientPort}`] } }),
    );
    const cwd = workdir({
      'inv.yml': inventory(`, config: ${ctlConfig}, patronictl: /usr/bin/patronictl`),
      'pb.yml': `
- name: wipe
  hosts: ${hostOf(cluster.members[0]!.name)}
  steps:
    - id: rm
      patroni.remove_cluster:
        scope: ${cluster.scope}
        recheck_seconds: 30
        stopped_hosts: [${cluster.members.map((m) => hostOf(m.name)).join(', ')}]
`,
    });
    const plan = await runCli(['plan', 'pb.yml', '-i', 'inv.yml'], { cwd });
    expect(plan.stdout).toContain(`approval: Wipe the DCS state of Patroni cluster ${cluster.scope}`);
    expect(plan.stdout).toContain(`$ /usr/bin/patronictl -c ${ctlConfig} remove ${cluster.scope} -f json`);
    const running = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json', '--yes'], { cwd });
    expect(running.code).toBe(1);
    expect(running.stdout).toContain('still run');
    expect(await dcsKeys()).toContain(`/service/${cluster.scope}/config`);

    // A listing given from before (as an upgrade takes it) that names a member whose REST API
    // answers: the wipe does not trust it, lists the DCS itself, and refuses.
    const stopped = `[${cluster.members.map((m) => hostOf(m.name)).join(', ')}]`;
    writeFileSync(
      join(cwd, 'listed.yml'),
      `
- name: wipe
  hosts: ${hostOf(cluster.members[0]!.name)}
  steps:
    - patroni.remove_cluster:
        scope: ${cluster.scope}
        stopped_hosts: ${stopped}
        listed: { members_before: [${cluster.members.map((m) => m.name).join(', ')}], leader: ${cluster.members[0]!.name} }
`,
    );
    const stale = await runCli(['run', 'listed.yml', '-i', 'inv.yml', '--output', 'json', '--yes'], { cwd });
    expect(stale.code).toBe(1);
    expect(stale.stdout).toContain('listing the DCS again');
    expect(stale.stdout).toContain('still run');
    expect(await dcsKeys()).toContain(`/service/${cluster.scope}/config`);
    // The check alone, while members run: the same refusal, before any window.
    writeFileSync(
      join(cwd, 'checked.yml'),
      `
- name: wipe
  hosts: ${hostOf(cluster.members[0]!.name)}
  steps:
    - id: listed
      patroni.remove_cluster: { check: true, scope: ${cluster.scope}, stopped_hosts: ${stopped} }
    - id: rm
      patroni.remove_cluster: { scope: ${cluster.scope}, stopped_hosts: ${stopped}, listed: "{{ listed }}", recheck_seconds: 30 }
`,
    );
    const checking = await runCli(['run', 'checked.yml', '-i', 'inv.yml', '--output', 'json', '--yes'], {
      cwd,
    });
    expect(checking.code).toBe(1);
    expect(checking.stdout).toContain('still run');
    expect(events(checking.stdout).filter((e) => e.type === 'step_started')).toHaveLength(1);

    await cluster.stop();
    expect(await dcsKeys()).toContain(`/service/${cluster.scope}/initialize`);
    // Listed once every Patroni is stopped, then wiped without a listing of its own (one
    // patronictl run less in an upgrade's window), with the leader named then.
    const r = await runCli(['run', 'checked.yml', '-i', 'inv.yml', '--output', 'json', '--yes'], { cwd });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const ev = events(r.stdout);
    const listed = outputsOf<{ members_before: string[]; leader: string; removed: boolean }>(ev, 'listed');
    expect([...listed.members_before].sort()).toEqual(cluster.members.map((m) => m.name).sort());
    expect(listed.removed).toBe(false);
    // Stopped unpaused, Patroni gave up the leader key: no leader to name (an upgrade's, stopped
    // while paused, names it).
    expect(outputsOf(ev, 'rm')).toMatchObject({ removed: true });
    expect(outputsOf<{ leader?: string }>(ev, 'rm').leader).toBe(listed.leader);
    expect(await dcsKeys()).toEqual([]);
    expect(r.stdout).toContain('wiping without listing again');
    // Every member it listed is stopped (REST refuses before and after the wipe): no recheck wait
    // lengthens an upgrade's downtime.
    expect(r.stdout).toContain('no recheck needed');
    const took = ev.filter((e) => e.type === 'step_finished').at(-1)!.durationMs as number;
    expect(took).toBeLessThan(30_000);
  }, 120_000);
});

/** Keys etcd holds under the cluster's prefix (etcd v3 JSON gateway). */
async function dcsKeys(): Promise<string[]> {
  const prefix = `/service/${cluster.scope}/`;
  const b64 = (s: string) => Buffer.from(s).toString('base64');
  const end = prefix.slice(0, -1) + String.fromCharCode(prefix.charCodeAt(prefix.length - 1) + 1);
  const r = await httpRequest('POST', `${etcd.clientUrl}/v3/kv/range`, {
    key: b64(prefix),
    range_end: b64(end),
    keys_only: true,
  });
  const kvs = (JSON.parse(r.body).kvs ?? []) as { key: string }[];
  return kvs.map((k) => Buffer.from(k.key, 'base64').toString()).sort();
}

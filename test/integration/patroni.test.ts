// patroni.pause / patroni.resume against a real etcd and a two-member Patroni cluster.
import { describe, expect, it } from 'vitest';
import { type EtcdServer, httpRequest, type PatroniCluster } from '../../tools/testenv/index.js';
import { events, journalOf, runCli, workdir } from './cli.js';
import { usePatroniCluster } from './patroni-cluster.js';

let etcd: EtcdServer;
let cluster: PatroniCluster;

usePatroniCluster((lab) => {
  ({ etcd, cluster } = lab);
});

const inventory = () =>
  `hosts:\n${cluster.members.map((m) => `  ${m.name}: { transport: local, patroni: { url: "${m.restUrl}", timeout: 2 } }`).join('\n')}\n`;

async function pausedOn(): Promise<Record<string, boolean>> {
  const out: Record<string, boolean> = {};
  for (const m of cluster.members)
    out[m.name] = JSON.parse((await httpRequest('GET', `${m.restUrl}/patroni`)).body).pause === true;
  return out;
}

const PLAYBOOK = (after: string) => `
- name: maintenance
  hosts: ${'{{FIRST}}'}
  steps:
    - id: pause
      patroni.pause: { timeout: 10 }
    - id: seen
      shell: "echo paused"
${after}
  always:
    - patroni.resume: { paused_by: "{{ pause }}" }
`;

function playbook(after = '') {
  return PLAYBOOK(after).replace('{{FIRST}}', cluster.members[0]!.name);
}

describe('patroni.pause and patroni.resume', () => {
  it('pause is acknowledged by every member, and the clean-up resume clears it everywhere', async () => {
    const cwd = workdir({
      'inv.yml': inventory(),
      'pb.yml': playbook('    - name: check\n      shell: "true"\n'),
    });
    const r = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json'], { cwd });
    expect(r.code).toBe(0);
    const pause = events(r.stdout).find((e) => e.type === 'step_finished' && e.stepType === 'patroni.pause')!;
    expect(pause.outputs).toMatchObject({ paused_by_run: true, members: cluster.members.map((m) => m.name) });
    expect(await pausedOn()).toEqual(Object.fromEntries(cluster.members.map((m) => [m.name, false])));
  });

  it('a run that fails after the pause leaves the cluster resumed, and the journal says so', async () => {
    const cwd = workdir({
      'inv.yml': inventory(),
      'pb.yml': playbook('    - name: breaks\n      shell: "exit 1"\n').replace(/ {2}always:\n.*\n$/s, ''),
    });
    const r = await runCli(['run', 'pb.yml', '-i', 'inv.yml'], { cwd });
    expect(r.code).toBe(1);
    expect(await pausedOn()).toEqual(Object.fromEntries(cluster.members.map((m) => [m.name, false])));
    const undo = journalOf(cwd).find((e) => e.type === 'undo_finished');
    expect(undo).toMatchObject({ title: 'patroni.pause', ok: true });
  });

  it('a cluster already paused before the run is still paused after it', async () => {
    await httpRequest('PATCH', `${cluster.members[0]!.restUrl}/config`, { pause: true });
    // Paused by someone else, and settled: every member says so before the run starts.
    const t0 = Date.now();
    while (Object.values(await pausedOn()).includes(false) && Date.now() - t0 < 10_000)
      await new Promise((r) => setTimeout(r, 100));
    try {
      const cwd = workdir({
        'inv.yml': inventory(),
        'pb.yml': playbook('    - name: breaks\n      shell: "exit 1"\n'),
      });
      const r = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json'], { cwd });
      expect(r.code).toBe(1);
      expect(r.stdout).toContain('was already paused');
      expect(await pausedOn()).toEqual(Object.fromEntries(cluster.members.map((m) => [m.name, true])));
    } finally {
      await httpRequest('PATCH', `${cluster.members[0]!.restUrl}/config`, { pause: null });
      // The next test starts from a cluster every member sees as running.
      const t1 = Date.now();
      while (Object.values(await pausedOn()).includes(true) && Date.now() - t1 < 10_000)
        await new Promise((r) => setTimeout(r, 100));
    }
  });

  it('the member the run paused through stops answering: the clean-up resumes through another member', async () => {
    const first = cluster.members[0]!;
    const other = cluster.members[1]!;
    expect(Object.values(await pausedOn())).not.toContain(true);
    const cwd = workdir({
      'inv.yml': inventory(),
      // After the pause, the host's own Patroni freezes (its REST API accepts and never answers).
      'pb.yml': playbook(`    - name: freeze this host's Patroni\n      shell: "kill -STOP ${first.pid}"\n`),
    });
    try {
      const r = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json'], { cwd });
      expect(r.code, r.stderr).toBe(0);
      const resumed = events(r.stdout).find(
        (e) => e.type === 'step_finished' && e.stepType === 'patroni.resume',
      )!;
      expect(resumed.outputs).toMatchObject({ resumed: true });
      expect(r.stdout).toContain(
        `${first.name}: its Patroni did not answer; the pause is cleared in the DCS`,
      );
      // The truth, from the member that answers, and from the DCS once the frozen one is back.
      expect(JSON.parse((await httpRequest('GET', `${other.restUrl}/patroni`)).body).pause).toBeUndefined();
    } finally {
      process.kill(first.pid, 'SIGCONT');
    }
    const t0 = Date.now();
    while (Object.values(await pausedOn()).includes(true) && Date.now() - t0 < 10_000)
      await new Promise((r) => setTimeout(r, 100));
    expect(await pausedOn()).toEqual(Object.fromEntries(cluster.members.map((m) => [m.name, false])));
  });

  it('a member whose REST API does not answer: pause fails naming it, is withdrawn, and nothing after it runs', async () => {
    const replica = cluster.members[1]!;
    expect(Object.values(await pausedOn())).not.toContain(true);
    process.kill(replica.pid, 'SIGSTOP');
    try {
      const cwd = workdir({
        'inv.yml': inventory(),
        'pb.yml': playbook().replace('timeout: 10', 'timeout: 3'),
      });
      const r = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json'], { cwd });
      expect(r.code).toBe(1);
      const failed = events(r.stdout).find((e) => e.type === 'step_finished' && e.status === 'failed')!;
      expect(failed.stepType).toBe('patroni.pause');
      expect(String(failed.error)).toContain(`not acknowledged within 3s by: ${replica.name}`);
      expect(String(failed.error)).toContain('the pause was withdrawn');
      // It did change the cluster (then withdrew the pause): that one is for the operator to see.
      const fin = events(r.stdout).find((e) => e.type === 'run_finished') as { summary: string[] };
      expect(fin.summary.join('\n')).toContain('State unknown');
      expect(events(r.stdout).some((e) => e.type === 'step_started' && e.stepType === 'shell')).toBe(false);
    } finally {
      process.kill(replica.pid, 'SIGCONT');
    }
    const leader = cluster.members[0]!;
    expect(JSON.parse((await httpRequest('GET', `${leader.restUrl}/patroni`)).body).pause).toBeUndefined();
  });
  it('an existing pause one member cannot confirm fails the step, and that pause is left in place', async () => {
    const leader = cluster.members[0]!;
    const replica = cluster.members[1]!;
    await httpRequest('PATCH', `${leader.restUrl}/config`, { pause: true });
    const t0 = Date.now();
    while (Object.values(await pausedOn()).includes(false) && Date.now() - t0 < 10_000)
      await new Promise((r) => setTimeout(r, 100));
    try {
      process.kill(replica.pid, 'SIGSTOP');
      try {
        const cwd = workdir({
          'inv.yml': inventory(),
          'pb.yml': playbook().replace('timeout: 10', 'timeout: 3'),
        });
        const r = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json'], { cwd });
        expect(r.code).toBe(1);
        const failed = events(r.stdout).find((e) => e.type === 'step_finished' && e.status === 'failed')!;
        expect(String(failed.error)).toContain('already paused by someone else');
        expect(String(failed.error)).toContain(`not acknowledged within 3s by: ${replica.name}`);
        // Nothing of this run changed the cluster: the summary does not send anyone to check it.
        const fin = events(r.stdout).find((e) => e.type === 'run_finished') as { summary: string[] };
        expect(fin.summary.join('\n')).not.toContain('State unknown');
        expect(events(r.stdout).some((e) => e.type === 'step_started' && e.stepType === 'shell')).toBe(false);
      } finally {
        process.kill(replica.pid, 'SIGCONT');
      }
      expect(JSON.parse((await httpRequest('GET', `${leader.restUrl}/patroni`)).body).pause).toBe(true);
    } finally {
      await httpRequest('PATCH', `${leader.restUrl}/config`, { pause: null });
      const t1 = Date.now();
      while (Object.values(await pausedOn()).includes(true) && Date.now() - t1 < 10_000)
        await new Promise((r) => setTimeout(r, 100));
    }
  });
  it('etcd frozen: pause fails saying the DCS is down, not that the REST API is', async () => {
    expect(Object.values(await pausedOn())).not.toContain(true);
    const cwd = workdir({
      'inv.yml': inventory(),
      'pb.yml': playbook().replace('timeout: 10', 'timeout: 3'),
    });
    process.kill(etcd.pid, 'SIGSTOP');
    let r: Awaited<ReturnType<typeof runCli>>;
    try {
      // Long enough for the members' last DCS contact to age (loop_wait is 2 s here).
      await new Promise((res) => setTimeout(res, 6000));
      r = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json'], { cwd });
    } finally {
      process.kill(etcd.pid, 'SIGCONT');
    }
    expect(r.code).not.toBe(0);
    const failed = events(r.stdout).find((e) => e.type === 'step_finished' && e.status === 'failed')!;
    expect(failed.stepType).toBe('patroni.pause');
    expect(String(failed.error)).toMatch(/the DCS \(etcd, Consul\) looks down or unreachable from the/);
    expect(String(failed.error)).toMatch(/last reached its DCS \d+ s ago/);
    // The cluster recovers once etcd is back, unpaused.
    const t0 = Date.now();
    while (Object.values(await pausedOn()).includes(true) && Date.now() - t0 < 20_000)
      await new Promise((res) => setTimeout(res, 200));
    expect(Object.values(await pausedOn())).not.toContain(true);
  }, 60_000);
});

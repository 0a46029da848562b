// patroni.pause / patroni.resume against a real etcd and a two-member Patroni cluster.

import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type EtcdServer,
  httpRequest,
  type PatroniCluster,
  SERVER_USER,
  type SshServer,
  startSshd,
} from '../../tools/testenv/index.js';
import { events, journalOf, outputsOf, runCli, runIds, startCli, waitUntil, workdir } from './cli.js';
import { usePatroniCluster } from './patroni-cluster.js';

let etcd: EtcdServer;
let cluster: PatroniCluster;
let sshd: SshServer;

beforeAll(async () => {
  sshd = await startSshd();
}, 30_000);
afterAll(async () => {
  await sshd?.stop();
});

usePatroniCluster((lab) => {
  ({ etcd, cluster } = lab);
});

/** The first member reached over the real sshd (the guard then runs over SSH), the others locally. */
const sshInventory = () =>
  `hosts:\n${cluster.members
    .map((m, i) =>
      i === 0
        ? `  ${m.name}: { ssh: { host: 127.0.0.1, port: ${sshd.port}, user: ${SERVER_USER}, identity_file: ${sshd.identityFile}, known_hosts: ${sshd.knownHostsFile} }, patroni: { url: "${m.restUrl}", timeout: 2 } }`
        : `  ${m.name}: { transport: local, patroni: { url: "${m.restUrl}", timeout: 2 } }`,
    )
    .join('\n')}\n`;

/** The sshd processes serving this test's connections (children of the listener's children). */
function sshdSessions(): number[] {
  const kids = (pid: number) =>
    execFileSync('sh', ['-c', `pgrep -P ${pid} || true`], { encoding: 'utf8' })
      .split('\n')
      .filter(Boolean)
      .map(Number);
  return kids(sshd.pid).flatMap((priv) => [priv, ...kids(priv).filter((c) => /sshd/.test(comm(c)))]);
}
const comm = (pid: number) => {
  try {
    return execFileSync('cat', [`/proc/${pid}/comm`], { encoding: 'utf8' });
  } catch {
    return '';
  }
};

const inventory = () =>
  `hosts:\n${cluster.members.map((m) => `  ${m.name}: { transport: local, patroni: { url: "${m.restUrl}", timeout: 2 } }`).join('\n')}\n`;

/** Patroni's dynamic configuration as the DCS holds it (through the first member). */
async function dcsConfig(): Promise<Record<string, unknown>> {
  return JSON.parse((await httpRequest('GET', `${cluster.members[0]!.restUrl}/config`)).body);
}

/** A pause made by hand (patronictl pause does the same PATCH), settled on every member. */
async function pauseByHand(): Promise<void> {
  await httpRequest('PATCH', `${cluster.members[0]!.restUrl}/config`, { pause: true });
  const t0 = Date.now();
  while (Object.values(await pausedOn()).includes(false) && Date.now() - t0 < 10_000)
    await new Promise((r) => setTimeout(r, 100));
}

/** Ends any pause and waits until every member runs unpaused: the next test starts clean. */
async function resumeByHand(): Promise<void> {
  await httpRequest('PATCH', `${cluster.members[0]!.restUrl}/config`, { pause: null, pgrunbook_pause: null });
  const t0 = Date.now();
  while (Object.values(await pausedOn()).includes(true) && Date.now() - t0 < 10_000)
    await new Promise((r) => setTimeout(r, 100));
}

/** Waits until every member reports the pause (a run has paused and the members acknowledged). */
async function untilPausedEverywhere(): Promise<void> {
  const t0 = Date.now();
  while (Object.values(await pausedOn()).includes(false)) {
    if (Date.now() - t0 > 30_000) throw new Error('never paused everywhere');
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Polls until no member reports a pause; the seconds that took (fails after `limitS`). */
async function secondsUntilUnpaused(limitS: number): Promise<number> {
  const t0 = Date.now();
  while (Object.values(await pausedOn()).includes(true)) {
    if (Date.now() - t0 > limitS * 1000) throw new Error(`still paused after ${limitS}s`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return (Date.now() - t0) / 1000;
}

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

  it('a cluster paused by someone else: the run refuses it, changes nothing, and the pause stays', async () => {
    await pauseByHand();
    try {
      const cwd = workdir({
        'inv.yml': inventory(),
        'pb.yml': playbook('    - name: after\n      shell: "touch after"\n'),
      });
      // The review sees it first: plan --check asks the cluster.
      const plan = await runCli(['plan', 'pb.yml', '-i', 'inv.yml', '--check'], { cwd });
      expect(plan.stdout).toContain(
        `cluster ${cluster.scope} is ALREADY PAUSED by someone else (no pgrunbook marker: patronictl pause, or an operator): the run will refuse it unless run with --adopt-pause`,
      );
      const r = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json'], { cwd });
      expect(r.code).toBe(1);
      const failed = events(r.stdout).find((e) => e.type === 'step_finished' && e.status === 'failed')!;
      expect(failed.stepType).toBe('patroni.pause');
      expect(String(failed.error)).toContain(
        `cluster ${cluster.scope} is already paused by someone else (no pgrunbook marker`,
      );
      expect(String(failed.error)).toContain('--adopt-pause');
      expect(existsSync(join(cwd, 'after'))).toBe(false);
      // The truth: still paused everywhere, and nothing of this run in the DCS config.
      expect(await pausedOn()).toEqual(Object.fromEntries(cluster.members.map((m) => [m.name, true])));
      expect((await dcsConfig()).pgrunbook_pause).toBeUndefined();
    } finally {
      await resumeByHand();
    }
  });

  it('--adopt-pause takes over a pause found in place, and the run resumes it at its end', async () => {
    await pauseByHand();
    try {
      const cwd = workdir({ 'inv.yml': inventory(), 'pb.yml': playbook() });
      const r = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--adopt-pause', '--output', 'json'], {
        cwd,
      });
      expect(r.code, r.stdout).toBe(0);
      expect(outputsOf(events(r.stdout), 'pause')).toMatchObject({ paused_by_run: true, adopted: true });
      expect(await pausedOn()).toEqual(Object.fromEntries(cluster.members.map((m) => [m.name, false])));
      const conf = await dcsConfig();
      expect(conf.pause).toBeUndefined();
      expect(conf.pgrunbook_pause).toBeUndefined();
    } finally {
      await resumeByHand();
    }
  });

  it('kill -9 of the runner while it holds the pause: the guard resumes the cluster within seconds', async () => {
    const cwd = workdir({
      'inv.yml': inventory(),
      'pb.yml': playbook('    - name: long\n      shell: "touch started; sleep 60"\n'),
    });
    const { child, done } = startCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json'], { cwd });
    try {
      await waitUntil('the step after the pause started', () => existsSync(join(cwd, 'started')), 30_000);
      // While the run lives, the pause holds, and the DCS config names this run.
      expect(await pausedOn()).toEqual(Object.fromEntries(cluster.members.map((m) => [m.name, true])));
      const marker = (await dcsConfig()).pgrunbook_pause as { run: string; pid: number };
      expect(marker.pid).toBe(child.pid);
      expect(runIds(cwd)).toEqual([marker.run]);
      child.kill('SIGKILL');
      const t0 = Date.now();
      await done;
      const after = await secondsUntilUnpaused(20);
      // The guard sees EOF at once; members acknowledge within their loop_wait (2 s here).
      expect(after, 'seconds the cluster stayed paused after the runner died').toBeLessThan(6);
      expect((await dcsConfig()).pgrunbook_pause).toBeUndefined();
      expect(Date.now() - t0).toBeLessThan(10_000);
    } finally {
      child.kill('SIGKILL');
      await resumeByHand();
    }
  }, 60_000);

  it('a runner frozen longer than guard_silence: the guard resumes, and the runner once back fails the run saying so', async () => {
    const cwd = workdir({
      'inv.yml': inventory(),
      'pb.yml': playbook('    - name: long\n      shell: "touch started; sleep 20"\n').replace(
        'timeout: 10',
        'timeout: 10, guard_silence: 5',
      ),
    });
    const { child, done } = startCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json'], { cwd });
    try {
      await waitUntil('the step after the pause started', () => existsSync(join(cwd, 'started')), 30_000);
      child.kill('SIGSTOP');
      const after = await secondsUntilUnpaused(20);
      expect(after).toBeGreaterThanOrEqual(4);
      expect(after).toBeLessThan(12);
      child.kill('SIGCONT');
      const r = await done;
      expect(r.code).toBe(1);
      const fin = events(r.stdout).find((e) => e.type === 'run_finished') as { summary: string[] };
      expect(fin.summary.join('\n')).toContain(`the guard of the pause of cluster ${cluster.scope} ended`);
      expect(fin.summary.join('\n')).toContain('no word from the run for 5s');
      // Its undo finds nothing to resume, and nobody paused anything since.
      expect(r.stdout).toContain('not paused any more: nothing to resume');
      expect(Object.values(await pausedOn())).not.toContain(true);
    } finally {
      child.kill('SIGCONT');
      child.kill('SIGKILL');
      await resumeByHand();
    }
  }, 60_000);

  it('over SSH: kill -9 of the runner, and then a cut connection (a frozen sshd): the guard on the member resumes', async () => {
    const pb = playbook('    - name: long\n      shell: "sleep 60"\n').replace(
      'timeout: 10',
      'timeout: 10, guard_silence: 5',
    );
    // kill -9: the member's sshd closes the channel, the guard reads EOF.
    const cwd = workdir({ 'inv.yml': sshInventory(), 'pb.yml': pb });
    const run1 = startCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json'], { cwd });
    try {
      await untilPausedEverywhere();
      run1.child.kill('SIGKILL');
      await run1.done;
      expect(await secondsUntilUnpaused(20)).toBeLessThan(6);
      expect((await dcsConfig()).pgrunbook_pause).toBeUndefined();
    } finally {
      run1.child.kill('SIGKILL');
      await resumeByHand();
    }
    // A cut: the sshd serving the run freezes (no FIN, no data) — the guard hears nothing.
    const cwd2 = workdir({ 'inv.yml': sshInventory(), 'pb.yml': pb });
    const run2 = startCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json'], { cwd: cwd2 });
    let frozen: number[] = [];
    try {
      await untilPausedEverywhere();
      frozen = sshdSessions();
      expect(frozen.length).toBeGreaterThan(0);
      for (const pid of frozen) process.kill(pid, 'SIGSTOP');
      const after = await secondsUntilUnpaused(25);
      expect(after).toBeLessThan(12);
      for (const pid of frozen) process.kill(pid, 'SIGCONT');
      frozen = [];
      const r = await run2.done;
      expect(r.code).not.toBe(0);
      const fin = events(r.stdout).find((e) => e.type === 'run_finished') as { summary: string[] };
      expect(fin.summary.join('\n')).toMatch(/guard of the pause of cluster \S+ ended/);
      expect(Object.values(await pausedOn())).not.toContain(true);
    } finally {
      for (const pid of frozen) process.kill(pid, 'SIGCONT');
      run2.child.kill('SIGKILL');
      await resumeByHand();
    }
  }, 120_000);

  it('a playbook that never resumes: the run resumes at its end and says so; outlive_run keeps the pause', async () => {
    const noResume = playbook().replace(/ {2}always:\n.*\n$/s, '');
    const cwd = workdir({ 'inv.yml': inventory(), 'pb.yml': noResume });
    const r = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json'], { cwd });
    expect(r.code, r.stdout).toBe(0);
    const fin = events(r.stdout).find((e) => e.type === 'run_finished') as { summary: string[] };
    expect(fin.summary.join('\n')).toContain(
      `Patroni pause of cluster ${cluster.scope}: resumed Patroni through`,
    );
    expect(await secondsUntilUnpaused(10)).toBeLessThan(6);

    const keep = workdir({
      'inv.yml': inventory(),
      'pb.yml': noResume.replace('timeout: 10', 'timeout: 10, outlive_run: true'),
    });
    try {
      const k = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json'], { cwd: keep });
      expect(k.code, k.stdout).toBe(0);
      await new Promise((res) => setTimeout(res, 3000));
      expect(await pausedOn()).toEqual(Object.fromEntries(cluster.members.map((m) => [m.name, true])));
      expect(((await dcsConfig()).pgrunbook_pause as { run: string }).run).toBe(runIds(keep)[0]);
    } finally {
      await resumeByHand();
    }
  }, 60_000);

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
        const r = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--adopt-pause', '--output', 'json'], {
          cwd,
        });
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

// One run at a time on a Patroni cluster, held in the cluster's own etcd (a lease-bound key):
// a second run from another process (another inventory file, as a second operator's machine would
// have) is refused naming the first; kill -9 of the holder frees the lock by itself within its
// lease; --break-lock breaks a lock only when asked. Real etcd and Patroni.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type EtcdServer, httpRequest, type PatroniCluster } from '../../tools/testenv/index.js';
import { CLI, runCli, workdir } from './cli.js';
import { usePatroniCluster } from './patroni-cluster.js';

let etcd: EtcdServer;
let cluster: PatroniCluster;
const TTL = 3;

usePatroniCluster((lab) => {
  ({ etcd, cluster } = lab);
});

const inventory = () =>
  `hosts:\n${cluster.members
    .map(
      (m) =>
        `  ${m.name}: { transport: local, patroni: { url: "${m.restUrl}", member: ${m.name}, dcs: { etcd3: "${etcd.clientUrl}", scope: ${cluster.scope}, lock_ttl: ${TTL} } } }`,
    )
    .join('\n')}\n`;

const SLOW = `- name: hold the cluster
  hosts: patroni_leader
  steps:
    - shell: "touch started; sleep 15"
`;
const QUICK = `- name: touch
  hosts: patroni_leader
  steps:
    - shell: "touch second-ran"
`;

/** The lock key's value in etcd, or undefined when there is none. */
async function lockValue(): Promise<string | undefined> {
  const key = Buffer.from(`/pgrunbook/locks/${cluster.scope}`).toString('base64');
  const r = await httpRequest('POST', `${etcd.clientUrl}/v3/kv/range`, { key });
  const kv = (JSON.parse(r.body).kvs ?? [])[0];
  return kv ? Buffer.from(kv.value, 'base64').toString() : undefined;
}

async function until(what: string, ok: () => boolean | Promise<boolean>, ms: number): Promise<number> {
  const t0 = Date.now();
  while (!(await ok())) {
    if (Date.now() - t0 > ms) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return Date.now() - t0;
}

describe('one run at a time on a Patroni cluster', () => {
  it('a second run is refused naming the first; kill -9 of the first frees the lock within its lease', async () => {
    // Two operators: two working directories, two copies of the inventory.
    const first = workdir({ 'inv.yml': inventory(), 'pb.yml': SLOW });
    const second = workdir({ 'inv.yml': inventory(), 'pb.yml': QUICK });
    const holder = spawn(process.execPath, [CLI, 'run', 'pb.yml', '-i', 'inv.yml', '--yes'], {
      cwd: first,
      stdio: 'ignore',
    });
    try {
      await until('the first run started its step', () => existsSync(join(first, 'started')), 30_000);
      const held = JSON.parse((await lockValue())!);
      expect(held.pid).toBe(holder.pid);

      const refused = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--yes'], { cwd: second });
      expect(refused.code).toBe(2);
      expect(refused.stderr).toContain(`Patroni cluster ${cluster.scope} is locked in its DCS`);
      expect(refused.stderr).toContain(`run ${held.run} by ${held.user}@${held.host} (pid ${holder.pid})`);
      expect(existsSync(join(second, 'second-ran'))).toBe(false);
      expect(existsSync(join(second, '.pgrunbook'))).toBe(false);

      // kill -9: no clean-up runs; the lease, no longer renewed, ends the lock by itself.
      holder.kill('SIGKILL');
      const freedAfter = await until(
        'the lock expired',
        async () => (await lockValue()) === undefined,
        (TTL + 3) * 1000,
      );
      expect(freedAfter).toBeLessThanOrEqual((TTL + 2) * 1000);
    } finally {
      holder.kill('SIGKILL');
    }
    const after = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--yes'], { cwd: second });
    expect(after.code, after.stderr).toBe(0);
    expect(existsSync(join(second, 'second-ran'))).toBe(true);
    expect(after.stdout).toContain(`lock: Patroni cluster ${cluster.scope} in its DCS`);
    // A run that ended releases its lock at once (the lease is revoked, not left to expire).
    expect(await lockValue()).toBeUndefined();
  }, 120_000);

  it('--break-lock breaks a lock held by another (here: a lease nobody renews), only when confirmed', async () => {
    const key = Buffer.from(`/pgrunbook/locks/${cluster.scope}`).toString('base64');
    const grant = JSON.parse(
      (await httpRequest('POST', `${etcd.clientUrl}/v3/lease/grant`, { TTL: 60 })).body,
    );
    const stale = Buffer.from(
      JSON.stringify({ run: 'r-stale', user: 'op', host: 'far', pid: 1, since: 'then', playbook: 'x' }),
    );
    await httpRequest('POST', `${etcd.clientUrl}/v3/kv/put`, {
      key,
      value: stale.toString('base64'),
      lease: grant.ID,
    });
    const cwd = workdir({ 'inv.yml': inventory(), 'pb.yml': QUICK });
    const refused = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--yes'], { cwd });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('run r-stale by op@far (pid 1)');
    // Without a terminal and without --yes, --break-lock is not confirmed: nothing happens.
    const unconfirmed = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--break-lock'], { cwd });
    expect(unconfirmed.code).toBe(2);
    expect(await lockValue()).toContain('r-stale');
    const broke = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--break-lock', '--yes'], { cwd });
    expect(broke.code, broke.stderr).toBe(0);
    expect(broke.stdout).toContain('broke the lock of Patroni cluster');
    expect(existsSync(join(cwd, 'second-ran'))).toBe(true);
    expect(await lockValue()).toBeUndefined();
  }, 60_000);
});

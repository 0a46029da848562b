// One run at a time on a Patroni cluster, held in the cluster's own DCS (etcd: a lease-bound key;
// Consul: a key acquired by a session): a second run from another process (another inventory file,
// as a second operator's machine would have) is refused naming the first; kill -9 of the holder
// frees the lock by itself within lock_ttl; --break-lock breaks a lock only when asked. The same
// cases on real etcd and on a real Consul agent, each with a real Patroni cluster on it.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { freePort, type PatroniCluster } from '../../tools/testenv/index.js';
import { CLI, runCli, workdir } from './cli.js';
import { type DcsKind, type TestDcs, usePatroniClusterOn } from './patroni-cluster.js';

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

async function until(what: string, ok: () => boolean | Promise<boolean>, ms: number): Promise<number> {
  const t0 = Date.now();
  while (!(await ok())) {
    if (Date.now() - t0 > ms) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return Date.now() - t0;
}

// lock_ttl per DCS: Consul refuses a session TTL under its session_ttl_min (10 s by default, kept
// by the test agent) and the session TTL is half of lock_ttl.
const CASES: { kind: DcsKind; ttl: number }[] = [
  { kind: 'etcd3', ttl: 3 },
  { kind: 'consul', ttl: 20 },
];

describe.each(CASES)('one run at a time on a Patroni cluster ($kind)', ({ kind, ttl: TTL }) => {
  let dcs: TestDcs;
  let cluster: PatroniCluster;
  usePatroniClusterOn(kind, (lab) => {
    ({ dcs, cluster } = lab);
  });
  const inventory = (ttl: number = TTL) =>
    `hosts:\n${cluster.members
      .map(
        (m) =>
          `  ${m.name}: { transport: local, patroni: { url: "${m.restUrl}", member: ${m.name}, dcs: { ${kind}: "${dcs.url}", scope: ${cluster.scope}, lock_ttl: ${ttl} } } }`,
      )
      .join('\n')}\n`;
  const lockValue = () => dcs.lockValue(cluster.scope);

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
      expect(refused.stderr).toContain(
        `Patroni cluster ${cluster.scope} is locked in its DCS (${kind === 'consul' ? 'Consul' : 'etcd'} ${dcs.url}`,
      );
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
    await dcs.putStaleLock(
      cluster.scope,
      JSON.stringify({ run: 'r-stale', user: 'op', host: 'far', pid: 1, since: 'then', playbook: 'x' }),
      60,
    );
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

  it('--break-lock on a live holder ends its lease/session: the holder stops at its next renewal', async () => {
    const first = workdir({ 'inv.yml': inventory(), 'pb.yml': SLOW });
    const second = workdir({ 'inv.yml': inventory(), 'pb.yml': QUICK });
    const holder = spawn(process.execPath, [CLI, 'run', 'pb.yml', '-i', 'inv.yml', '--yes'], {
      cwd: first,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const chunks: Buffer[] = [];
    holder.stdout?.on('data', (c: Buffer) => chunks.push(c));
    holder.stderr?.on('data', (c: Buffer) => chunks.push(c));
    const exited = new Promise<number | null>((r) => holder.once('exit', (code) => r(code)));
    try {
      await until('the first run started its step', () => existsSync(join(first, 'started')), 30_000);
      const broke = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--break-lock', '--yes'], {
        cwd: second,
      });
      expect(broke.code, broke.stderr).toBe(0);
      expect(broke.stdout).toContain(`broke the lock of Patroni cluster ${cluster.scope} held by run`);
      const t0 = Date.now();
      const code = await exited;
      // Its next renewal (every lock_ttl/3) finds the lease/session gone: it stops, before its
      // 15 s step would have ended by itself.
      expect(Date.now() - t0).toBeLessThan((TTL / 3) * 1000 + 5000);
      expect(code).not.toBe(0);
      expect(Buffer.concat(chunks).toString()).toMatch(
        new RegExp(`the lock of Patroni cluster ${cluster.scope} in .* expired`),
      );
    } finally {
      holder.kill('SIGKILL');
    }
  }, 90_000);

  it.runIf(kind === 'consul')(
    "a lock_ttl under twice Consul's session_ttl_min is refused before anything runs, saying what to set",
    async () => {
      const cwd = workdir({ 'inv.yml': inventory(4), 'pb.yml': QUICK });
      const r = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--yes'], { cwd });
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(`Consul ${dcs.url} refused a session TTL of 2s for the run lock`);
      expect(r.stderr).toContain('set lock_ttl to at least twice');
      expect(r.stderr).not.toMatch(/\n\s+at /);
      expect(existsSync(join(cwd, 'second-ran'))).toBe(false);
      expect(await lockValue()).toBeUndefined();
    },
    30_000,
  );

  it('its DCS unreachable: the run is refused before anything runs, naming the DCS and why', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const inv = inventory().replaceAll(`"${dcs.url}"`, `"${url}"`);
    const cwd = workdir({ 'inv.yml': inv, 'pb.yml': QUICK });
    const r = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--yes'], { cwd });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      `Patroni cluster ${cluster.scope}: the run lock in its DCS (${kind === 'consul' ? 'Consul' : 'etcd'} ${url}) could not be taken`,
    );
    expect(r.stderr).toContain('ECONNREFUSED');
    expect(r.stderr).toContain('Nothing was run.');
    expect(existsSync(join(cwd, 'second-ran'))).toBe(false);
    expect(existsSync(join(cwd, '.pgrunbook'))).toBe(false);
  }, 30_000);
});

// playbooks/snapshot-backup.yml on a Patroni cluster whose DCS is Consul (GitLab's setup): a real
// Consul dev agent, two Patroni members on PostgreSQL 15. The run holds its lock in Consul, pauses
// Patroni (the pause lands in Consul's config key), backs up the leader, proves the restore and
// resumes; afterwards the servers themselves are asked.
import { chmodSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ConsulServer,
  httpRequest,
  type PatroniCluster,
  SERVER_USER,
  startConsul,
  startPatroniCluster,
} from '../../tools/testenv/index.js';
import { events, outputsOf, runCli, workdir } from './cli.js';

const PLAYBOOK = fileURLToPath(new URL('../../playbooks/snapshot-backup.yml', import.meta.url));

let consul: ConsulServer;
let cluster: PatroniCluster;

beforeAll(async () => {
  consul = await startConsul();
  cluster = await startPatroniCluster({ consul, members: 2, version: 15 });
}, 90_000);
afterAll(async () => {
  await cluster?.stop();
  await consul?.stop();
});

/** The value of a Consul key (decoded), or undefined when there is none. */
async function kv(key: string): Promise<string | undefined> {
  const r = await httpRequest('GET', `${consul.httpUrl}/v1/kv/${key}`);
  if (r.status === 404) return undefined;
  const v = (JSON.parse(r.body) as { Value: string | null }[])[0]?.Value;
  return v ? Buffer.from(v, 'base64').toString() : '';
}

/** An LSN as a number, to compare two. */
const lsn = (s: string) => {
  const [hi, lo] = s.split('/');
  return Number.parseInt(hi ?? 'x', 16) * 2 ** 32 + Number.parseInt(lo ?? 'x', 16);
};

describe('snapshot-backup.yml on a Consul-backed Patroni cluster', () => {
  it('locks the cluster in Consul, pauses Patroni there, backs up the leader, proves the restore and resumes', async () => {
    const leader = await cluster.leader();
    // Patroni really is on Consul: its leader key is there, held by a session.
    expect(await kv(`service/${cluster.scope}/leader`)).toBe(leader);
    const root = mkdtempSync(join(tmpdir(), 'pgrb-consul-backup-'));
    chmodSync(root, 0o755);
    const hosts = cluster.members
      .map(
        (m) => `  ${m.name}:
    transport: local
    pg: { host: ${m.socketDir}, port: ${m.pgPort}, user: postgres, sslmode: disable }
    patroni: { url: "${m.restUrl}", timeout: 2, dcs: { consul: "${consul.httpUrl}", scope: ${cluster.scope} } }
    vars:
      backup_root: ${root}/backups
      archive_dir: ${cluster.archiveDir}
      pg_bin_dir: ${cluster.binDir}
      pg_os_user: ${SERVER_USER}`,
      )
      .join('\n');
    const cwd = workdir({ 'inv.yml': `hosts:\n${hosts}\n` });
    // Watch Consul while the run goes: the pause is written to the DCS's config key, and the
    // run's lock key exists while it runs.
    const seen = { paused: false, locked: false };
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        const config = await kv(`service/${cluster.scope}/config`).catch(() => undefined);
        if (config && JSON.parse(config).pause === true) seen.paused = true;
        if (await kv(`pgrunbook/locks/${cluster.scope}`).catch(() => undefined)) seen.locked = true;
        await new Promise((r) => setTimeout(r, 100));
      }
    })();
    const t0 = Date.now();
    const r = await runCli(['run', PLAYBOOK, '-i', 'inv.yml', '--output', 'json'], { cwd });
    watching = false;
    await watcher;
    expect(
      r.code,
      r.stdout
        .split('\n')
        .filter((l) => l.includes('"failed"'))
        .join('\n') + r.stderr,
    ).toBe(0);
    console.log(`snapshot-backup.yml on Consul: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    const ev = events(r.stdout);
    expect(ev.find((e) => e.type === 'play_started')).toMatchObject({ hosts: [leader] });
    expect(r.stdout + r.stderr).toContain(
      `lock: Patroni cluster ${cluster.scope} in its DCS (Consul ${consul.httpUrl}, session for 20 s)`,
    );
    expect(seen).toEqual({ paused: true, locked: true });
    expect(outputsOf(ev, 'pause')).toMatchObject({ paused_by_run: true });
    // The servers afterwards: Patroni not paused, in Consul and on every member; the lock released.
    const config = JSON.parse((await kv(`service/${cluster.scope}/config`)) ?? '{}');
    expect(config.pause).toBeFalsy();
    for (const m of cluster.members) {
      const st = JSON.parse((await httpRequest('GET', `${m.restUrl}/patroni`)).body);
      expect(st.pause, m.name).toBeFalsy();
      expect(st.state, m.name).toBe('running');
      const c = JSON.parse((await httpRequest('GET', `${m.restUrl}/config`)).body);
      expect(c.pause, m.name).toBeFalsy();
    }
    expect(await kv(`pgrunbook/locks/${cluster.scope}`)).toBeUndefined();
    // The backup on disk: the leader's one, complete, its restore proven.
    const runId = String(ev.find((e) => e.type === 'run_started')?.runId);
    const dir = join(root, 'backups', `${leader}-${runId}`);
    expect(
      readdirSync(join(root, 'backups')).filter((d) => !d.endsWith('.snap') && !d.endsWith('.verify')),
    ).toEqual([`${leader}-${runId}`]);
    const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
    expect(manifest.status).toBe('complete');
    // The restore proof: the copy recovered to a consistent point at or after the backup's end.
    const verify = ev.find((e) => e.type === 'step_finished' && e.stepType === 'backup.verify');
    expect(verify?.status).toBe('ok');
    const proof = outputsOf<{ backup_id: string; consistent_lsn: string }>(ev, 'verify');
    expect(proof.backup_id).toBe(`${leader}-${runId}`);
    expect(lsn(proof.consistent_lsn)).toBeGreaterThanOrEqual(lsn(String(manifest.stop_lsn)));
    expect(readFileSync(join(dir, 'backup_label'), 'utf8')).toMatch(/^START WAL LOCATION: /);
  }, 150_000);
});

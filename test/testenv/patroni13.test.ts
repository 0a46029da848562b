// The Patroni test cluster on PostgreSQL 13 (the old side of the 13 → 15 upgrade tests), and
// stopMember/startMember on a replica.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exists, postmasterPid, sql, waitUntil as waitFor } from '../../tools/testenv/checks.js';
import {
  type EtcdServer,
  httpRequest,
  isAlive,
  type PatroniCluster,
  pgBinDir,
  startEtcd,
  startPatroniCluster,
} from '../../tools/testenv/index.js';

let etcd: EtcdServer | undefined;
let cluster: PatroniCluster | undefined;
const timings: Record<string, number> = {};

beforeAll(async () => {
  let t = Date.now();
  etcd = await startEtcd();
  timings.etcd = Date.now() - t;
  t = Date.now();
  cluster = await startPatroniCluster({ etcd, members: 2, version: 13 });
  timings.patroni = Date.now() - t;
}, 90_000);

afterAll(async () => {
  await cluster?.stop();
  await etcd?.stop();
});

const waitUntil = (what: string, check: () => Promise<boolean>, timeoutMs = 10_000) =>
  waitFor(what, check, timeoutMs);

// Full command lines of live processes mentioning `text` (pgrep -f), this test's own excepted.
function pgrepF(text: string): Promise<string[]> {
  return new Promise((res) => {
    execFile('pgrep', ['-af', text], { encoding: 'utf8' }, (_err, stdout) => {
      res(stdout.split('\n').filter((l) => l.trim() !== '' && !l.includes('pgrep')));
    });
  });
}

// The Patroni PIDs the cluster's watchdog would signal if this worker died.
async function watchdogPids(c: PatroniCluster): Promise<number[]> {
  const text = await readFile(join(c.rootDir, 'patroni.pids'), 'utf8');
  return text
    .split('\n')
    .filter((l) => l !== '')
    .map(Number)
    .sort((a, b) => a - b);
}

describe('Patroni test cluster on PostgreSQL 13', () => {
  it('elects a leader and the replica streams, both on 13 with the upgrade initdb options', async () => {
    const c = cluster as PatroniCluster;
    expect(c.version).toBe(13);
    expect(c.binDir).toBe(pgBinDir(13));
    const leader = await c.leader();
    const replica = c.members.find((m) => m.name !== leader)?.name as string;

    for (const m of c.members) {
      const [row] = await sql<Record<string, string | boolean>>(
        c.clientConfig(m.name),
        `select current_setting('server_version_num') as v, pg_is_in_recovery() as recovery,
                current_setting('data_checksums') as checksums,
                current_setting('server_encoding') as encoding,
                (select datcollate from pg_database where datname = 'postgres') as collate,
                current_setting('password_encryption') as pwenc`,
      );
      expect(row, m.name).toEqual({
        v: expect.stringMatching(/^13\d{4}$/),
        recovery: m.name !== leader,
        checksums: 'on',
        encoding: 'UTF8',
        collate: 'C.UTF-8',
        pwenc: 'scram-sha-256',
      });
      expect((await readFile(join(m.dataDir, 'PG_VERSION'), 'utf8')).trim()).toBe('13');
      // Patroni drops (with a warning) any parameter the server version does not know.
      expect(await readFile(m.logFile, 'utf8')).not.toMatch(/Removing|parameter=.*(too low|too big)/);
    }

    // startPatroniCluster saw it streaming, but on a loaded machine the walsender can be caught
    // reconnecting a moment later (seen once with all Patroni test files in parallel): settle.
    let rows: { application_name: string; state: string }[] = [];
    await waitUntil('pg_stat_replication to show the replica streaming', async () => {
      rows = await sql(c.clientConfig(leader), 'select application_name, state from pg_stat_replication');
      return rows.length === 1 && rows[0]?.state === 'streaming';
    }).catch(() => {});
    expect(rows).toEqual([{ application_name: replica, state: 'streaming' }]);
    console.log(`timings: etcd ${timings.etcd} ms, patroni 13 cluster ${timings.patroni} ms`);
  });

  it('stopMember/startMember restart the replica without losing anything', async () => {
    const c = cluster as PatroniCluster;
    const leader = await c.leader();
    const m = c.members.find((x) => x.name !== leader) as PatroniCluster['members'][number];
    const oldPatroni = m.pid;
    const oldPostmaster = await postmasterPid(m.dataDir);
    expect(await watchdogPids(c)).toEqual(c.members.map((x) => x.pid).sort((a, b) => a - b));

    let t = Date.now();
    await c.stopMember(m.name);
    timings.stopMember = Date.now() - t;
    expect(await isAlive(oldPatroni)).toBe(false);
    expect(await isAlive(oldPostmaster)).toBe(false);
    expect(await exists(join(m.dataDir, 'postmaster.pid'))).toBe(false);
    expect(await exists(join(m.dataDir, 'PG_VERSION'))).toBe(true);
    await expect(httpRequest('GET', `${m.restUrl}/patroni`, undefined, 500)).rejects.toThrow();
    await c.stopMember(m.name); // already stopped: no-op
    // Only the running Patroni is left for the watchdog; the leader stays leader.
    expect(await watchdogPids(c)).toEqual(c.members.filter((x) => x !== m).map((x) => x.pid));
    expect(await c.leader()).toBe(leader);

    // Written while the replica is down: it must catch up after the restart.
    await sql(c.clientConfig(leader), 'create table while_down as select 42 as n');

    t = Date.now();
    await c.startMember(m.name);
    timings.startMember = Date.now() - t;
    expect(m.pid).not.toBe(oldPatroni);
    expect(await isAlive(m.pid)).toBe(true);
    expect(await watchdogPids(c)).toEqual(c.members.map((x) => x.pid).sort((a, b) => a - b));
    const st = JSON.parse((await httpRequest('GET', `${m.restUrl}/patroni`)).body);
    expect(st).toMatchObject({ role: 'replica', state: 'running', server_version: expect.any(Number) });
    expect(String(st.server_version)).toMatch(/^13\d{4}$/);
    // startMember waited for the replica's own WAL receiver; the leader sees it too.
    await waitUntil('the leader to see the replica streaming', async () => {
      const rows = await sql<{ application_name: string; state: string }>(
        c.clientConfig(leader),
        'select application_name, state from pg_stat_replication',
      );
      return rows.length === 1 && rows[0]?.application_name === m.name && rows[0]?.state === 'streaming';
    });
    await waitUntil('the row written while down to reach the replica', async () => {
      const rows = await sql<{ n: number }>(c.clientConfig(m.name), 'select n from while_down');
      return rows[0]?.n === 42;
    });
    await c.startMember(m.name); // already running: no-op
    console.log(`timings: stopMember ${timings.stopMember} ms, startMember ${timings.startMember} ms`);
  });

  it('stop() cleans everything, the restarted member included', async () => {
    const c = cluster as PatroniCluster;
    const e = etcd as EtcdServer;
    const pids = [...c.members.map((m) => m.pid), e.pid];
    const postmasters = await Promise.all(c.members.map((m) => postmasterPid(m.dataDir)));
    const t = Date.now();
    await c.stop();
    await c.stop(); // idempotent
    timings.stop = Date.now() - t;
    await e.stop();
    for (const pid of [...pids, ...postmasters]) expect(await isAlive(pid), `pid ${pid}`).toBe(false);
    expect(await pgrepF(c.rootDir)).toEqual([]);
    if (process.env.PGRB_KEEP_TEST_DIRS !== '1') expect(await exists(c.rootDir)).toBe(false);
    await expect(c.startMember(c.members[0]?.name as string)).rejects.toThrow(/stopping/);
    console.log(`timings: stop ${timings.stop} ms`);
  });
});

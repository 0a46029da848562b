import { execFile } from 'node:child_process';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type EtcdServer,
  httpRequest,
  isAlive,
  type PatroniCluster,
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
  cluster = await startPatroniCluster({ etcd, members: 2 });
  timings.patroni = Date.now() - t;
}, 90_000);

afterAll(async () => {
  await cluster?.stop();
  await etcd?.stop();
});

// Full command lines of live processes mentioning `text` (pgrep -f), this test's own excepted.
function pgrepF(text: string): Promise<string[]> {
  return new Promise((res) => {
    execFile('pgrep', ['-af', text], { encoding: 'utf8' }, (_err, stdout) => {
      res(
        stdout
          .split('\n')
          .filter((l) => l.trim() !== '')
          .filter((l) => !l.includes('pgrep')),
      );
    });
  });
}

async function getJson(url: string): Promise<Record<string, unknown>> {
  const r = await httpRequest('GET', url);
  expect(r.status, `${url}: ${r.body}`).toBeLessThan(600);
  return JSON.parse(r.body) as Record<string, unknown>;
}

async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('etcd + Patroni test cluster', () => {
  it('has one leader and one streaming replica', async () => {
    const c = cluster as PatroniCluster;
    const leader = await c.leader();
    expect(c.members.map((m) => m.name)).toContain(leader);
    let roles: Record<string, unknown>[] = [];
    for (let i = 0; i < 50; i++) {
      roles = await Promise.all(c.members.map((m) => getJson(`${m.restUrl}/patroni`)));
      if (
        roles
          .map((r) => r.role)
          .sort()
          .join() === 'master,replica'
      )
        break;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(roles.map((r) => r.role).sort()).toEqual(['master', 'replica']);
    const client = new pg.Client(c.clientConfig(leader));
    await client.connect();
    try {
      const replica = c.members.find((m) => m.name !== leader)?.name;
      // On a loaded machine the walsender can pass through catchup again: allow it to settle.
      let rows: { application_name: string; state: string }[] = [];
      for (let i = 0; i < 50; i++) {
        rows = (
          await client.query<{ application_name: string; state: string }>(
            'select application_name, state from pg_stat_replication',
          )
        ).rows;
        if (rows.length === 1 && rows[0]?.state === 'streaming') break;
        await new Promise((r) => setTimeout(r, 200));
      }
      expect(rows).toEqual([{ application_name: replica, state: 'streaming' }]);
      const s = await client.query<{ c: string }>("select current_setting('data_checksums') as c");
      expect(s.rows[0]?.c).toBe('on');
    } finally {
      await client.end();
    }
    console.log(`timings: etcd ${timings.etcd} ms, patroni cluster ${timings.patroni} ms`);
  });

  it('pauses and resumes through PATCH /config', async () => {
    const c = cluster as PatroniCluster;
    const [first] = c.members;
    const patch = async (body: unknown) => {
      const r = await httpRequest('PATCH', `${first?.restUrl}/config`, body);
      expect(r.status, r.body).toBe(200);
    };
    const paused = async () =>
      Promise.all(c.members.map(async (m) => (await getJson(`${m.restUrl}/patroni`)).pause === true));

    await patch({ pause: true });
    await waitUntil('pause on every member', async () => (await paused()).every(Boolean));
    expect((await getJson(`${first?.restUrl}/cluster`)).pause).toBe(true);

    await patch({ pause: null });
    await waitUntil('no member paused', async () => !(await paused()).some(Boolean));
    expect((await getJson(`${first?.restUrl}/cluster`)).pause).toBeUndefined();
  });

  it('stops everything cleanly', async () => {
    const c = cluster as PatroniCluster;
    const e = etcd as EtcdServer;
    const pids = [...c.members.map((m) => m.pid), e.pid];
    const postmasters = await Promise.all(
      c.members.map(async (m) => {
        const { readFile } = await import('node:fs/promises');
        return Number((await readFile(`${m.dataDir}/postmaster.pid`, 'utf8')).split('\n')[0]);
      }),
    );
    const t = Date.now();
    await c.stop();
    await c.stop(); // idempotent
    await e.stop();
    console.log(`stop: ${Date.now() - t} ms`);
    for (const pid of [...pids, ...postmasters]) expect(await isAlive(pid), `pid ${pid}`).toBe(false);
    expect(await pgrepF(c.rootDir)).toEqual([]);
    expect(await pgrepF(e.rootDir)).toEqual([]);
  });
});

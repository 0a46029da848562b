// The Consul dev agent of the test environment: ready when its KV and sessions work, every socket
// on loopback, Consul's production session_ttl_min kept, running as the server user; stop() ends it
// and removes its files; and a Patroni cluster put on it keeps its state there.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  httpRequest,
  isAlive,
  serverUid,
  startConsul,
  startPatroniCluster,
} from '../../tools/testenv/index.js';

/** Local addresses of the TCP/UDP sockets a process listens on (ss). */
function listening(pid: number): Promise<string[]> {
  return new Promise((res, rej) =>
    execFile('ss', ['-Htulpn'], (err, out) => {
      if (err) return rej(err);
      res(
        out
          .split('\n')
          .filter((l) => l.includes(`pid=${pid},`))
          .map((l) => l.trim().split(/\s+/)[4] ?? ''),
      );
    }),
  );
}

describe('startConsul', () => {
  it('a dev agent on loopback only, as the server user, with sessions of at least 10 s; stop() cleans up', async () => {
    const t0 = Date.now();
    const c = await startConsul();
    const ready = Date.now() - t0;
    try {
      console.log(`consul dev agent ready in ${ready} ms`);
      const sockets = await listening(c.pid);
      expect(sockets.length).toBeGreaterThanOrEqual(3);
      for (const s of sockets) expect(s).toMatch(/^127\.0\.0\.1:\d+$/);
      expect(sockets).toContain(`127.0.0.1:${c.httpPort}`);
      const { stdout } = await new Promise<{ stdout: string }>((res, rej) =>
        execFile('ps', ['-o', 'uid=', '-p', String(c.pid)], (e, stdout) => (e ? rej(e) : res({ stdout }))),
      );
      expect(Number(stdout.trim())).toBe(await serverUid());
      const short = await httpRequest('PUT', `${c.httpUrl}/v1/session/create`, { TTL: '5s' });
      expect(short.status).toBe(500);
      expect(short.body).toContain('Invalid Session TTL');
      const ok = await httpRequest('PUT', `${c.httpUrl}/v1/session/create`, { TTL: '10s' });
      expect(ok.status).toBe(200);
    } finally {
      await c.stop();
    }
    expect(await isAlive(c.pid)).toBe(false);
    expect(existsSync(c.rootDir)).toBe(false);
  }, 60_000);

  it('startPatroniCluster({ consul }): the cluster keeps its state in Consul', async () => {
    const consul = await startConsul();
    try {
      const cluster = await startPatroniCluster({ consul, members: 2 });
      try {
        const leader = await cluster.leader();
        const r = await httpRequest('GET', `${consul.httpUrl}/v1/kv/service/${cluster.scope}/?recurse=true`);
        const keys = (JSON.parse(r.body) as { Key: string; Session?: string }[]).map((k) => k.Key);
        expect(keys).toEqual(
          expect.arrayContaining([
            `service/${cluster.scope}/leader`,
            `service/${cluster.scope}/initialize`,
            ...cluster.members.map((m) => `service/${cluster.scope}/members/${m.name}`),
          ]),
        );
        const l = await httpRequest('GET', `${consul.httpUrl}/v1/kv/service/${cluster.scope}/leader?raw`);
        expect(l.body).toBe(leader);
      } finally {
        await cluster.stop();
      }
    } finally {
      await consul.stop();
    }
    await expect(startPatroniCluster({ members: 1 })).rejects.toThrow(/exactly one DCS/);
  }, 120_000);
});

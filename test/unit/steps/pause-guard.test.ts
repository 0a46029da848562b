// The pause guard's decisions, driven through its real Python program against a small stand-in
// of Patroni's /config (GET, PATCH with patch semantics). The real cluster is in
// test/integration/patroni.test.ts; this covers the cases a live cluster makes slow to arrange.
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { guardCommandLine, guardSettings, MARKER_KEY } from '../../../src/steps/patroni/pause-guard.js';

interface Fake {
  url: string;
  config: Record<string, unknown>;
  patches: Record<string, unknown>[];
  server: Server;
}

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

/** Patroni's /config in miniature: PATCH merges, a null value removes the key. */
async function fakePatroni(config: Record<string, unknown>): Promise<Fake> {
  const fake = { config, patches: [] as Record<string, unknown>[] } as Fake;
  fake.server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => {
      body += c;
    });
    req.on('end', () => {
      if (req.method === 'PATCH') {
        const patch = JSON.parse(body) as Record<string, unknown>;
        fake.patches.push(patch);
        for (const [k, v] of Object.entries(patch))
          if (v === null) delete fake.config[k];
          else fake.config[k] = v;
      }
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify(fake.config));
    });
  });
  servers.push(fake.server);
  await new Promise<void>((r) => fake.server.listen(0, '127.0.0.1', r));
  fake.url = `http://127.0.0.1:${(fake.server.address() as AddressInfo).port}`;
  return fake;
}

/** Starts the guard for run `r1`, attempt `a1`; returns a way to talk to it and its output once it ends. */
function startGuard(urls: string[], opts: { silence?: number; settle?: number } = {}) {
  const child = spawn('/bin/sh', ['-c', guardCommandLine()], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => {
    out += c;
  });
  child.stdin.write(
    guardSettings({
      run: 'r1',
      attempt: 'a1',
      scope: 'demo',
      urls,
      patroni: { url: urls[0]!, timeoutMs: 2000, member: 'm1', patronictl: 'patronictl' },
      silenceS: opts.silence ?? 30,
      retryS: 3,
      settleS: opts.settle ?? 0,
    }),
  );
  const ended = new Promise<string>((r) => child.on('close', () => r(out)));
  const ready = new Promise<void>((r, j) => {
    const t = setInterval(() => {
      if (out.startsWith('ready')) {
        clearInterval(t);
        r();
      }
    }, 20);
    child.on('close', () => j(new Error(`guard ended before ready: ${out}`)));
  });
  return { child, ended, ready, say: (w: string) => child.stdin.write(`${w}\n`) };
}

const mine = {
  pause: true,
  [MARKER_KEY]: { run: 'r1', attempt: 'a1', controller: 'c', pid: 1, since: 't' },
};

describe('pause guard', () => {
  it("EOF (the runner died) with this run's marker in place: resumes, removing the marker", async () => {
    const p = await fakePatroni({ ttl: 30, ...structuredClone(mine) });
    const g = startGuard([p.url]);
    await g.ready;
    g.say('armed');
    g.child.stdin.end();
    const out = await g.ended;
    expect(out).toContain("acting: the run's connection ended");
    expect(out).toContain(`ok: resumed Patroni through ${p.url}`);
    expect(p.patches).toEqual([{ pause: null, [MARKER_KEY]: null }]);
    expect(p.config).toEqual({ ttl: 30 });
  });

  it('a pause someone else made since (another marker, or none) is left alone', async () => {
    for (const config of [{ pause: true, [MARKER_KEY]: { run: 'r2' } }, { pause: true }]) {
      const p = await fakePatroni(config);
      const g = startGuard([p.url]);
      await g.ready;
      g.say('armed');
      g.child.stdin.end();
      const out = await g.ended;
      expect(out).toMatch(
        /paused: the cluster is paused by (pgrunbook run r2|someone else), not by this run/,
      );
      expect(p.patches).toEqual([]);
    }
  });

  it('a pause made again by a later attempt of the same run (pgrunbook resume) is left to that attempt', async () => {
    // The earlier attempt's guard never saw its pause land (not armed): it watches for it. The
    // resumed run pauses again under the same run id, with its own attempt token and guard.
    const p = await fakePatroni({ ttl: 30 });
    const g = startGuard([p.url], { settle: 2 });
    await g.ready;
    g.say('finish');
    await new Promise((r) => setTimeout(r, 500));
    Object.assign(p.config, { pause: true, [MARKER_KEY]: { ...mine[MARKER_KEY], attempt: 'a2' } });
    const out = await g.ended;
    expect(out).toContain('paused again by a later attempt of this run');
    expect(p.patches).toEqual([]);
    expect(p.config.pause).toBe(true);
  });

  it('release: the run resumed itself, the guard does nothing', async () => {
    const p = await fakePatroni(structuredClone(mine));
    const g = startGuard([p.url]);
    await g.ready;
    g.say('release');
    expect(await g.ended).toContain('ok: released');
    expect(p.patches).toEqual([]);
  });

  it('silence longer than `silence` (a network cut): acts, without EOF', async () => {
    const p = await fakePatroni(structuredClone(mine));
    const g = startGuard([p.url], { silence: 1 });
    await g.ready;
    g.say('armed');
    const out = await g.ended;
    expect(out).toContain('acting: no word from the run for 1s');
    expect(p.config.pause).toBeUndefined();
    g.child.stdin.end();
  });

  it('beats keep it waiting', async () => {
    const p = await fakePatroni(structuredClone(mine));
    const g = startGuard([p.url], { silence: 1 });
    await g.ready;
    for (let i = 0; i < 6; i++) {
      g.say('beat');
      await new Promise((r) => setTimeout(r, 400));
    }
    expect(g.child.exitCode).toBeNull();
    expect(p.patches).toEqual([]);
    g.say('release');
    await g.ended;
  });

  it('before `armed`, a member that does not show the pause yet is watched for `settle` seconds', async () => {
    const p = await fakePatroni({ ttl: 30 });
    const g = startGuard([p.url], { settle: 5 });
    await g.ready;
    g.child.stdin.end();
    // The pause reaches this member's view a moment after the runner died.
    await new Promise((r) => setTimeout(r, 1500));
    Object.assign(p.config, structuredClone(mine));
    expect(await g.ended).toContain('ok: resumed Patroni');
    expect(p.config.pause).toBeUndefined();
  });

  it('an unreachable first member: resumes through the next one; none answers: fails, naming why', async () => {
    const p = await fakePatroni(structuredClone(mine));
    const g = startGuard(['http://127.0.0.1:9', p.url]);
    await g.ready;
    g.say('armed');
    g.child.stdin.end();
    expect(await g.ended).toContain(`ok: resumed Patroni through ${p.url}`);

    const dead = startGuard(['http://127.0.0.1:9']);
    await dead.ready;
    dead.say('finish');
    expect(await dead.ended).toMatch(/failed: could not resume Patroni \(http:\/\/127\.0\.0\.1:9: /);
  }, 20_000);
});

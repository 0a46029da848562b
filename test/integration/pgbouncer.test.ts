// pgbouncer.pause / pgbouncer.resume against a real PgBouncer (Debian's) in front of a real
// PostgreSQL: a client through PgBouncer waits during the pause and gets its answer after it, with
// no error; the pause never outlives max_pause (the run fails, PgBouncer is resumed) nor the
// runner (kill -9: the guard resumes it). The truth is read from PgBouncer by a client, not from
// what the run said.
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type PgBouncerServer,
  type PgServer,
  startPgBouncer,
  startPostgres,
} from '../../tools/testenv/index.js';
import { events, outputsOf, runCli, startCli, waitUntil, workdir } from './cli.js';

const PASSWORD = 'bouncer-app-secret';
const ADMIN_PASSWORD = 'bouncer-admin-secret';
let server: PgServer;
let other: PgServer;
let bouncer: PgBouncerServer;

beforeAll(async () => {
  [server, other] = await Promise.all([
    startPostgres({ version: 15, password: PASSWORD }),
    startPostgres({ version: 15, password: PASSWORD }),
  ]);
  bouncer = await startPgBouncer({
    databases: { postgres: { host: '127.0.0.1', port: server.port } },
    users: { postgres: PASSWORD, pgb_admin: ADMIN_PASSWORD },
    adminUsers: ['pgb_admin'],
  });
}, 60_000);
afterAll(async () => {
  await bouncer?.stop();
  await Promise.all([server?.stop(), other?.stop()]);
});

const inventory = () => `hosts:
  bouncer:
    transport: local
    pgbouncer: { host: 127.0.0.1, port: ${bouncer.port}, user: pgb_admin, password: { env: PGB_ADMIN }, sslmode: disable }
`;
const env = { PGB_ADMIN: ADMIN_PASSWORD };

/** The port of the server a new client through PgBouncer lands on. */
async function landsOn(): Promise<number> {
  const c = new pg.Client({
    host: bouncer.host,
    port: bouncer.port,
    user: 'postgres',
    password: PASSWORD,
    database: 'postgres',
  });
  await c.connect();
  try {
    return Number((await c.query("select current_setting('port') as p")).rows[0].p);
  } finally {
    await c.end();
  }
}

/** One query through PgBouncer: how long it took, or its error. */
async function timedQuery(): Promise<{ ms: number; error?: string }> {
  const c = new pg.Client({
    host: bouncer.host,
    port: bouncer.port,
    user: 'postgres',
    password: PASSWORD,
    database: 'postgres',
  });
  const t0 = Date.now();
  try {
    await c.connect();
    await c.query('select 1');
    return { ms: Date.now() - t0 };
  } catch (err) {
    return { ms: Date.now() - t0, error: (err as Error).message };
  } finally {
    await c.end().catch(() => {});
  }
}

const playbook = (maxPause: number, holdSeconds: number) => `
- name: pause the pooler
  hosts: bouncer
  steps:
    - id: bp
      pgbouncer.pause: { max_pause: ${maxPause}, timeout: 10 }
    - pause: { seconds: ${holdSeconds} }
    - id: br
      pgbouncer.resume: { paused_by: "{{ bp }}" }
`;

describe('pgbouncer.pause and pgbouncer.resume', () => {
  it('hold a client for the pause and let it through after, without an error', async () => {
    const cwd = workdir({ 'pb.yml': playbook(60, 3), 'inv.yml': inventory() });
    const run = startCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json'], { cwd, env });
    let out = '';
    run.child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
    });
    await waitUntil('the pause step finished', () =>
      /"type":"step_finished"[^\n]*"names":\["bp"\]/.test(out),
    );
    const held = await timedQuery();
    const r = await run.done;
    expect(r.code, r.stdout.slice(-2000) + r.stderr).toBe(0);
    expect(held.error).toBeUndefined();
    // It waited for most of the 3 s the run kept PgBouncer paused.
    expect(held.ms).toBeGreaterThan(2000);
    const resumed = outputsOf<{ resumed: boolean; paused_ms: number }>(events(r.stdout), 'br');
    expect(resumed.resumed).toBe(true);
    expect(resumed.paused_ms).toBeGreaterThanOrEqual(3000);
    // Not paused any more: a new client goes straight through.
    expect((await timedQuery()).ms).toBeLessThan(1000);
    // The admin password is in no output.
    expect(r.stdout + r.stderr).not.toContain(ADMIN_PASSWORD);
  }, 60_000);

  it('a pause longer than max_pause is ended by the guard, and the run fails', async () => {
    const cwd = workdir({ 'pb.yml': playbook(2, 8), 'inv.yml': inventory() });
    const t0 = Date.now();
    const run = startCli(['run', 'pb.yml', '-i', 'inv.yml'], { cwd, env });
    let out = '';
    run.child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
    });
    await waitUntil('the pause step finished', () => /paused after/.test(out));
    const held = await timedQuery();
    const r = await run.done;
    expect(r.code, r.stdout.slice(-2000) + r.stderr).toBe(1);
    expect(r.stdout).toMatch(/PgBouncer pause guard on bouncer ended while the run held the pause/);
    // The client was let through by the guard after about max_pause, long before the run's 8 s.
    expect(held.error).toBeUndefined();
    expect(Date.now() - t0).toBeLessThan(30_000);
    expect(held.ms).toBeLessThan(5000);
    expect((await timedQuery()).ms).toBeLessThan(1000);
  }, 60_000);

  it('kill -9 of the runner while paused: the guard resumes PgBouncer at once', async () => {
    const cwd = workdir({ 'pb.yml': playbook(120, 60), 'inv.yml': inventory() });
    const run = startCli(['run', 'pb.yml', '-i', 'inv.yml'], { cwd, env });
    let out = '';
    run.child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
    });
    await waitUntil('the pause step finished', () => /paused after/.test(out));
    const pending = timedQuery();
    await new Promise((res) => setTimeout(res, 500));
    run.child.kill('SIGKILL');
    const killedAt = Date.now();
    const held = await pending;
    expect(held.error).toBeUndefined();
    // Answered within seconds of the runner's death, not after the 60 s the run meant to pause.
    expect(Date.now() - killedAt).toBeLessThan(5000);
    expect((await timedQuery()).ms).toBeLessThan(1000);
  }, 60_000);

  it('past the point of no return the guard keeps watching: a run failing there ends with PgBouncer resumed', async () => {
    const cwd = workdir({
      'inv.yml': inventory(),
      'pb.yml': `
- name: pause, cross, fail
  hosts: bouncer
  steps:
    - id: bp
      pgbouncer.pause: { max_pause: 120, timeout: 10 }
    - name: cross
      point_of_no_return: "fix forward"
      shell: "true"
    - shell: "exit 4"
`,
    });
    const r = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json', '--yes'], { cwd, env });
    expect(r.code, r.stdout.slice(-2000) + r.stderr).toBe(1);
    const ev = events(r.stdout);
    const ponr = ev.find((e) => e.type === 'point_of_no_return')!;
    // The pooler's guard did not stand down with the undo stack…
    expect(ponr.guardsReleased ?? []).toEqual([]);
    // …so the run's end resumed PgBouncer and says so.
    const summary = (ev.find((e) => e.type === 'run_finished')!.summary as string[]).join('\n');
    expect(summary).toMatch(/PgBouncer pause on bouncer: resumed PgBouncer \(pid \d+, SIGUSR2\)/);
    expect((await timedQuery()).ms).toBeLessThan(1000);
  }, 60_000);

  it('pgbouncer.point moves a database to another server, keeping the file; its undo moves it back', async () => {
    const before = readFileSync(bouncer.configFile, 'utf8');
    const mode = statSync(bouncer.configFile);
    expect(await landsOn()).toBe(server.port);
    const point = (then: string) => `
- name: cut over
  hosts: bouncer
  steps:
    - id: pt
      pgbouncer.point: { database: postgres, host: 127.0.0.1, port: ${other.port} }
${then}`;
    const failing = await runCli(['run', 'pb.yml', '-i', 'inv.yml'], {
      cwd: workdir({ 'pb.yml': point('    - shell: "exit 3"'), 'inv.yml': inventory() }),
      env,
    });
    expect(failing.code, failing.stdout + failing.stderr).toBe(1);
    // Undone: the file is byte for byte what it was, and clients land where they did.
    expect(readFileSync(bouncer.configFile, 'utf8')).toBe(before);
    expect(await landsOn()).toBe(server.port);

    const r = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json'], {
      cwd: workdir({ 'pb.yml': point(''), 'inv.yml': inventory() }),
      env,
    });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(await landsOn()).toBe(other.port);
    const after = readFileSync(bouncer.configFile, 'utf8');
    const changed = after.split('\n').filter((l, i) => l !== before.split('\n')[i]);
    expect(changed).toEqual([`postgres = host=127.0.0.1 port=${other.port} dbname=postgres`]);
    const st = statSync(bouncer.configFile);
    expect([st.uid, st.gid, st.mode]).toEqual([mode.uid, mode.gid, mode.mode]);
    expect(outputsOf<{ changed: boolean }>(events(r.stdout), 'pt').changed).toBe(true);
    // A backend password in the line stays in the file and out of the run's output and journal.
    writeFileSync(
      bouncer.configFile,
      after.replace(`dbname=postgres`, `dbname=postgres password=${PASSWORD}`),
    );
    const back = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json'], {
      cwd: workdir({
        'pb.yml': point('    - shell: "exit 3"').replace(`port: ${other.port}`, `port: ${server.port}`),
        'inv.yml': inventory(),
      }),
      env,
    });
    expect(back.code).toBe(1);
    expect(back.stdout + back.stderr).not.toContain(PASSWORD);
    expect(back.stdout).toContain('password=***');
    expect(readFileSync(bouncer.configFile, 'utf8')).toContain(
      `port=${other.port} dbname=postgres password=${PASSWORD}`,
    );
    expect(await landsOn()).toBe(other.port);
  }, 60_000);
});

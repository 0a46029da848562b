// pg steps, plan --check and secrets against real PostgreSQL 15 and 13 (password auth on 15).
import { readdirSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, type PgServer, startPostgres } from '../../tools/testenv/index.js';
import { events, runCli, workdir } from './cli.js';

const PASSWORD = 'S3cr3t-pw-4-pgrunbook-tests';
let pg15: PgServer;
let pg13: PgServer;

beforeAll(async () => {
  [pg15, pg13] = await Promise.all([
    startPostgres({ version: 15, password: PASSWORD }),
    startPostgres({ version: 13 }),
  ]);
});
afterAll(async () => {
  await Promise.all([pg15?.stop(), pg13?.stop()]);
});

const inventory = () => `
hosts:
  db15:
    transport: local
    pg: { host: 127.0.0.1, port: ${pg15.port}, user: postgres, database: postgres, sslmode: disable, password: { env: PGRB_TEST_PASSWORD } }
  db13:
    transport: local
    pg: { host: 127.0.0.1, port: ${pg13.port}, user: postgres, sslmode: disable }
groups:
  dbs: { hosts: [db15, db13] }
`;

const env = { PGRB_TEST_PASSWORD: PASSWORD };

describe('PostgreSQL steps', () => {
  it('runs parameterised SQL on 15 and 13, registers rows, and undoes on failure', async () => {
    const cwd = workdir({
      'inv.yml': inventory(),
      'pb.yml': `
- name: pg
  hosts: dbs
  steps:
    - id: v
      pg.query: "select current_setting('server_version_num')::int as num"
    - pg.query:
        sql: "create table t_undo (host text)"
        revert_sql: "drop table t_undo"
    - pg.query:
        sql: "insert into t_undo values ($1)"
        params: ["{{ host.name }}"]
    - id: got
      pg.query: { sql: "select host from t_undo where host = $1", params: ["{{ host.name }}"] }
    - assert: { that: "got.rows[0].host == host.name and v.rows[0].num >= 130000" }
    - name: fail on purpose
      shell: "exit 1"
`,
    });
    const r = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json'], { cwd, env });
    expect(r.code).toBe(1);
    const ev = events(r.stdout);
    const versions = ev
      .filter((e) => e.type === 'step_finished' && e.address === 'p0.steps.0')
      .map((e) => [e.host, ((e.outputs as { rows: { num: number }[] }).rows[0]!.num / 10000) | 0]);
    expect(Object.fromEntries(versions)).toEqual({ db15: 15, db13: 13 });
    expect(
      ev
        .filter((e) => e.type === 'undo_finished' && e.ok)
        .map((e) => e.host)
        .sort(),
    ).toEqual(['db13', 'db15']);
    // The table is gone again on both servers.
    const check = await runCli(['run', 'check.yml', '-i', 'inv.yml', '--output', 'json'], {
      cwd: workdir({
        'inv.yml': inventory(),
        'check.yml':
          '- name: c\n  hosts: dbs\n  steps:\n    - id: n\n      pg.query: "select count(*)::int as n from pg_tables where tablename = \'t_undo\'"\n    - assert: { that: "n.rows[0].n == 0" }\n',
      }),
      env,
    });
    expect(check.code).toBe(0);
  });

  it('plan --check learns the version and role read-only; a plain plan connects to nothing', async () => {
    const cwd = workdir({
      'inv.yml': inventory(),
      'pb.yml': '- name: p\n  hosts: dbs\n  steps:\n    - pg.query: "select 1"\n',
    });
    const checked = await runCli(['plan', 'pb.yml', '-i', 'inv.yml', '--check', '--format', 'json'], {
      cwd,
      env,
    });
    expect(checked.code).toBe(0);
    const plan = JSON.parse(checked.stdout);
    expect(plan.facts.db15.pg.versionNum).toBeGreaterThanOrEqual(150000);
    expect(plan.facts.db13.pg.versionNum).toBeLessThan(140000);
    expect(plan.facts.db15.pg.inRecovery).toBe(false);
    // Without --check, even a missing password variable is fine: nothing connects.
    const offline = await runCli(['plan', 'pb.yml', '-i', 'inv.yml'], { cwd });
    expect(offline.code).toBe(0);
    expect(offline.stdout).toContain('offline: no connection made');
  });

  it('a wrong password fails with a clear message that does not contain it', async () => {
    const cwd = workdir({
      'inv.yml': inventory(),
      'pb.yml': '- name: p\n  hosts: db15\n  steps:\n    - pg.query: "select 1"\n',
    });
    const wrong = 'Wr0ng-pass-never-printed';
    const r = await runCli(['run', 'pb.yml', '-i', 'inv.yml'], { cwd, env: { PGRB_TEST_PASSWORD: wrong } });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(
      /cannot connect to PostgreSQL at 127\.0\.0\.1:\d+ as postgres\/postgres: password authentication failed/,
    );
    expect(r.stdout + r.stderr).not.toContain(wrong);
  });

  it('the password appears in no output, plan, journal or report', async () => {
    const cwd = workdir({
      'inv.yml': inventory(),
      'pb.yml': `
- name: secrets
  hosts: dbs
  steps:
    - id: who
      pg.query: "select current_user as u"
      hosts: db15
      register: who
    - shell: "echo connected as {{ who.rows[0].u }}"
      hosts: db15
    - name: echo the password by mistake
      hosts: db15
      shell: { cmd: "echo env=[$PGRB_TEST_PASSWORD] given={{ given }}; echo given={{ given }} >&2" }
    - name: fail
      shell: "echo failing; exit 2"
`,
    });
    const outputs: string[] = [];
    // The password is also handed over by mistake with -e: it must still never be printed.
    const given = ['-e', `given=${PASSWORD}`];
    const run = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--report', 'report.md', ...given], {
      cwd,
      env,
    });
    outputs.push(run.stdout, run.stderr);
    const json = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json', ...given], { cwd, env });
    outputs.push(json.stdout, json.stderr);
    for (const format of ['text', 'json', 'markdown']) {
      const p = await runCli(['plan', 'pb.yml', '-i', 'inv.yml', '--check', '--format', format, ...given], {
        cwd,
        env,
      });
      expect(p.code).toBe(0);
      outputs.push(p.stdout, p.stderr);
    }
    const runs = join(cwd, '.pgrunbook', 'runs');
    for (const id of readdirSync(runs)) outputs.push(readFileSync(join(runs, id, 'journal.jsonl'), 'utf8'));
    outputs.push(readFileSync(join(cwd, 'report.md'), 'utf8'));
    const all = outputs.join('\n');
    // The run really connected with the password and reached the echo.
    expect(all).toContain('connected as postgres');
    expect(all).toContain('echo the password by mistake');
    expect(all).not.toContain(PASSWORD);
    expect(all).toContain('given=***');
    // The secret's environment variable is not passed on to commands at all.
    expect(all).toContain('env=[]');
  });
});

describe('validation before anything runs', () => {
  let trap: Server;
  let connections = 0;
  let port = 0;
  beforeAll(async () => {
    port = await freePort();
    trap = createServer((s) => {
      connections++;
      s.destroy();
    });
    await new Promise<void>((r) => trap.listen(port, '127.0.0.1', r));
  });
  afterAll(() => new Promise<void>((r) => trap.close(() => r())));

  it('three mistakes give three file:line:col lines, exit 2, no connection, no stack trace', async () => {
    const cwd = workdir({
      'inv.yml': `hosts:\n  db1:\n    ssh: { host: 127.0.0.1, port: ${port}, user: x, accept_unknown_host_key: true }\n    pg: { host: 127.0.0.1, port: ${port} }\n`,
      'pb.yml': [
        '- name: three mistakes',
        '  hosts: db1',
        '  steps:',
        '    - pg.query: { sql: 42 }',
        '    - shel: "echo hi"',
        '    - shell: "echo {{ nope }}"',
        '',
      ].join('\n'),
    });
    for (const cmd of [
      ['run', 'pb.yml', '-i', 'inv.yml'],
      ['plan', 'pb.yml', '-i', 'inv.yml'],
      ['validate', 'pb.yml', '-i', 'inv.yml'],
    ]) {
      const r = await runCli(cmd, { cwd });
      expect(r.code).toBe(2);
      const lines = r.stderr.trim().split('\n');
      expect(lines).toEqual([
        'pb.yml:4:24: [0].steps[0].pg.query.sql: expected string (one SQL statement; use $1, $2 … for values), got number 42',
        'pb.yml:5:7: [0].steps[1].shel: unknown step type "shel" (did you mean "shell"?)',
        'pb.yml:6:14: [0].steps[2].shell.cmd: undefined name "nope"',
        '3 problems found; nothing was run.',
      ]);
      expect(r.stderr).not.toMatch(/\n\s+at /);
      expect(r.stdout).toBe('');
    }
    expect(connections).toBe(0);
  });
});

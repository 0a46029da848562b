// Issue 11's secret reproducers, each through the real CLI. The secrets come from {env} sources of
// a local host's pg.password (read at run start whether or not a step connects).
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { events, journalOf, runCli, workdir } from './cli.js';

const inventory = (extra = '') => `
hosts:
  db:
    transport: local
    pg: { host: 127.0.0.1, port: 1, sslmode: disable, password: { env: RG_PW } }
${extra}`;

describe('secrets (issue 11 reproducers)', () => {
  it('a secret containing | is masked before the report escapes it for Markdown', async () => {
    const pw = 'pipe|secret-4f2a';
    const cwd = workdir({
      'inv.yml': inventory(),
      'pb.yml': `- name: p\n  hosts: db\n  steps:\n    - name: fails saying it\n      shell: "echo 'pw is ${pw}' >&2; exit 3"\n`,
    });
    const r = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--report', 'r.md'], {
      cwd,
      env: { RG_PW: pw },
    });
    expect(r.code).toBe(1);
    const report = readFileSync(join(cwd, 'r.md'), 'utf8');
    expect(report).toContain('pw is ***');
    for (const text of [report, r.stdout, r.stderr, JSON.stringify(journalOf(cwd))]) {
      expect(text).not.toContain('secret-4f2a');
      expect(text).not.toContain('pipe\\|');
    }
  });

  it('a 2-character password is masked where it stands as a word, not inside other words', async () => {
    const cwd = workdir({
      'inv.yml': inventory(),
      'pb.yml':
        '- name: p\n  hosts: db\n  steps:\n    - id: say\n      shell: "echo PGPASSWORD=Qx; echo Qx; echo aQxb"\n',
    });
    const r = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json'], {
      cwd,
      env: { RG_PW: 'Qx' },
    });
    expect(r.code, r.stderr).toBe(0);
    const finished = events(r.stdout).find((e) => e.type === 'step_finished') as {
      outputs: { stdout: string };
    };
    expect(finished.outputs.stdout).toBe('PGPASSWORD=***\n***\naQxb\n');
    for (const text of [
      r.stdout,
      readFileSync(join(cwd, '.pgrunbook', 'runs', journalRun(cwd), 'journal.jsonl'), 'utf8'),
    ])
      expect(text).not.toMatch(/(?<![A-Za-z0-9])Qx(?![A-Za-z0-9])/);
  });

  it('a password equal to a path segment leaves the journal path intact, and resume works', async () => {
    const pw = 'opsbooks';
    const cwd = workdir({ 'inv.yml': inventory() });
    mkdirSync(join(cwd, pw));
    writeFileSync(
      join(cwd, pw, 'pb.yml'),
      `- name: p\n  hosts: db\n  steps:\n    - name: needs the flag\n      shell: "test -f ${join(cwd, 'flag')}"\n`,
    );
    const env = { RG_PW: pw };
    const first = await runCli(['run', `${pw}/pb.yml`, '-i', 'inv.yml'], { cwd, env });
    expect(first.code).toBe(1);
    const start = journalOf(cwd).find((e) => e.type === 'run_started')!;
    expect(start.playbook).toBe(join(cwd, pw, 'pb.yml'));
    writeFileSync(join(cwd, 'flag'), '');
    const resumed = await runCli(['resume', String(start.runId)], { cwd, env });
    expect(resumed.stderr).not.toContain('file not found');
    expect(resumed.code, resumed.stderr + resumed.stdout).toBe(0);
    expect(resumed.stdout).toContain(`${join(cwd, pw, 'pb.yml')}`);
  });

  it('an -e value holding a secret is masked in the journal; resume asks for it again instead of running with ***', async () => {
    const pw = 'ev-secret-9c1d';
    const cwd = workdir({ 'inv.yml': inventory() });
    writeFileSync(
      join(cwd, 'pb.yml'),
      [
        '- name: p',
        '  hosts: db',
        '  steps:',
        '    - name: needs the flag',
        `      shell: "test -f ${join(cwd, 'flag')}"`,
        '    - name: uses the value',
        `      shell: "printf %s {{ conn }} > ${join(cwd, 'used')}"`,
        '',
      ].join('\n'),
    );
    const env = { RG_PW: pw };
    const conn = `host=db password=${pw}`;
    const first = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '-e', `conn=${conn}`, '-e', 'n=1'], {
      cwd,
      env,
    });
    expect(first.code).toBe(1);
    const start = journalOf(cwd).find((e) => e.type === 'run_started')!;
    expect(start.extraVars).toEqual({ conn: 'host=db password=***', n: 1 });
    expect(start.maskedExtraVars).toEqual(['conn']);
    expect(JSON.stringify(journalOf(cwd))).not.toContain(pw);
    writeFileSync(join(cwd, 'flag'), '');
    const runId = String(start.runId);
    // Without it: refused, naming the value and the command to give; nothing runs.
    const bare = await runCli(['resume', runId], { cwd, env });
    expect(bare.code).toBe(2);
    expect(bare.stderr).toContain(
      `masked in its journal: conn. Give them again, with the same values: pgrunbook resume ${runId} -e conn=…`,
    );
    expect(existsSync(join(cwd, 'used'))).toBe(false);
    // Another -e cannot change the run.
    const other = await runCli(['resume', runId, '-e', `conn=${conn}`, '-e', 'n=2'], { cwd, env });
    expect(other.code).toBe(2);
    expect(other.stderr).toContain(
      '-e n cannot be changed (only the values its journal masked can be given again: conn)',
    );
    // With it: the step gets the real value, not ***.
    const resumed = await runCli(['resume', runId, '-e', `conn=${conn}`], { cwd, env });
    expect(resumed.code, resumed.stderr + resumed.stdout).toBe(0);
    expect(readFileSync(join(cwd, 'used'), 'utf8')).toBe(conn);
    expect(resumed.stdout + resumed.stderr).not.toContain(pw);
  });

  it('credentials in patroni.url are refused at validation, located, without echoing them', async () => {
    const cwd = workdir({
      'inv.yml': inventory(`  pat:
    transport: local
    patroni: { url: "http://admin:urlpw-77c1@127.0.0.1:8008" }
`),
      'pb.yml': '- name: p\n  hosts: pat\n  steps:\n    - shell: "true"\n',
    });
    for (const args of [
      ['validate', 'pb.yml', '-i', 'inv.yml'],
      ['plan', 'pb.yml', '-i', 'inv.yml'],
      ['run', 'pb.yml', '-i', 'inv.yml'],
    ]) {
      const r = await runCli(args, { cwd });
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(
        /inv\.yml:8:\d+: hosts\.pat\.patroni\.url: credentials in the URL are refused .*patroni\.password as \{env: NAME\} or \{file: PATH\}/,
      );
      expect(r.stdout + r.stderr).not.toContain('urlpw-77c1');
    }
  });
});

function journalRun(cwd: string): string {
  return String(journalOf(cwd).find((e) => e.type === 'run_started')?.runId);
}

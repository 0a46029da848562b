// Nothing runs unless the whole plan builds: the new user's reproducer (a touch, then a template
// that cannot render) through the real CLI. validate -i, plan and run agree, every problem is
// located, and the file system shows that the first step never ran.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli, workdir } from './cli.js';

const INVENTORY = 'hosts:\n  local1: { transport: local }\n  local2: { transport: local }\n';
const REPRODUCER = [
  '- name: x',
  '  hosts: all',
  '  steps:',
  '    - shell: "touch marker-step1"',
  '    - shell: "echo {{ host.nope }}"',
  '',
].join('\n');
// Line 5, the column of `host.nope` inside the quoted template.
const WHERE = `pb.yml:5:${'    - shell: "echo {{ '.length + 1}`;

describe('the plan is built whole before anything runs', () => {
  it('validate -i names host.nope at its line and column, exit 2', async () => {
    const dir = workdir({ 'pb.yml': REPRODUCER, 'inv.yml': INVENTORY });
    const r = await runCli(['validate', 'pb.yml', '-i', 'inv.yml'], { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${WHERE}: [0].steps[1].shell.cmd: shell: undefined attribute "host.nope"`);
    expect(r.stderr).toContain('on hosts local1, local2');
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });

  it('run exits 2 with the same located problem, and marker-step1 was never created', async () => {
    const dir = workdir({ 'pb.yml': REPRODUCER, 'inv.yml': INVENTORY });
    const r = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--yes'], { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${WHERE}:`);
    expect(existsSync(join(dir, 'marker-step1'))).toBe(false);
    // Not even a journal: the run never started.
    expect(existsSync(join(dir, '.pgrunbook'))).toBe(false);
  });

  it('plan exits 2, shows the error in place and lists it located on stderr', async () => {
    const dir = workdir({ 'pb.yml': REPRODUCER, 'inv.yml': INVENTORY });
    const r = await runCli(['plan', 'pb.yml', '-i', 'inv.yml'], { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stdout).toContain('ERROR: shell: undefined attribute "host.nope"');
    expect(r.stderr).toContain(`${WHERE}:`);
  });

  it('the shipped fixture bracket-access.yml with groups.yml: located, and nothing runs', async () => {
    const root = join(import.meta.dirname, '../..');
    const dir = workdir({});
    const args = [
      join(root, 'test/fixtures/playbooks/bracket-access.yml'),
      '-i',
      join(root, 'test/fixtures/inventories/groups.yml'),
    ];
    const v = await runCli(['validate', ...args], { cwd: dir });
    const r = await runCli(['run', ...args, '--yes'], { cwd: dir });
    expect(v.code).toBe(2);
    expect(v.stderr).toMatch(/bracket-access\.yml:4:\d+: .*lab_dir/);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/bracket-access\.yml:4:\d+: .*lab_dir/);
    expect(existsSync(join(dir, '.pgrunbook'))).toBe(false);
  });

  it('a value only a run can know is not an error before the run', async () => {
    const pb = [
      '- name: x',
      '  hosts: local1',
      '  steps:',
      '    - shell: "echo hello"',
      '      register: out',
      '    - shell: "test {{ out.stdout | trim }} = hello"',
      '',
    ].join('\n');
    const dir = workdir({ 'pb.yml': pb, 'inv.yml': INVENTORY });
    expect((await runCli(['validate', 'pb.yml', '-i', 'inv.yml'], { cwd: dir })).code).toBe(0);
    const r = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--yes'], { cwd: dir });
    expect(r.code).toBe(0);
  });
});

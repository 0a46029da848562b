// Step types and gates over the real transports: file.write with undo, become, confirm, local abort.
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, type SshServer, startSshd } from '../../tools/testenv/index.js';
import { events, runCli, runIds, sshInventory, startCli, workdir } from './cli.js';

let sshd: SshServer;
let remote: string;

beforeAll(async () => {
  sshd = await startSshd();
  remote = await makeTempDir('pgrb-steps');
});
afterAll(async () => {
  await sshd?.stop();
});

describe('file.write over ssh', () => {
  it('writes with the mode, refuses to overwrite, and undo restores what was there', async () => {
    const path = join(remote, `conf-${Date.now()}.txt`);
    const pb = (force: boolean, fail: boolean) => `
- name: write
  hosts: db1
  steps:
    - file.write: { path: "${path}", content: "new content\\n", mode: "0640"${force ? ', force: true' : ''} }
${fail ? '    - shell: "exit 1"\n' : ''}`;
    const inv = sshInventory(sshd, ['db1']);
    const first = await runCli(['run', 'pb.yml', '-i', 'inv.yml'], {
      cwd: workdir({ 'inv.yml': inv, 'pb.yml': pb(false, false) }),
    });
    expect(first.code).toBe(0);
    expect(readFileSync(path, 'utf8')).toBe('new content\n');
    expect((statSync(path).mode & 0o777).toString(8)).toBe('640');

    writeFileSync(path, 'old content\n');
    const refused = await runCli(['run', 'pb.yml', '-i', 'inv.yml'], {
      cwd: workdir({ 'inv.yml': inv, 'pb.yml': pb(false, false) }),
    });
    expect(refused.code).toBe(1);
    expect(refused.stdout).toContain(`${path} exists; set force: true to overwrite it`);
    expect(readFileSync(path, 'utf8')).toBe('old content\n');

    const undone = await runCli(['run', 'pb.yml', '-i', 'inv.yml'], {
      cwd: workdir({ 'inv.yml': inv, 'pb.yml': pb(true, true) }),
    });
    expect(undone.code).toBe(1);
    expect(readFileSync(path, 'utf8')).toBe('old content\n');
    const { readdirSync } = await import('node:fs');
    expect(readdirSync(remote).filter((f) => f.includes('.pgrunbook-undo'))).toEqual([]);

    const fresh = join(remote, `fresh-${Date.now()}.txt`);
    const created = await runCli(['run', 'pb.yml', '-i', 'inv.yml'], {
      cwd: workdir({ 'inv.yml': inv, 'pb.yml': pb(false, true).replace(path, fresh) }),
    });
    expect(created.code).toBe(1);
    expect(existsSync(fresh)).toBe(false);
  });
});

describe('become: sudo over ssh', () => {
  it('runs commands through sudo -n as root', async () => {
    const inv = `${sshInventory(sshd, ['db1'])}`.replace('  db1: {}', '  db1: { become: sudo }');
    const cwd = workdir({
      'inv.yml': inv,
      'pb.yml':
        '- name: b\n  hosts: db1\n  steps:\n    - id: who\n      shell: id -un\n    - assert: { that: "who.stdout | trim == \'root\'" }\n',
    });
    const plan = await runCli(['plan', 'pb.yml', '-i', 'inv.yml'], { cwd });
    expect(plan.stdout).toContain("$ sudo -n -- sh -c 'id -un'");
    const r = await runCli(['run', 'pb.yml', '-i', 'inv.yml'], { cwd });
    expect(r.stdout).not.toContain('FAILED');
    expect(r.code).toBe(0);
  });
});

describe('approval gates', () => {
  const pb = (marker: string) => `
- name: gated
  hosts: lab
  steps:
    - shell: "touch ${marker}.1"
    - name: dangerous
      confirm: "Really do the dangerous thing?"
      shell: "touch ${marker}.2"
`;
  const inv = 'hosts:\n  lab: { transport: local }\n';

  it('without a terminal and without --yes the run refuses before the first step', async () => {
    const marker = join(workdir(), 'm');
    const cwd = workdir({ 'inv.yml': inv, 'pb.yml': pb(marker) });
    const r = await runCli(['run', 'pb.yml', '-i', 'inv.yml'], { cwd });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/pb\.yml:6:7: dangerous \(confirm\)/);
    expect(r.stderr).toContain('pass --yes');
    expect(existsSync(`${marker}.1`)).toBe(false);
    expect(runIds(cwd)).toEqual([]);
  });

  it('--yes approves, and the journal records who approved', async () => {
    const marker = join(workdir(), 'm');
    const cwd = workdir({ 'inv.yml': inv, 'pb.yml': pb(marker) });
    const r = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--yes', '--output', 'json'], { cwd });
    expect(r.code).toBe(0);
    expect(existsSync(`${marker}.2`)).toBe(true);
    expect(events(r.stdout).find((e) => e.type === 'approval')).toMatchObject({
      approved: true,
      by: '--yes',
    });
  });
});

describe('local transport', () => {
  it('SIGTERM kills the running command and its children, then unwinds', async () => {
    const dir = workdir();
    const cwd = workdir({
      'inv.yml': 'hosts:\n  lab: { transport: local }\n',
      'pb.yml': `
- name: local
  hosts: lab
  steps:
    - shell: { cmd: "touch ${dir}/a", revert: "rm ${dir}/a" }
    - shell: "sh -c 'sleep 40; touch ${dir}/late' & wait"
`,
    });
    const { child, done } = startCli(['run', 'pb.yml', '-i', 'inv.yml'], { cwd });
    const t0 = Date.now();
    while (!existsSync(`${dir}/a`) && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 50));
    await new Promise((r) => setTimeout(r, 300));
    child.kill('SIGTERM');
    const r = await done;
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('INTERRUPTED by SIGTERM');
    expect(existsSync(`${dir}/a`)).toBe(false);
    const { execSync } = await import('node:child_process');
    expect(execSync(`pgrep -f "[t]ouch ${dir}/late" || true`).toString().trim()).toBe('');
  });
});

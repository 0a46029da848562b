// The runner over a real OpenSSH sshd: register, rescue/always, undo order, journal, SIGINT, resume.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, runAs, type SshServer, startSshd } from '../../tools/testenv/index.js';
import { events, journalOf, runCli, runIds, sshInventory, startCli, workdir } from './cli.js';

let sshd: SshServer;
let remote: string; // a directory the ssh user owns

beforeAll(async () => {
  sshd = await startSshd();
  remote = await makeTempDir('pgrb-remote');
});
afterAll(async () => {
  await sshd?.stop();
});

const readRemote = (name: string) => readFileSync(join(remote, name), 'utf8');

describe('run over ssh', () => {
  it('registers a command output and uses it in a later step', async () => {
    const cwd = workdir({
      'inv.yml': sshInventory(sshd, ['db1']),
      'pb.yml': `
- name: register and reuse
  hosts: db1
  steps:
    - id: who
      shell: id -un
    - name: use it
      shell:
        cmd: ["sh", "-c", "echo \\"user=$1\\" > ${remote}/who.txt", "sh", "{{ who.stdout | trim }}"]
    - assert:
        that: who.stdout | trim == "pgrb"
`,
    });
    const r = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json'], { cwd });
    expect(r.stderr).not.toMatch(/internal error/);
    expect(r.code).toBe(0);
    expect(readRemote('who.txt')).toBe('user=pgrb\n');
    const finished = events(r.stdout).filter((e) => e.type === 'step_finished');
    expect(finished.map((e) => e.status)).toEqual(['ok', 'ok', 'ok']);
  });

  it('on failure runs rescue and always, unwinds the undo stack in reverse, and journals each event', async () => {
    const log = `${remote}/order.log`;
    const cwd = workdir({
      'inv.yml': sshInventory(sshd, ['db1']),
      'pb.yml': `
- name: failing play
  hosts: db1
  steps:
    - name: change A
      shell: { cmd: "echo A >> ${log}", revert: "echo undo-A >> ${log}" }
    - name: change B
      shell: { cmd: "echo B >> ${log}", revert: "echo undo-B >> ${log}" }
    - name: breaks
      shell: "echo C-fails >&2; exit 3"
    - name: never reached
      shell: "echo D >> ${log}"
  rescue:
    - name: note the rescue
      shell: "echo rescue >> ${log}"
    - name: re-raise
      assert: { that: "false", msg: "re-raised after rescue" }
  always:
    - name: clean up
      shell: "echo always >> ${log}"
`,
    });
    const r = await runCli(['run', 'pb.yml', '-i', 'inv.yml'], { cwd });
    expect(r.code).toBe(1);
    expect(readRemote('order.log').trim().split('\n')).toEqual([
      'A',
      'B',
      'rescue',
      'always',
      'undo-B',
      'undo-A',
    ]);
    expect(r.stdout).toContain('C-fails');
    expect(r.stdout).toMatch(/run FAILED \(exit 1\)/);
    const j = journalOf(cwd);
    const kinds = j.map(
      (e) =>
        `${e.type}${e.type === 'step_finished' || String(e.type).startsWith('undo_') ? `:${e.title}` : ''}`,
    );
    const pick = kinds.filter((k) =>
      /^(step_finished|undo_pushed|undo_finished|unwind_started|run_finished)/.test(k),
    );
    expect(pick).toEqual([
      'step_finished:change A',
      'undo_pushed:change A',
      'step_finished:change B',
      'undo_pushed:change B',
      'step_finished:breaks',
      'step_finished:note the rescue',
      'step_finished:re-raise',
      'step_finished:clean up',
      'unwind_started',
      'undo_finished:change B',
      'undo_finished:change A',
      'run_finished',
    ]);
    expect(j.at(-1)).toMatchObject({ type: 'run_finished', status: 'failed', exitCode: 1 });
  });

  it('SIGINT in the middle of a step unwinds, exits 1, and the journal says it was interrupted', async () => {
    const log = `${remote}/sigint.log`;
    const cwd = workdir({
      'inv.yml': sshInventory(sshd, ['db1']),
      'pb.yml': `
- name: long play
  hosts: db1
  steps:
    - name: change A
      shell: { cmd: "echo A >> ${log}", revert: "echo undo-A >> ${log}" }
    - name: long step
      shell: "sleep 30; echo too-late >> ${log}"
  always:
    - name: clean up
      shell: "echo always >> ${log}"
`,
    });
    const { child, done } = startCli(['run', 'pb.yml', '-i', 'inv.yml'], { cwd });
    const t0 = Date.now();
    for (;;) {
      const ids = runIds(cwd);
      if (ids.length && journalOf(cwd).some((e) => e.type === 'step_started' && e.title === 'long step'))
        break;
      if (Date.now() - t0 > 20_000) throw new Error('the long step never started');
      await new Promise((r) => setTimeout(r, 50));
    }
    child.kill('SIGINT');
    const r = await done;
    expect(Date.now() - t0).toBeLessThan(15_000);
    expect(r.code).toBe(1);
    expect(readRemote('sigint.log').trim().split('\n')).toEqual(['A', 'always', 'undo-A']);
    const j = journalOf(cwd);
    expect(j.some((e) => e.type === 'interrupted' && e.signal === 'SIGINT')).toBe(true);
    expect(j.find((e) => e.type === 'step_finished' && e.title === 'long step')).toMatchObject({
      status: 'failed',
    });
    expect(j.at(-1)).toMatchObject({ type: 'run_finished', status: 'interrupted', exitCode: 1 });
    // The remote sleep was hung up, not left running.
    await new Promise((r) => setTimeout(r, 300));
    const ps = await runAs('root', ['sh', '-c', 'pgrep -u pgrb -f "sleep 30" || true']);
    expect(ps.stdout.trim()).toBe('');
  });

  it('resume after a fixed failure continues from the failed step', async () => {
    const flag = `${remote}/flag-${Date.now()}`;
    const count = `${remote}/count.log`;
    const cwd = workdir({
      'inv.yml': sshInventory(sshd, ['db1']),
      'pb.yml': `
- name: resumable
  hosts: db1
  steps:
    - id: first
      name: first step
      shell: "echo once >> ${count}; echo value-1"
    - name: needs the flag
      shell: "test -f ${flag}"
    - name: uses first
      shell: "echo got={{ first.stdout | trim }} >> ${count}"
`,
    });
    const r1 = await runCli(['run', 'pb.yml', '-i', 'inv.yml'], { cwd });
    expect(r1.code).toBe(1);
    const [id] = runIds(cwd);
    // "first step" stands (no undo): the summary ends with resume, the next command.
    expect(r1.stdout.trimEnd().split('\n').at(-1)).toMatch(
      new RegExp(`^ {2}Next, .*: pgrunbook resume ${id}$`),
    );
    writeFileSync(flag, '');
    const r2 = await runCli(['resume', id!, '--output', 'json'], { cwd });
    expect(r2.code).toBe(0);
    const st = events(r2.stdout)
      .filter((e) => e.type === 'step_finished')
      .map((e) => `${e.title}:${e.status}`);
    expect(st).toEqual(['first step:already_done', 'needs the flag:ok', 'uses first:ok']);
    expect(readRemote('count.log').trim().split('\n')).toEqual(['once', 'got=value-1']);
    // The same journal holds both attempts.
    expect(journalOf(cwd, id).filter((e) => e.type === 'run_started').length).toBe(2);
  });

  it('resume refuses a playbook that changed since the run started', async () => {
    const cwd = workdir({
      'inv.yml': sshInventory(sshd, ['db1']),
      'pb.yml': '- name: p\n  hosts: db1\n  steps:\n    - shell: "exit 1"\n',
    });
    expect((await runCli(['run', 'pb.yml', '-i', 'inv.yml'], { cwd })).code).toBe(1);
    writeFileSync(join(cwd, 'pb.yml'), '- name: p\n  hosts: db1\n  steps:\n    - shell: "exit 0"\n');
    const r = await runCli(['resume', runIds(cwd)[0]!], { cwd });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/changed since this run started/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('plan --check and run refuse an unknown host key before anything runs, showing its fingerprint', async () => {
    const empty = join(workdir(), 'known_hosts');
    writeFileSync(empty, '');
    const marker = `${remote}/should-not-exist-${Date.now()}`;
    const cwd = workdir({
      'inv.yml': sshInventory({ ...sshd, knownHostsFile: empty }, ['db1']),
      'pb.yml': `- name: p\n  hosts: db1\n  steps:\n    - shell: "touch ${marker}"\n`,
    });
    // The preflight: located at the host in the inventory, exit 2, for the plan and the run alike.
    for (const args of [
      ['plan', 'pb.yml', '-i', 'inv.yml', '--check'],
      ['run', 'pb.yml', '-i', 'inv.yml'],
    ]) {
      const r = await runCli(args, { cwd });
      expect(r.code, args[0]).toBe(2);
      expect(r.stderr).toMatch(/^inv\.yml:\d+:\d+: hosts\.db1: preflight: ssh: unknown host key/m);
      expect(r.stderr).toContain(
        `unknown host key for db1 ([127.0.0.1]:${sshd.port}): ${sshd.hostKeyFingerprint}`,
      );
      expect(r.stderr).toContain(`ssh.host_key: ${sshd.hostKeyFingerprint}`);
    }
    expect(existsSync(marker)).toBe(false);
    // Nothing ran: no run was even started.
    expect(existsSync(join(cwd, '.pgrunbook', 'runs'))).toBe(false);
  });

  it('accepts a pinned fingerprint and refuses a wrong pin', async () => {
    const empty = join(workdir(), 'known_hosts');
    writeFileSync(empty, '');
    const inv = (pin: string) =>
      `hosts:\n  db1:\n    ssh: { host: 127.0.0.1, port: ${sshd.port}, user: pgrb, identity_file: ${sshd.identityFile}, known_hosts: ${empty}, host_key: "${pin}" }\n`;
    const pb = '- name: p\n  hosts: db1\n  steps:\n    - shell: "true"\n';
    const ok = await runCli(['run', 'pb.yml', '-i', 'inv.yml'], {
      cwd: workdir({ 'inv.yml': inv(sshd.hostKeyFingerprint), 'pb.yml': pb }),
    });
    expect(ok.code).toBe(0);
    const wrong = `SHA256:${'A'.repeat(43)}`;
    const bad = await runCli(['run', 'pb.yml', '-i', 'inv.yml'], {
      cwd: workdir({ 'inv.yml': inv(wrong), 'pb.yml': pb }),
    });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain(`is ${sshd.hostKeyFingerprint}, but the inventory pins ${wrong}`);
  });

  it('steps run in lockstep across hosts, batch by batch with serial', async () => {
    const cwd = workdir({
      'inv.yml': sshInventory(sshd, ['h1', 'h2', 'h3']),
      'pb.yml': `
- name: batches
  hosts: all
  serial: 2
  steps:
    - name: one
      shell: "true"
    - name: two
      shell: "true"
`,
    });
    const r = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json'], { cwd });
    expect(r.code).toBe(0);
    const order = events(r.stdout)
      .filter((e) => e.type === 'step_finished')
      .map((e) => `${e.title}@${e.host}`);
    // Both hosts of a batch finish a step before either starts the next; h3 comes after.
    expect(order.slice(0, 2).sort()).toEqual(['one@h1', 'one@h2']);
    expect(order.slice(2, 4).sort()).toEqual(['two@h1', 'two@h2']);
    expect(order.slice(4)).toEqual(['one@h3', 'two@h3']);
  });

  it('retries until a condition holds, and a timeout stops a slow step', async () => {
    const counter = `${remote}/tries-${Date.now()}`;
    const cwd = workdir({
      'inv.yml': sshInventory(sshd, ['db1']),
      'pb.yml': `
- name: retries
  hosts: db1
  steps:
    - id: tries
      shell: "echo x >> ${counter}; wc -l < ${counter}"
      retries: 5
      delay: 0.1
      until: result.stdout | trim | int == 3
    - assert: { that: "tries.stdout | trim == '3'" }
    - name: slow
      shell: "sleep 20"
      timeout: 1
`,
    });
    const t0 = Date.now();
    const r = await runCli(['run', 'pb.yml', '-i', 'inv.yml'], { cwd });
    expect(Date.now() - t0).toBeLessThan(10_000);
    expect(r.code).toBe(1);
    expect(
      readRemote(counter.slice(remote.length + 1))
        .trim()
        .split('\n'),
    ).toHaveLength(3);
    expect(r.stdout).toMatch(/FAILED slow \([\d.]+s\): timed out after 1s/);
  });

  it('works against an sshd with OpenSSH default MaxSessions/MaxStartups (12 hosts at once)', async () => {
    const strict = await startSshd({ defaults: true });
    try {
      const names = Array.from({ length: 12 }, (_, i) => `n${i + 1}`);
      const cwd = workdir({
        'inv.yml': sshInventory(strict, names),
        'pb.yml': `- name: fan\n  hosts: all\n  forks: 12\n  steps:\n${'    - shell: "echo ok"\n'.repeat(5)}`,
      });
      const r = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json'], { cwd });
      expect(r.code).toBe(0);
      expect(events(r.stdout).filter((e) => e.type === 'step_finished' && e.status === 'ok')).toHaveLength(
        60,
      );
    } finally {
      await strict.stop();
    }
  });
});

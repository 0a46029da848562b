// The Chef steps over a real OpenSSH sshd, with the stand-in chef-client from tools/testenv: chef.run
// (outputs, streaming, idempotence, failure), its --why-run preview in `plan --check`, and
// chef.disable/chef.enable with undo that only re-enables what this run disabled.
import { chmodSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { installChefStandIn, makeTempDir, type SshServer, startSshd } from '../../tools/testenv/index.js';
import { events, journalOf, outputsOf, runCli, sshInventory, workdir } from './cli.js';

let sshd: SshServer;
let remote: string; // a directory the ssh user owns

beforeAll(async () => {
  sshd = await startSshd();
  remote = await makeTempDir('pgrb-chef-it-');
});
afterAll(async () => {
  await sshd?.stop();
});

interface RunOutputs {
  updated: number | null;
  total: number | null;
  duration: string | null;
  summary: string | null;
  resources: { resource: string; action: string; changes: string[] }[];
}

const play = (steps: string, always = '') => `
- name: chef
  hosts: db1
  steps:
${steps}${always ? `  always:\n${always}` : ''}`;

describe('chef.run over ssh', () => {
  it('converges: outputs parsed, the file changed, output journaled; a second run updates nothing', async () => {
    const chef = await installChefStandIn();
    const attrs = join(chef.dir, 'attrs.json');
    writeFileSync(attrs, '{"work_mem": "96MB"}\n', { mode: 0o644 });
    const cwd = workdir({
      'inv.yml': sshInventory(sshd, ['db1']),
      'pb.yml': play(`    - id: chef
      chef.run:
        command: ${chef.command}
        override_runlist: "recipe[gitlab-patroni::postgres]"
        json_attributes: ${attrs}
`),
    });
    const r = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json'], { cwd });
    expect(r.stderr).not.toMatch(/internal error/);
    expect(r.code).toBe(0);
    const out = outputsOf<RunOutputs>(events(r.stdout), 'chef');
    expect(out).toMatchObject({ updated: 1, total: 12, duration: expect.stringMatching(/^\d\d seconds$/) });
    expect(out.summary).toMatch(/^Chef Infra Client finished, 1\/12 resources updated in \d\d seconds$/);
    expect(out.resources).toEqual([
      {
        resource: `template[${chef.confFile}]`,
        action: 'create',
        changes: [
          expect.stringMatching(
            new RegExp(`^update content in file ${chef.confFile} from [0-9a-f]{6} to [0-9a-f]{6}$`),
          ),
        ],
      },
    ]);
    const conf = readFileSync(chef.confFile, 'utf8');
    expect(conf).toContain("work_mem = '96MB'\n");
    expect(conf).not.toContain("work_mem = '4MB'");
    expect(await chef.invocations()).toEqual([
      ['--once', '--no-color', '-o', 'recipe[gitlab-patroni::postgres]', '-j', attrs],
    ]);
    // Chef's own output (its diff included) reached the journal as it streamed.
    const streamed = journalOf(cwd)
      .filter((e) => e.type === 'step_output' && e.stream === 'stdout')
      .map((e) => e.text)
      .join('');
    expect(streamed).toContain("    -work_mem = '4MB'\n    +work_mem = '96MB'\n");
    expect(streamed).toMatch(/Chef Infra Client finished, 1\/12 resources updated in/);

    const again = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json'], { cwd });
    expect(again.code).toBe(0);
    const out2 = outputsOf<RunOutputs>(events(again.stdout), 'chef');
    expect(out2).toMatchObject({ updated: 0, total: 12, resources: [] });
    expect(readFileSync(chef.confFile, 'utf8')).toBe(conf);
    await chef.remove();
  });

  it('plan --check shows the --why-run preview and changes nothing', async () => {
    const chef = await installChefStandIn();
    const before = readFileSync(chef.confFile);
    const filesBefore = readdirSync(chef.dir).sort();
    const cwd = workdir({
      'inv.yml': sshInventory(sshd, ['db1']),
      'pb.yml': play(`    - id: chef
      chef.run: { command: ${chef.command}, override_runlist: "recipe[gitlab-patroni]" }
`),
    });
    const offline = await runCli(['plan', 'pb.yml', '-i', 'inv.yml'], { cwd });
    expect(offline.code).toBe(0);
    expect(offline.stdout).toContain(`$ ${chef.command} --once --no-color -o 'recipe[gitlab-patroni]'`);
    expect(offline.stdout).toContain('undo on failure: none: a Chef run is not reversed automatically');
    expect(await chef.invocations()).toEqual([]);

    const r = await runCli(['plan', 'pb.yml', '-i', 'inv.yml', '--check'], { cwd });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('preview (asked the host, nothing changed): 1/12 resources would be updated');
    const preview = r.stdout.slice(r.stdout.indexOf('preview (asked the host'));
    expect(preview).toContain(`template[${chef.confFile}] action create`);
    expect(preview).toMatch(
      new RegExp(`- would update content in file ${chef.confFile} from [0-9a-f]{6} to [0-9a-f]{6}`),
    );
    expect(preview).toContain("-work_mem = '4MB'");
    expect(preview).toContain("+work_mem = '64MB'");
    expect(await chef.invocations()).toEqual([
      ['--once', '--no-color', '--why-run', '-o', 'recipe[gitlab-patroni]'],
    ]);
    expect(readFileSync(chef.confFile).equals(before)).toBe(true);
    expect(readdirSync(chef.dir).sort()).toEqual([...filesBefore, 'invocations.log'].sort());
    await chef.remove();
  });

  it("a failing run fails the step with Chef's error block, and the run exits 1", async () => {
    const chef = await installChefStandIn();
    await chef.setFailing(true);
    const cwd = workdir({
      'inv.yml': sshInventory(sshd, ['db1']),
      'pb.yml': play(`    - id: chef
      chef.run: { command: ${chef.command} }
`),
    });
    const r = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json'], { cwd });
    expect(r.code).toBe(1);
    const failed = events(r.stdout).find((e) => e.type === 'step_finished' && e.status === 'failed');
    const error = String(failed?.error);
    expect(error).toMatch(
      /^chef-client exited with code 1:\nError executing action `run` on resource 'execute\[check postgresql configuration\]'\n/,
    );
    expect(error).toContain('Mixlib::ShellOut::ShellCommandFailed');
    expect(error).toContain('STDERR: FATAL:  invalid value for parameter "work_mem": "64MB"');
    expect(error).toMatch(/\nChef Infra Client failed\. 1 resources updated in \d\d seconds$/);
    // The sections for whoever reads the stacktrace stay in the log, out of the message.
    expect(error).not.toMatch(/System Info|Compiled Resource/);
    expect(events(r.stdout).at(-1)).toMatchObject({ type: 'run_finished', status: 'failed', exitCode: 1 });
    await chef.remove();
  });
});

describe('chef.disable / chef.enable over ssh', () => {
  const REASON = 'Database maintenance issue prod#xyz';

  it('a failed run re-enables chef-client it disabled (lock file); a lock found in place stays', async () => {
    const chef = await installChefStandIn();
    await chef.setFailing(true);
    const lock = join(remote, `chef-${Date.now()}.disabled`);
    const steps = `    - id: disable
      chef.disable: { lock_file: ${lock}, reason: "${REASON}" }
    - name: the lock is in place
      shell: { cmd: [grep, -qx, "reason: ${REASON}", ${lock}] }
    - chef.run: { command: ${chef.command} }
`;
    const cwd = workdir({ 'inv.yml': sshInventory(sshd, ['db1']), 'pb.yml': play(steps) });
    const r = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json'], { cwd });
    expect(r.code).toBe(1);
    const ev = events(r.stdout);
    expect(outputsOf(ev, 'disable')).toMatchObject({ disabled_by_run: true, lock_file: lock });
    expect(ev.find((e) => e.type === 'step_finished' && e.title === 'the lock is in place')).toMatchObject({
      status: 'ok',
    });
    expect(ev.find((e) => e.type === 'undo_finished')).toMatchObject({ ok: true });
    expect(existsSync(lock)).toBe(false);

    // Someone else's lock: this run neither removes it on undo nor in its `always` clean-up.
    const theirs = 'chef-client disabled by someone else\nrun: another-run\n';
    writeFileSync(lock, theirs);
    const cwd2 = workdir({
      'inv.yml': sshInventory(sshd, ['db1']),
      'pb.yml': play(
        steps.replace(/ {4}- name: the lock is in place\n.*\n/, ''),
        `    - id: enable\n      chef.enable: { lock_file: ${lock}, disabled_by: "{{ disable }}" }\n`,
      ),
    });
    const r2 = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json'], { cwd: cwd2 });
    expect(r2.code).toBe(1);
    const ev2 = events(r2.stdout);
    expect(outputsOf(ev2, 'disable')).toMatchObject({ disabled_by_run: false, existing: theirs.trimEnd() });
    expect(outputsOf(ev2, 'enable')).toEqual({
      enabled: false,
      reason: 'chef-client was already disabled before this run',
    });
    expect(readFileSync(lock, 'utf8')).toBe(theirs);
    await chef.remove();
  });

  it("command mode: the site's commands get the reason as one argument; the undo enables", async () => {
    const dir = await makeTempDir('pgrb-chef-cmd-', 'pgrb');
    const state = join(dir, 'disabled');
    const script = (name: string, body: string) => {
      writeFileSync(join(dir, name), `#!/bin/sh\n${body}\n`);
      chmodSync(join(dir, name), 0o755);
      return join(dir, name);
    };
    const disable = script('chef-client-disable', `printf '%s' "$1" > ${state}; cp ${state} ${dir}/reason`);
    const enable = script('chef-client-enable', `rm -f ${state}; echo enabled >> ${dir}/enabled.log`);
    const check = script('chef-client-is-disabled', `test -e ${state}`);
    const reason = `maintenance $(touch ${dir}/pwned) 'prod#1' "x"`;
    const cwd = workdir({
      'inv.yml': sshInventory(sshd, ['db1']),
      'pb.yml': play(`    - id: disable
      chef.disable:
        command: ${disable}
        enable_command: [${enable}]
        check_command: ${check}
        reason: ${JSON.stringify(reason)}
    - name: chef is disabled
      shell: { cmd: [test, -e, ${state}] }
    - name: breaks
      shell: "exit 3"
`),
    });
    const r = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json'], { cwd });
    expect(r.code).toBe(1);
    expect(outputsOf(events(r.stdout), 'disable')).toMatchObject({ disabled_by_run: true, mode: 'command' });
    expect(readFileSync(join(dir, 'reason'), 'utf8')).toBe(reason);
    expect(existsSync(join(dir, 'pwned'))).toBe(false);
    expect(existsSync(state)).toBe(false);
    expect(readFileSync(join(dir, 'enabled.log'), 'utf8')).toBe('enabled\n');
  });
});

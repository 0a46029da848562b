// kill -9 of the runner mid-step: no code of the runner runs any more, yet the step's processes
// (the command and what it started) must not outlive it. Locally the reaper in
// src/connections/reaper.ts ends their process group; over SSH the lifeline in
// src/connections/ssh.ts does, on the host. Checked in /proc, not in our summary (the sshd here
// runs on this machine, so the host's processes are this machine's).
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, type SshServer, startSshd } from '../../tools/testenv/index.js';
import { CLI, sshInventory, workdir } from './cli.js';

/** PIDs of live processes whose command line contains `needle`. */
function processesWith(needle: string): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const cmd = readFileSync(`/proc/${e}/cmdline`, 'utf8').replace(/\0/g, ' ');
      const state = readFileSync(`/proc/${e}/stat`, 'utf8').split(') ')[1]?.[0];
      if (cmd.includes(needle) && state !== 'Z') out.push(Number(e));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/**
 * Runs a shell step that starts a background child and waits (the shell, its subshell and both
 * sleeps: four processes in its group), kills the runner with SIGKILL once all four run, and
 * returns how long the last of them outlived it (or throws if one is still there after 5 s).
 */
async function killMidStep(inventory: string, startedFile: (cwd: string) => string): Promise<number> {
  const tag = `pgrb-kill-${process.pid}-${Date.now()}`;
  // Unique durations: the sleeps' own command lines are found in /proc by them.
  const n = String(Date.now() % 100000).padStart(5, '0');
  const [a, b] = [`300.${n}1`, `300.${n}2`];
  const cwd = workdir({ 'inv.yml': inventory, 'pb.yml': '' });
  const started = startedFile(cwd);
  writeFileSync(
    join(cwd, 'pb.yml'),
    `- name: long\n  hosts: all\n  steps:\n    - shell: "touch ${started}; (sleep ${a}; echo ${tag}-a) & sleep ${b}; echo ${tag}-b"\n`,
  );
  const runner = spawn(process.execPath, [CLI, 'run', 'pb.yml', '-i', 'inv.yml', '--yes'], {
    cwd,
    stdio: 'ignore',
  });
  const t0 = Date.now();
  while (!existsSync(started)) {
    if (Date.now() - t0 > 20_000) throw new Error('the step did not start');
    await new Promise((r) => setTimeout(r, 50));
  }
  const all = () => [...processesWith(tag), ...processesWith(`sleep ${a}`), ...processesWith(`sleep ${b}`)];
  while (processesWith(`sleep ${a}`).length === 0 || processesWith(`sleep ${b}`).length === 0) {
    if (Date.now() - t0 > 20_000) throw new Error('the sleeps did not start');
    await new Promise((r) => setTimeout(r, 50));
  }
  expect(all().length).toBeGreaterThanOrEqual(4);
  runner.kill('SIGKILL');
  const killedAt = Date.now();
  while (all().length > 0 && Date.now() - killedAt < 5000) await new Promise((r) => setTimeout(r, 100));
  expect(all()).toEqual([]);
  return Date.now() - killedAt;
}

describe('a killed runner leaves no process behind', () => {
  it('kill -9 mid-step: the step, a child it started and a grandchild are gone within 5 s', async () => {
    const took = await killMidStep('hosts:\n  here: { transport: local }\n', (cwd) => join(cwd, 'started'));
    expect(took).toBeLessThan(5000);
  }, 30_000);

  describe('over ssh', () => {
    let sshd: SshServer;
    let remote: string;
    beforeAll(async () => {
      sshd = await startSshd();
      remote = await makeTempDir('pgrb-remote');
    });
    afterAll(async () => {
      await sshd?.stop();
    });

    it('kill -9 mid-step: every process of the remote command is gone from the host within 5 s', async () => {
      const took = await killMidStep(sshInventory(sshd, ['db1']), () =>
        join(remote, `started-${Date.now()}`),
      );
      expect(took).toBeLessThan(5000);
    }, 30_000);
  });
});

// On a real terminal (a pty from script(1)) Ctrl-C must unwind like SIGINT does without one:
// the live progress tree must not take the signal for itself.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLI, journalOf, runIds, workdir } from './cli.js';

/** Runs the CLI on a pseudo-terminal (script(1)); the caller types into `stdin`. */
function onTerminal(cwd: string) {
  // script(1) runs the command with $SHELL -c; dash forks rather than execs it and dies of the
  // Ctrl-C itself, so `exec` makes the CLI the terminal's foreground process whatever the shell.
  const child = spawn(
    'script',
    ['-qfec', `exec ${process.execPath} ${CLI} run pb.yml -i inv.yml`, '/dev/null'],
    {
      cwd,
      env: { ...process.env, SHELL: '/bin/sh' },
      stdio: ['pipe', 'pipe', 'pipe'],
    },
  );
  const out = { screen: '' };
  child.stdout.on('data', (c) => {
    out.screen += c.toString();
  });
  const done = new Promise<number | null>((res) => child.on('close', res));
  return { child, out, done };
}

/** Waits until `cond` holds; after 20 s fails showing the screen. */
async function until(what: string, cond: () => boolean, screen: () => string): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > 20_000) throw new Error(`${what}:\n${screen()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('on a terminal', () => {
  it('Ctrl-C during a step runs always, unwinds, and exits 1', async () => {
    const dir = workdir();
    const cwd = workdir({
      'inv.yml': 'hosts:\n  lab: { transport: local }\n',
      'pb.yml': `
- name: tty
  hosts: lab
  steps:
    - shell: { cmd: "echo A >> ${dir}/log", revert: "echo undo-A >> ${dir}/log" }
    - name: long
      shell: "sleep 30"
  always:
    - shell: "echo always >> ${dir}/log"
`,
    });
    const { child, out, done } = onTerminal(cwd);
    await until(
      'the long step never started',
      () =>
        runIds(cwd).length > 0 && journalOf(cwd).some((e) => e.type === 'step_started' && e.title === 'long'),
      () => out.screen,
    );
    await new Promise((r) => setTimeout(r, 300));
    child.stdin.write('\x03');
    const code = await done;
    expect(code).toBe(1);
    expect(readFileSync(join(dir, 'log'), 'utf8').trim().split('\n')).toEqual(['A', 'always', 'undo-A']);
    expect(journalOf(cwd).at(-1)).toMatchObject({ type: 'run_finished', status: 'interrupted' });
    expect(existsSync(join(dir, 'log'))).toBe(true);
    // After the live tree, the last thing on the terminal is the next command: everything was
    // undone, so a fresh run (with the inventory's real path), not resume.
    const lines = out.screen
      // biome-ignore lint/suspicious/noControlCharactersInRegex: terminal escapes
      .replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '')
      .split(/\r?\n/)
      .map((l) => l.trimEnd())
      .filter(Boolean);
    expect(lines.at(-1)).toMatch(
      /^ {2}Next \(nothing is left to resume: start again\), .*: pgrunbook run \S+pb\.yml -i \S+inv\.yml$/,
    );
  });

  it('Ctrl-C at an approval prompt declines it, runs always and unwinds', async () => {
    const dir = workdir();
    const cwd = workdir({
      'inv.yml': 'hosts:\n  lab: { transport: local }\n',
      'pb.yml': `
- name: gate
  hosts: lab
  steps:
    - shell: { cmd: "echo A >> ${dir}/log", revert: "echo undo-A >> ${dir}/log" }
    - name: gated
      confirm: "Really?"
      shell: "echo gated >> ${dir}/log"
  always:
    - shell: "echo always >> ${dir}/log"
`,
    });
    const { child, out, done } = onTerminal(cwd);
    await until(
      'no prompt',
      () => out.screen.includes('[y/N]'),
      () => out.screen,
    );
    child.stdin.write('\x03');
    const code = await Promise.race([done, new Promise((r) => setTimeout(() => r('hung'), 15_000))]);
    expect(code).toBe(1);
    expect(readFileSync(join(dir, 'log'), 'utf8').trim().split('\n')).toEqual(['A', 'always', 'undo-A']);
  });
});

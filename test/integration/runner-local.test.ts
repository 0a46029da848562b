// Runner semantics over the local transport: vars, --limit, ignore_errors, rescue, compensation_failed.
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { freePort } from '../../tools/testenv/index.js';
import { events, journalOf, runCli, runIds, startCli, workdir } from './cli.js';

const INV = `
vars: { color: inventory }
hosts:
  a: { transport: local, vars: { who: a } }
  b: { transport: local, vars: { who: b } }
groups:
  both: { hosts: [a, b], vars: { color: group } }
`;

async function run(pb: string, args: string[] = []) {
  const cwd = workdir({ 'inv.yml': INV, 'pb.yml': pb });
  const r = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json', ...args], { cwd });
  return { ...r, cwd, ev: events(r.stdout) };
}

const finished = (ev: Record<string, unknown>[]) =>
  ev.filter((e) => e.type === 'step_finished').map((e) => `${e.title}@${e.host}:${e.status}`);

describe('variables and selection', () => {
  it('-e beats play vars, which beat group and inventory vars; --limit narrows the hosts', async () => {
    const dir = workdir();
    const r = await run(
      `
- name: vars
  hosts: both
  vars: { color: play, size: small }
  steps:
    - shell: "echo {{ who }}-{{ color }}-{{ size }} > ${dir}/{{ host.name }}"
`,
      ['-e', 'size=large', '--limit', 'b'],
    );
    expect(r.code).toBe(0);
    expect(existsSync(join(dir, 'a'))).toBe(false);
    expect(readFileSync(join(dir, 'b'), 'utf8')).toBe('b-play-large\n');
  });

  it('set_fact, when and register of a skipped step', async () => {
    const r = await run(`
- name: facts
  hosts: both
  steps:
    - set_fact: { double: "{{ who }}{{ who }}" }
    - id: only_a
      shell: "echo hi"
      when: who == 'a'
    - assert:
        that:
          - double == who + who
          - "(who == 'a' and only_a.stdout == 'hi\\n') or (who == 'b' and only_a.skipped)"
`);
    expect(r.stdout).not.toContain('"status":"failed"');
    expect(r.code).toBe(0);
    expect(finished(r.ev)).toContain('shell@b:skipped');
  });
});

describe('failure handling', () => {
  it('ignore_errors registers the failure and goes on', async () => {
    const r = await run(`
- name: ignore
  hosts: a
  steps:
    - id: bad
      shell: "exit 5"
      ignore_errors: true
    - assert: { that: "bad.failed" }
`);
    expect(r.code).toBe(0);
    expect(finished(r.ev)).toEqual(['shell@a:ignored', 'assert@a:ok']);
  });

  it('a rescued block lets the run go on; an inner failure reaches the outer rescue', async () => {
    const r = await run(`
- name: rescue
  hosts: a
  steps:
    - block:
        - block:
            - name: inner fails
              shell: "exit 1"
          always:
            - name: inner always
              shell: "true"
        - name: not reached
          shell: "true"
      rescue:
        - name: outer rescue
          shell: "true"
    - name: after the block
      shell: "true"
`);
    expect(r.code).toBe(0);
    expect(finished(r.ev)).toEqual([
      'inner fails@a:failed',
      'inner always@a:ok',
      'outer rescue@a:ok',
      'after the block@a:ok',
    ]);
  });

  it('a failing undo ends the run as compensation_failed (exit 3) and prints the manual remedy', async () => {
    const dir = workdir();
    const r = await run(`
- name: comp
  hosts: a
  steps:
    - name: first change
      shell: { cmd: "touch ${dir}/one", revert: "rm ${dir}/one" }
    - name: second change
      shell: { cmd: "touch ${dir}/two", revert: "echo cannot revert >&2; exit 9" }
    - shell: "exit 1"
`);
    expect(r.code).toBe(3);
    const end = r.ev.at(-1) as { status: string; summary: string[] };
    expect(end.status).toBe('compensation_failed');
    const text = end.summary.join('\n');
    expect(text).toContain('undo of "second change"');
    expect(text).toContain('cannot revert');
    expect(text).toContain(`$ rm ${dir}/one`);
    // The first change was not undone after the failed undo: an operator decides.
    expect(existsSync(join(dir, 'one'))).toBe(true);
    expect(journalOf(r.cwd).at(-1)).toMatchObject({ status: 'compensation_failed', exitCode: 3 });
  });
});

describe('wait_for and pause', () => {
  it('waits for a TCP port and an HTTP status, and pauses', async () => {
    const port = await freePort();
    const server = createServer((_req, res) => {
      res.statusCode = 204;
      res.end();
    });
    const cwd = workdir({
      'inv.yml': INV,
      'pb.yml': `
- name: waits
  hosts: a
  steps:
    - id: tcp
      wait_for: { port: { port: ${port} }, timeout: 20, interval: 0.1 }
    - wait_for: { http: { url: "http://127.0.0.1:${port}/", status: 204 }, timeout: 5 }
    - pause: { seconds: 0.2 }
    - assert: { that: "tcp.elapsed > 0.3" }
    - wait_for: { port: { port: 1 }, timeout: 0.3, interval: 0.1 }
`,
    });
    const { done } = startCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json'], { cwd });
    try {
      // Listen only once the wait has begun, so the step really had to wait.
      const t0 = Date.now();
      while (!(runIds(cwd).length && journalOf(cwd).some((e) => e.type === 'step_started'))) {
        if (Date.now() - t0 > 15_000) throw new Error('wait_for never started');
        await new Promise((r) => setTimeout(r, 20));
      }
      await new Promise((r) => setTimeout(r, 500));
      server.listen(port, '127.0.0.1');
      const r = await done;
      expect(r.code).toBe(1);
      expect(finished(events(r.stdout))).toEqual([
        'wait_for@a:ok',
        'wait_for@a:ok',
        'pause@a:ok',
        'assert@a:ok',
        'wait_for@a:failed',
      ]);
      expect(r.stdout).toContain('timed out after 0.3s waiting for TCP 127.0.0.1:1 accepts connections');
    } finally {
      server.close();
    }
  });
});

describe('resume', () => {
  it('re-runs undone steps and always runs the clean-up again', async () => {
    const dir = workdir();
    const flag = join(dir, 'flag');
    const cwd = workdir({
      'inv.yml': INV,
      'pb.yml': `
- name: resumable
  hosts: a
  steps:
    - name: kept change
      shell: "echo kept >> ${dir}/log"
    - name: undone change
      shell: { cmd: "echo pause >> ${dir}/log", revert: "echo resume >> ${dir}/log" }
    - name: needs flag
      shell: "test -f ${flag}"
  always:
    - name: clean-up
      shell: "echo cleanup >> ${dir}/log"
`,
    });
    const first = await runCli(['run', 'pb.yml', '-i', 'inv.yml'], { cwd });
    expect(first.code).toBe(1);
    const { writeFileSync } = await import('node:fs');
    writeFileSync(flag, '');
    const second = await runCli(['resume', runIds(cwd)[0]!, '--output', 'json'], { cwd });
    expect(second.code).toBe(0);
    expect(finished(events(second.stdout))).toEqual([
      'kept change@a:already_done',
      'undone change@a:ok',
      'needs flag@a:ok',
      'clean-up@a:ok',
    ]);
    expect(readFileSync(join(dir, 'log'), 'utf8').trim().split('\n')).toEqual([
      'kept',
      'pause',
      'cleanup',
      'resume',
      'pause',
      'cleanup',
    ]);
  });
});

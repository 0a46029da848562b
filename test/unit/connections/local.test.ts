// The local transport: process-group kill with TERM → KILL escalation, and secret-free environments.
import { readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalTransport, withoutEnv } from '../../../src/connections/local.js';

/** Whether a process runs; a zombie (dead, not yet reaped by its new parent) does not. */
const alive = (pid: number) => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
};

/** Waits until `f` holds, or fails after `ms`. */
async function until(f: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const started: number[] = [];
afterEach(() => {
  for (const pid of started.splice(0)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
});

/** Runs `script`, which prints PIDs to learn, and aborts once `n` lines arrived. */
async function runAndAbort(t: LocalTransport, script: string, n: number) {
  const ac = new AbortController();
  const pids: number[] = [];
  let buf = '';
  const p = t.exec(script, {
    signal: ac.signal,
    onOutput: (stream, chunk) => {
      if (stream !== 'stdout') return;
      buf += chunk;
      const lines = buf.split('\n');
      buf = lines.pop()!;
      for (const l of lines) {
        if (!/^\d+$/.test(l)) continue;
        pids.push(Number(l));
        started.push(Number(l));
      }
      if (pids.length >= n && !ac.signal.aborted) ac.abort();
    },
  });
  const t0 = Date.now();
  const r = await p;
  return { r, pids, ms: Date.now() - t0 };
}

describe('LocalTransport abort', () => {
  it('SIGTERM reaches the whole process group, children included', async () => {
    const t = new LocalTransport();
    const { r, pids } = await runAndAbort(t, 'sleep 30 & echo $!; echo $$; wait', 2);
    expect(r.signal ?? r.exitCode).toBeTruthy();
    await t.close();
    await until(() => pids.every((p) => !alive(p)), 3000, 'group gone');
  });

  it('a command that ignores SIGTERM is killed with SIGKILL after the grace period', async () => {
    const t = new LocalTransport({ killGraceMs: 500 });
    const t0 = Date.now();
    // The trap is inherited: neither the shell nor the background sleep dies from TERM.
    const { r, pids } = await runAndAbort(t, "trap '' TERM; sleep 30 & echo $!; echo $$; wait", 2);
    expect(r.signal).toBe('SIGKILL');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(450);
    await t.close();
    await until(() => pids.every((p) => !alive(p)), 3000, 'group gone');
  });

  it('close() waits for a pending escalation, so an exiting run still kills', async () => {
    const t = new LocalTransport({ killGraceMs: 400 });
    const ac = new AbortController();
    let pid = 0;
    const p = t.exec("trap '' TERM; echo $$; sleep 30", {
      signal: ac.signal,
      onOutput: (_s, c) => {
        pid = Number.parseInt(c, 10);
        started.push(pid);
        ac.abort();
      },
    });
    await until(() => ac.signal.aborted, 5000, 'started');
    await t.close();
    // by the time close() returns, SIGKILL has been sent
    await until(() => !alive(pid), 1000, 'killed by close');
    expect((await p).signal).toBe('SIGKILL');
  });

  it('a command already aborted is killed at once', async () => {
    const t = new LocalTransport();
    const r = await t.exec('sleep 30', { signal: AbortSignal.abort() });
    expect(r.signal).toBe('SIGTERM');
  });
});

describe('LocalTransport environment', () => {
  const names = ['PGRB_UNIT_SECRET_A', 'PGRB_UNIT_PLAIN_B'];
  afterEach(() => {
    for (const n of names) delete process.env[n];
  });

  it('the env filter drops the named variables and keeps the rest', async () => {
    process.env.PGRB_UNIT_SECRET_A = 'hunter2-local';
    process.env.PGRB_UNIT_PLAIN_B = 'plain';
    const t = new LocalTransport({ envFilter: withoutEnv(['PGRB_UNIT_SECRET_A']) });
    // biome-ignore lint/suspicious/noTemplateCurlyInString: shell parameter expansion
    const r = await t.exec('echo "a=${PGRB_UNIT_SECRET_A-unset} b=$PGRB_UNIT_PLAIN_B"; env');
    expect(r.stdout.split('\n')[0]).toBe('a=unset b=plain');
    expect(r.stdout).not.toContain('hunter2-local');
    expect(r.stdout).toMatch(/^PATH=/m);
  });

  it('without a filter everything is inherited; the filter is applied at each command', async () => {
    process.env.PGRB_UNIT_SECRET_A = 'one';
    expect((await new LocalTransport().exec('echo $PGRB_UNIT_SECRET_A')).stdout).toBe('one\n');
    const t = new LocalTransport({ envFilter: withoutEnv([]) });
    process.env.PGRB_UNIT_SECRET_A = 'two';
    expect((await t.exec('echo $PGRB_UNIT_SECRET_A')).stdout).toBe('two\n');
  });
});

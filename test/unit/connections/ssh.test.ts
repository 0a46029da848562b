// SshTransport's cancellation logic against a scripted ssh2 client (the real sshd is in
// test/integration/connections.test.ts), and the kill script against real process groups.
import { execFile, spawn } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import type { Client } from 'ssh2';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { KILL_GRACE_MS, killScript, PID_WAIT_MS, SshTransport } from '../../../src/connections/ssh.js';
import { ConnectionError } from '../../../src/errors.js';

class FakeStream extends EventEmitter {
  resume(): void {}
}

class FakeChannel extends EventEmitter {
  readonly stderr = new FakeStream();
  closeCalls = 0;
  end(): void {}
  resume(): void {}
  close(): void {
    this.closeCalls++;
  }
  /** The server side ends the command. */
  finish(code: number | null, sig?: string): void {
    this.emit('exit', code, sig);
    this.emit('close');
  }
}

type ExecCb = (err: Error | undefined, ch: FakeChannel) => void;

/** A client whose exec is scripted per call; records every command and event order. */
class FakeClient extends EventEmitter {
  readonly commands: string[] = [];
  readonly log: string[] = [];
  readonly channels: FakeChannel[] = [];
  /** Decides how the n-th exec behaves; default: opens a channel. */
  onExec: (cmd: string, cb: ExecCb, n: number) => void = (_cmd, cb) => cb(undefined, this.open());
  open(): FakeChannel {
    const ch = new FakeChannel();
    const n = this.channels.length;
    const close = ch.close.bind(ch);
    ch.close = () => {
      this.log.push(`close ${n}`);
      close();
    };
    this.channels.push(ch);
    return ch;
  }
  exec(cmd: string, cb: ExecCb): void {
    this.commands.push(cmd);
    this.log.push(cmd.startsWith('kill ') ? 'kill' : 'exec');
    this.onExec(cmd, cb, this.commands.length - 1);
  }
  end(): void {}
}

const settings = {
  hostName: 'db1',
  host: '10.0.0.1',
  port: 22,
  user: 'deploy',
  knownHostsFile: '/dev/null',
  acceptUnknownHostKey: false,
  connectTimeoutMs: 1000,
  keepaliveIntervalMs: 1000,
  maxChannels: 4,
};

const transport = (c: FakeClient) =>
  new SshTransport(c as unknown as Client, settings, {
    fingerprint: 'SHA256:test',
    keyType: 'ssh-ed25519',
    trust: 'known',
  });

const tick = () => new Promise((r) => setImmediate(r));

afterEach(() => {
  vi.useRealTimers();
});

describe('SshTransport cancellation', () => {
  it('an abort before the PID line waits for it, kills the group, and does not close the channel first', async () => {
    const c = new FakeClient();
    const t = transport(c);
    const ac = new AbortController();
    const p = t.exec('sleep 30', { signal: ac.signal });
    await tick();
    ac.abort();
    await tick();
    // nothing is closed while the PID is unknown
    expect(c.log).toEqual(['exec']);
    c.channels[0]!.stderr.emit('data', Buffer.from('4242\nfirst line of stderr\n'));
    await tick();
    expect(c.commands[1]).toBe(killScript(4242));
    expect(c.log).toEqual(['exec', 'kill']);
    c.channels[1]!.emit('close');
    c.channels[0]!.finish(null, 'SIGTERM');
    const r = await p;
    expect(r).toEqual({ exitCode: null, signal: 'SIGTERM', stdout: '', stderr: 'first line of stderr\n' });
    expect(c.channels[0]!.closeCalls).toBe(0);
  });

  it('the PID line split over packets is still read', async () => {
    const c = new FakeClient();
    const t = transport(c);
    const ac = new AbortController();
    const p = t.exec('x', { signal: ac.signal });
    await tick();
    c.channels[0]!.stderr.emit('data', Buffer.from('12'));
    ac.abort();
    c.channels[0]!.stderr.emit('data', Buffer.from('34\n'));
    await tick();
    expect(c.commands[1]).toBe(killScript(1234));
    c.channels[1]!.emit('close');
    c.channels[0]!.finish(null, 'SIGTERM');
    await p;
  });

  it('no PID within the deadline: the channel is closed, and the exec resolves even if sshd never answers', async () => {
    vi.useFakeTimers();
    const c = new FakeClient();
    const t = transport(c);
    const ac = new AbortController();
    const p = t.exec('sleep 30', { signal: ac.signal });
    await vi.advanceTimersByTimeAsync(0);
    ac.abort();
    await vi.advanceTimersByTimeAsync(PID_WAIT_MS - 100);
    expect(c.channels[0]!.closeCalls).toBe(0);
    await vi.advanceTimersByTimeAsync(200);
    expect(c.channels[0]!.closeCalls).toBe(1);
    expect(c.log).toEqual(['exec', 'close 0']);
    await vi.advanceTimersByTimeAsync(5000);
    const r = await p;
    expect(r).toMatchObject({ exitCode: null, signal: 'SIGTERM' });
    expect(r.stderr).toContain('the host did not confirm that the command ended');
  });

  it('a group that outlives the kill (e.g. another user) ends in a local close after the grace period', async () => {
    vi.useFakeTimers();
    const c = new FakeClient();
    const t = transport(c);
    const ac = new AbortController();
    const p = t.exec('sleep 30', { signal: ac.signal });
    await vi.advanceTimersByTimeAsync(0);
    c.channels[0]!.stderr.emit('data', Buffer.from('77\n'));
    ac.abort();
    await vi.advanceTimersByTimeAsync(0);
    c.channels[1]!.emit('close');
    await vi.advanceTimersByTimeAsync(KILL_GRACE_MS);
    expect(c.channels[0]!.closeCalls).toBe(0);
    await vi.advanceTimersByTimeAsync(2500);
    expect(c.channels[0]!.closeCalls).toBe(1);
    c.channels[0]!.finish(null, 'SIGKILL');
    expect((await p).signal).toBe('SIGKILL');
  });

  it('a kill on a lost connection ("Not connected" thrown synchronously) never throws', async () => {
    vi.useFakeTimers();
    const c = new FakeClient();
    c.onExec = (_cmd, cb, n) => {
      if (n === 0) return cb(undefined, c.open());
      throw new Error('Not connected');
    };
    const t = transport(c);
    const ac = new AbortController();
    const p = t.exec('sleep 30', { signal: ac.signal });
    await vi.advanceTimersByTimeAsync(0);
    c.channels[0]!.stderr.emit('data', Buffer.from('99\n'));
    ac.abort();
    await vi.advanceTimersByTimeAsync(0);
    expect(c.commands).toHaveLength(2);
    // no kill was sent: the channel is closed right away
    expect(c.channels[0]!.closeCalls).toBe(1);
    c.channels[0]!.emit('close');
    expect((await p).signal).toBe('SIGTERM');
  });

  it('a refused kill channel (server at MaxSessions) is retried until one opens', async () => {
    vi.useFakeTimers();
    const c = new FakeClient();
    c.onExec = (_cmd, cb, n) => {
      if (n === 1 || n === 2)
        return cb(new Error('(SSH) Channel open failure: open failed'), undefined as never);
      cb(undefined, c.open());
    };
    const t = transport(c);
    const ac = new AbortController();
    const p = t.exec('sleep 30', { signal: ac.signal });
    await vi.advanceTimersByTimeAsync(0);
    c.channels[0]!.stderr.emit('data', Buffer.from('55\n'));
    ac.abort();
    await vi.advanceTimersByTimeAsync(250);
    expect(c.commands.slice(1)).toEqual([killScript(55), killScript(55), killScript(55)]);
    c.channels[1]!.emit('close');
    c.channels[0]!.finish(null, 'SIGTERM');
    expect((await p).signal).toBe('SIGTERM');
    expect(c.channels[0]!.closeCalls).toBe(0);
  });

  it('close() waits until a pending cancellation has sent its kill', async () => {
    const c = new FakeClient();
    let ended = false;
    c.end = () => {
      ended = true;
    };
    const t = transport(c);
    const ac = new AbortController();
    void t.exec('sleep 30', { signal: ac.signal });
    await tick();
    ac.abort();
    const closing = t.close();
    await tick();
    expect(ended).toBe(false);
    c.channels[0]!.stderr.emit('data', Buffer.from('31\n'));
    await tick();
    expect(c.commands[1]).toBe(killScript(31));
    c.channels[1]!.emit('close');
    await closing;
    expect(ended).toBe(true);
  });

  it('aborted before a channel was free: the command never starts', async () => {
    const c = new FakeClient();
    const t = transport(c);
    const r = await t.exec('rm -rf /data', { signal: AbortSignal.abort() });
    expect(r.signal).toBe('SIGTERM');
    expect(c.commands).toEqual([]);
  });
});

describe('SshTransport connection state', () => {
  it('exec on a client that throws "Not connected" rejects with a ConnectionError', async () => {
    const c = new FakeClient();
    c.onExec = () => {
      throw new Error('Not connected');
    };
    const t = transport(c);
    await expect(t.exec('true')).rejects.toThrow(ConnectionError);
    expect(t.lost).toBe('Not connected');
  });

  it('lost is set when the server closes the connection, and later commands fail fast', async () => {
    const c = new FakeClient();
    const t = transport(c);
    expect(t.lost).toBeUndefined();
    c.emit('close');
    expect(t.lost).toBe('connection closed by the server');
    await expect(t.exec('true')).rejects.toThrow(/ssh connection lost: connection closed by the server/);
    expect(c.commands).toEqual([]);
  });

  it('closing it ourselves is not "lost"', async () => {
    const c = new FakeClient();
    const t = transport(c);
    await t.close();
    c.emit('close');
    expect(t.lost).toBeUndefined();
  });

  it('exposes the host key it trusted', () => {
    const t = transport(new FakeClient());
    expect([t.hostKeyFingerprint, t.hostKeyType, t.hostKeyTrust]).toEqual([
      'SHA256:test',
      'ssh-ed25519',
      'known',
    ]);
  });
});

describe('killScript on real process groups', () => {
  const run = promisify(execFile);
  /** A new session (its own group) running `script`; resolves its PID = PGID. */
  const session = (script: string) => {
    const child = spawn('setsid', ['sh', '-c', script], { stdio: 'ignore', detached: false });
    return child;
  };
  const state = (pid: number) => {
    try {
      const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
      return s.slice(s.lastIndexOf(')') + 2, s.lastIndexOf(')') + 3);
    } catch {
      return 'gone';
    }
  };
  const dead = (pid: number) => ['gone', 'Z'].includes(state(pid));

  it('rejects a PID that is not a process group', () => {
    expect(() => killScript(0)).toThrow();
    expect(() => killScript(1)).toThrow();
    expect(() => killScript(Number.NaN)).toThrow();
  });

  for (const shell of ['dash', 'bash']) {
    it(`${shell}: TERM ends a cooperative group at once`, async () => {
      const g = session('sleep 30 & wait');
      await new Promise((r) => setTimeout(r, 100));
      const t0 = Date.now();
      await run(shell, ['-c', killScript(g.pid!, 1000)]);
      while (!dead(g.pid!) && Date.now() - t0 < 2000) await new Promise((r) => setTimeout(r, 20));
      expect(dead(g.pid!)).toBe(true);
      expect(Date.now() - t0).toBeLessThan(800);
    });

    it(`${shell}: a group ignoring TERM gets KILL after the grace period, from a job that outlives the script`, async () => {
      const g = session("trap '' TERM; sleep 30; sleep 30");
      await new Promise((r) => setTimeout(r, 100));
      const t0 = Date.now();
      await run(shell, ['-c', killScript(g.pid!, 600)]);
      // the script itself returned at once; the background job does the rest
      expect(Date.now() - t0).toBeLessThan(400);
      expect(dead(g.pid!)).toBe(false);
      while (!dead(g.pid!) && Date.now() - t0 < 3000) await new Promise((r) => setTimeout(r, 20));
      expect(dead(g.pid!)).toBe(true);
      expect(Date.now() - t0).toBeGreaterThanOrEqual(550);
    });
  }
});

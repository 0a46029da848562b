// Runs commands on the machine pgrunbook runs on, as child processes of sh.
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { done, notYet, PollTimeout, poll } from '../util/poll.js';
import { heldCommand } from './held.js';
import { forgetGroup, watchGroup } from './reaper.js';
import type { ExecOptions, ExecResult, HeldCommand, Transport } from './transport.js';

/** How long an aborted command gets between SIGTERM and SIGKILL. */
export const LOCAL_KILL_GRACE_MS = 3000;

/** Options of a LocalTransport. */
export interface LocalTransportOptions {
  /**
   * Which of pgrunbook's environment variables a command inherits (true = keep); applied to
   * `process.env` at each command. Used to keep the inventory's secret variables out of commands.
   */
  envFilter?: (name: string) => boolean;
  /** Grace period between SIGTERM and SIGKILL on abort (tests shorten it). */
  killGraceMs?: number;
}

/** An env filter that drops exactly these names. */
export function withoutEnv(names: Iterable<string>): (name: string) => boolean {
  const drop = new Set(names);
  return (name) => !drop.has(name);
}

/**
 * The `local` transport: `sh -c LINE` per command, in its own process group. An abort sends
 * SIGTERM to the group, and SIGKILL after a grace period if any member is still alive.
 */
export class LocalTransport implements Transport {
  readonly kind = 'local' as const;
  readonly #envFilter?: (name: string) => boolean;
  readonly #graceMs: number;
  /** Escalations in progress: close() waits for them so an exiting run still kills. */
  readonly #escalations = new Set<Promise<void>>();

  constructor(opts: LocalTransportOptions = {}) {
    this.#envFilter = opts.envFilter;
    this.#graceMs = opts.killGraceMs ?? LOCAL_KILL_GRACE_MS;
  }

  /** The environment a command gets. */
  environment(): NodeJS.ProcessEnv {
    const keep = this.#envFilter;
    if (!keep) return process.env;
    return Object.fromEntries(Object.entries(process.env).filter(([k]) => keep(k)));
  }

  exec(line: string, opts: ExecOptions = {}): Promise<ExecResult> {
    return new Promise((resolve, reject) => {
      // detached: the command gets its own process group so an abort reaches its children too.
      const child = spawn('/bin/sh', ['-c', line], {
        stdio: ['pipe', 'pipe', 'pipe'],
        detached: true,
        env: this.environment(),
      });
      // If the runner dies while the command runs, the reaper ends its group.
      const pgid = child.pid;
      if (pgid) watchGroup(pgid);
      let stdout = '';
      let stderr = '';
      const onAbort = () => {
        const pgid = child.pid;
        if (!pgid || !signalGroup(pgid, 'SIGTERM')) return;
        const e = this.#escalate(pgid);
        this.#escalations.add(e);
        void e.finally(() => this.#escalations.delete(e));
      };
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      child.stdout.setEncoding('utf8').on('data', (c: string) => {
        stdout += c;
        opts.onOutput?.('stdout', c);
      });
      child.stderr.setEncoding('utf8').on('data', (c: string) => {
        stderr += c;
        opts.onOutput?.('stderr', c);
      });
      child.on('error', (err) => {
        opts.signal?.removeEventListener('abort', onAbort);
        reject(err);
      });
      child.on('close', (code, sig) => {
        if (pgid) forgetGroup(pgid);
        opts.signal?.removeEventListener('abort', onAbort);
        resolve({ exitCode: code, signal: sig, stdout, stderr });
      });
      child.stdin.on('error', () => {});
      child.stdin.end(opts.stdin ?? '');
      if (opts.signal?.aborted) onAbort();
    });
  }

  /**
   * Starts a held command in a process group of its own that the reaper does not know: it must
   * outlive a runner killed with -9, and learns of it from the EOF on its input pipe.
   */
  hold(line: string): Promise<HeldCommand> {
    return new Promise((resolve, reject) => {
      const child = spawn('/bin/sh', ['-c', line], {
        stdio: ['pipe', 'pipe', 'pipe'],
        detached: true,
        env: this.environment(),
      });
      const parts = heldCommand({ write: (t) => child.stdin.write(t), end: () => child.stdin.end() });
      child.stdin.on('error', () => {});
      child.stdout.setEncoding('utf8').on('data', (c: string) => parts.stdout(c));
      child.stderr.setEncoding('utf8').on('data', (c: string) => parts.stderr(c));
      child.on('error', reject);
      child.on('spawn', () => {
        // Never what keeps the runner alive: the runner ends it (or dies) on its own terms.
        child.unref();
        for (const s of [child.stdin, child.stdout, child.stderr])
          (s as unknown as { unref?: () => void }).unref?.();
        resolve(parts.command);
      });
      child.on('close', (code, sig) => parts.ended(code, sig));
    });
  }

  /** Polls the group until it is gone; SIGKILL to whatever is left after the grace period. */
  async #escalate(pgid: number): Promise<void> {
    // No signal: this runs because of an abort, and must go on to the end.
    await poll(() => (groupAlive(pgid) ? notYet() : done(undefined)), {
      timeoutMs: this.#graceMs,
      intervalMs: 50,
    }).catch((err) => {
      if (!(err instanceof PollTimeout)) throw err;
      signalGroup(pgid, 'SIGKILL');
    });
  }

  async close(): Promise<void> {
    await Promise.all(this.#escalations);
  }
}

/** Signals a process group; false if it no longer exists. */
function signalGroup(pgid: number, sig: NodeJS.Signals): boolean {
  try {
    process.kill(-pgid, sig);
    return true;
  } catch {
    return false;
  }
}

/** Whether any member of the group still runs (zombies awaiting their reaper do not count). */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
  } catch (err) {
    // EPERM: members exist but belong to someone else (e.g. after sudo): still alive.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  return process.platform === 'linux' ? liveMemberInProc(pgid) : true;
}

/** Scans /proc for a non-zombie process of the group; true when /proc cannot tell. */
function liveMemberInProc(pgid: number): boolean {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return true;
  }
  let seen = false;
  for (const e of entries) {
    if (e.charCodeAt(0) < 48 || e.charCodeAt(0) > 57) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${e}/stat`, 'utf8');
    } catch {
      continue;
    }
    // pid (comm) state ppid pgrp …: comm may hold spaces and parentheses, so parse after the last ')'.
    const [state, , pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(pgrp) !== pgid) continue;
    seen = true;
    if (state !== 'Z') return true;
  }
  // kill() saw the group: if /proc showed none of it, it is hidden from us (hidepid), assume alive.
  return !seen;
}

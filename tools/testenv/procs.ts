import { type ChildProcess, spawn } from 'node:child_process';
import { readdir, readFile, rm } from 'node:fs/promises';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// Whether a PID is a live process; a zombie counts as gone.
export async function isAlive(pid: number): Promise<boolean> {
  // A daemonized postmaster is re-parented to PID 1, which on these VMs reaps only every ~2 s;
  // until then kill(pid, 0) keeps succeeding on the zombie.
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
    // The state field follows the parenthesised command name, which may itself contain ')'.
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

// Wait for a PID to disappear; true if it did within the time limit.
export async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (!(await isAlive(pid))) return true;
    if (Date.now() >= end) return false;
    await sleep(20);
  }
}

// Descendants of a PID mapped to their parents: how to find sshd sessions, which setsid.
export async function descendantTree(pid: number): Promise<Map<number, number>> {
  const parentOf = new Map<number, number>();
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => '');
    if (!stat) continue;
    parentOf.set(Number(name), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
  }
  const out = new Map<number, number>();
  const queue = [pid];
  while (queue.length > 0) {
    const p = queue.shift() as number;
    for (const [child, parent] of parentOf) {
      if (parent === p) {
        out.set(child, parent);
        queue.push(child);
      }
    }
  }
  return out;
}

// All descendant PIDs of a process, parents before children.
export async function descendants(pid: number): Promise<number[]> {
  return [...(await descendantTree(pid)).keys()];
}

// Quote a string for /bin/sh.
export function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

// Handle on an armed watchdog; disarm() before a normal stop.
export interface Watchdog {
  disarm(): Promise<void>;
}

// Runs the shell snippet `onParentDeath` if this process dies, even by SIGKILL, before disarm().
export function armWatchdog(onParentDeath: string): Watchdog {
  // The shell holds the read end of a pipe from us: EOF without "disarm" means we died. Detached,
  // so a Ctrl-C to the terminal's process group cannot kill it before it acts.
  const child = spawn('/bin/sh', ['-c', `read cmd; [ "$cmd" = disarm ] && exit 0; ${onParentDeath}`], {
    stdio: ['pipe', 'ignore', 'ignore'],
    detached: true,
  });
  const exited = new Promise<void>((res) => {
    child.once('exit', () => res());
    child.once('error', () => res());
  });
  // Neither the process nor its pipe may keep the test worker alive.
  child.unref();
  (child.stdin as unknown as { unref?: () => void } | null)?.unref?.();
  child.stdin?.on('error', () => {});
  let disarming: Promise<void> | undefined;
  return {
    disarm: () => {
      disarming ??= (async () => {
        child.stdin?.end('disarm\n');
        // Wait for the reap so no zombie is left for PID 1.
        await exited;
      })();
      return disarming;
    },
  };
}

/**
 * Stops a test daemon this process spawned (etcd, Consul, PgBouncer): disarms its watchdog, sends
 * SIGTERM (SIGKILL after 5 s) and waits until it is reaped, then deletes its root directory
 * (unless PGRB_KEEP_TEST_DIRS=1 or `removeFiles` is false).
 */
export async function stopDaemon(
  child: ChildProcess | undefined,
  rootDir: string,
  watchdog: Watchdog | undefined,
  removeFiles: boolean,
): Promise<void> {
  if (watchdog) {
    // disarm() waits on an unref'd child: a ref'd timer keeps a plain script (not vitest) from
    // finding the event loop empty and exiting with code 13 in the middle of the stop.
    const keep = setInterval(() => {}, 1000);
    await watchdog.disarm().finally(() => clearInterval(keep));
  }
  const pid = child?.pid ?? 0;
  if (child && pid > 0 && child.exitCode === null && child.signalCode === null) {
    // Reaped by this process (the 'exit' event), so no zombie is left for PID 1. SIGTERM is the
    // immediate stop of each (PgBouncer's SIGINT would wait for its clients).
    const reaped = new Promise<void>((res) => child.once('exit', () => res()));
    signalPid(pid, 'SIGTERM');
    const t = setTimeout(() => signalPid(pid, 'SIGKILL'), 5000);
    await reaped;
    clearTimeout(t);
  } else if (pid > 0) {
    await waitForExit(pid, 5000);
  }
  if (removeFiles && process.env.PGRB_KEEP_TEST_DIRS !== '1')
    await rm(rootDir, { recursive: true, force: true });
}

function signalPid(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

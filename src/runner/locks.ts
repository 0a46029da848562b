// One run at a time. Two locks, taken before the journal exists and held until the run ends:
//  - on this machine, per inventory file: an flock(1) held by a child process that lives exactly
//    as long as the runner (its stdin is our pipe), so even kill -9 of the runner frees it;
//  - per Patroni cluster whose inventory names its DCS (`patroni.dcs`): a key in the cluster's own
//    etcd bound to a lease, or in its Consul acquired by a session, which the runner keeps alive,
//    so a run from another machine is refused too, and the lock disappears by itself within
//    lock_ttl after its holder died.
// A refused run names the holder (run id, user@host, pid, since when, playbook).
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import * as consul from '../connections/consul.js';
import * as etcd from '../connections/etcd.js';
import type { DcsSettings } from '../connections/patroni.js';
import { ConnectionError, PgrunbookError } from '../errors.js';
import type { InventoryHost } from '../inventory/inventory.js';

/** Another run holds a lock this run needs: exit 2, nothing ran. */
export class LockedError extends PgrunbookError {
  override name = 'LockedError';
}

/** Who holds a lock, as the holder wrote it. */
export interface Holder {
  run: string;
  user: string;
  host: string;
  pid: number;
  since: string;
  playbook: string;
}

/** What the run locks, and how. */
export interface LockRequest {
  inventoryFile: string;
  /** the hosts the run may touch */
  hosts: InventoryHost[];
  run: string;
  playbook: string;
  /** delete a cluster lock held by someone else (the operator confirmed) */
  breakLock: boolean;
  /** the run lost a cluster lock while running (its lease or session could not be renewed) */
  onLost(why: string): void;
}

/** Locks held by this run. */
export interface HeldLocks {
  /** one line per lock, for the log */
  lines: string[];
  release(): Promise<void>;
}

/** Where the machine-wide lock of an inventory lives. */
export function localLockPath(inventoryFile: string): string {
  const id = createHash('sha256').update(realpathSync(inventoryFile)).digest('hex').slice(0, 16);
  return join(tmpdir(), 'pgrunbook-locks', `${id}.lock`);
}

function describeHolder(text: string): string {
  try {
    const h = JSON.parse(text) as Holder;
    return `run ${h.run} by ${h.user}@${h.host} (pid ${h.pid}) since ${h.since}, playbook ${h.playbook}`;
  } catch {
    return text.trim() || '(holder unknown)';
  }
}

/** Takes the machine-wide lock of the inventory, or says who holds it. */
async function lockLocally(
  path: string,
  holder: string,
): Promise<{ child: ChildProcess } | { busy: string }> {
  mkdirSync(join(path, '..'), { recursive: true, mode: 0o1777 });
  // `cat` holds the lock until its stdin — our pipe — closes: when we release it, or die.
  // Its own process group: a Ctrl-C on the terminal is the runner's to handle, not the lock's.
  const child = spawn('flock', ['-n', '-E', '75', path, 'sh', '-c', 'echo locked; exec cat >/dev/null'], {
    stdio: ['pipe', 'pipe', 'ignore'],
    detached: true,
  });
  const got = await new Promise<boolean>((resolve, reject) => {
    child.once('error', reject);
    child.stdout!.once('data', () => resolve(true));
    child.once('exit', () => resolve(false));
  });
  if (!got) {
    let who = '(holder unknown)';
    try {
      who = describeHolder(readFileSync(`${path}.holder`, 'utf8'));
    } catch {
      // the holder has not written its name yet
    }
    return { busy: who };
  }
  child.stdout!.resume();
  writeFileSync(`${path}.holder`, holder, { mode: 0o644 });
  return { child };
}

/** Takes every lock the run needs, or throws LockedError naming who holds one (nothing kept). */
export async function acquireRunLocks(req: LockRequest): Promise<HeldLocks> {
  let user = 'unknown';
  try {
    user = userInfo().username;
  } catch {
    // no passwd entry
  }
  const holder: Holder = {
    run: req.run,
    user,
    host: hostname(),
    pid: process.pid,
    since: new Date().toISOString(),
    playbook: req.playbook,
  };
  const value = JSON.stringify(holder);
  const lines: string[] = [];
  const releases: (() => Promise<void>)[] = [];
  const releaseAll = async () => {
    for (const r of releases.reverse()) await r().catch(() => {});
  };
  const path = localLockPath(req.inventoryFile);
  const local = await lockLocally(path, value);
  if ('busy' in local)
    throw new LockedError(
      `another run on this machine holds the lock of ${req.inventoryFile}: ${local.busy}. Nothing was run; wait for it to end.`,
    );
  releases.push(async () => {
    const c = local.child;
    // Already gone (killed from outside): nothing to wait for, and no 'exit' will come again.
    if (c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.stdin!.end();
    await exited;
  });
  lines.push(`lock: ${req.inventoryFile} on this machine (${path})`);
  try {
    const clusters = new Map<string, DcsSettings>();
    for (const h of req.hosts) {
      const d = h.patroni?.dcs;
      if (d) clusters.set(`${d.kind} ${d.url} ${d.scope}`, d);
    }
    for (const d of clusters.values()) {
      const dcs = dcsLock(d);
      const name = `${dcs.product} ${d.url}`;
      const taking = <T>(what: string, op: () => Promise<T>) =>
        op().catch((err: unknown) => {
          if (err instanceof PgrunbookError && !(err instanceof ConnectionError)) throw err;
          throw new LockedError(
            `Patroni cluster ${d.scope}: the run lock in its DCS (${name}) could not be ${what}: ${(err as Error).message}. Nothing was run.`,
          );
        });
      let attempt = await taking('taken', () => dcs.tryLock(value));
      if ('holder' in attempt && req.breakLock) {
        lines.push(
          `lock: broke the lock of Patroni cluster ${d.scope} held by ${describeHolder(attempt.holder)}`,
        );
        await taking('broken', () => dcs.breakLock());
        attempt = await taking('taken after breaking it', () => dcs.tryLock(value));
      }
      if ('holder' in attempt)
        throw new LockedError(
          `Patroni cluster ${d.scope} is locked in its DCS (${name}, key ${dcs.key}) by ${describeHolder(attempt.holder)}. Nothing was run. ` +
            `The lock ends with that run, or ${d.lockTtlS} s after its runner died; if it is stale, "run --break-lock" breaks it after confirmation.`,
        );
      const lock = attempt.held;
      // Renewed at a third of lock_ttl: two missed renewals still leave time for a third.
      const timer = setInterval(
        () => {
          lock.renew().then(
            (alive) => {
              if (!alive) req.onLost(`the lock of Patroni cluster ${d.scope} in ${name} expired`);
            },
            (err) =>
              req.onLost(
                `the lock of Patroni cluster ${d.scope} in ${name} could not be renewed: ${(err as Error).message}`,
              ),
          );
        },
        Math.max(500, (d.lockTtlS * 1000) / 3),
      );
      timer.unref();
      releases.push(async () => {
        clearInterval(timer);
        await lock.release();
      });
      lines.push(`lock: Patroni cluster ${d.scope} in its DCS (${name}, ${dcs.holds} ${d.lockTtlS} s)`);
    }
  } catch (err) {
    await releaseAll();
    throw err;
  }
  return { lines, release: releaseAll };
}

/** A cluster lock in either DCS, the same three operations. */
interface DcsLock {
  /** "etcd" or "Consul", for messages */
  product: string;
  key: string;
  /** what bounds the lock's life, for the log line */
  holds: string;
  tryLock(
    value: string,
  ): Promise<{ held: { renew(): Promise<boolean>; release(): Promise<void> } } | { holder: string }>;
  breakLock(): Promise<void>;
}

/** The cluster lock in the DCS the inventory names: an etcd lease-bound key, or a Consul session's key. */
function dcsLock(d: DcsSettings): DcsLock {
  if (d.kind === 'consul') {
    // Consul's keys have no leading slash (Patroni's are service/SCOPE/…).
    const key = `pgrunbook/locks/${d.scope}`;
    const ep = { url: d.url, token: d.token };
    return {
      product: 'Consul',
      key,
      holds: 'session for',
      async tryLock(value) {
        const a = await consul.tryLock(ep, key, value, d.lockTtlS);
        if ('holder' in a) return a;
        const l = a.held;
        return { held: { renew: () => consul.renew(ep, l.session), release: l.release } };
      },
      breakLock: () => consul.breakLock(ep, key),
    };
  }
  const key = `/pgrunbook/locks/${d.scope}`;
  return {
    product: 'etcd',
    key,
    holds: 'lease',
    async tryLock(value) {
      const a = await etcd.tryLock(d.url, key, value, d.lockTtlS);
      if ('holder' in a) return a;
      const l = a.held;
      return { held: { renew: () => etcd.keepAlive(d.url, l.leaseId), release: l.release } };
    },
    breakLock: () => etcd.breakLock(d.url, key),
  };
}

// Connections owned by the runner: opened on first use, one per host and kind, closed at the end.

import { LocalTransport, withoutEnv } from '../connections/local.js';
import { openPg, type PgSession } from '../connections/pg.js';
import { openSsh, SshTransport } from '../connections/ssh.js';
import type { Transport } from '../connections/transport.js';
import { ConnectionError } from '../errors.js';
import type { InventoryHost } from '../inventory/inventory.js';
import { Semaphore } from '../util/semaphore.js';

/** New SSH handshakes at once: OpenSSH's default MaxStartups starts dropping at 10. */
const HANDSHAKES = new Semaphore(8);

/** A dedicated session held open across steps (a non-exclusive backup lives on one). */
export interface PinnedSession {
  host: string;
  name: string;
  session: PgSession;
  /** What the run reports if the session ends before it is released. */
  lostMessage: string;
}

/** Options of a pool. */
export interface ConnectionPoolOptions {
  /** More environment variable names to keep out of local commands (secret sources). */
  hideEnv?: Iterable<string>;
}

/** A cached open (or opening) connection; `value` once it resolved. */
interface Cached<T> {
  promise: Promise<T>;
  value?: T;
}

/** Lazily opened transports and PostgreSQL sessions per host, and pinned sessions by name. */
export class ConnectionPool {
  readonly #transports = new Map<string, Cached<Transport>>();
  readonly #pg = new Map<string, Cached<PgSession>>();
  readonly #pinned = new Map<string, PinnedSession>();
  /** Connections found lost and replaced: closed with the rest at the end. */
  readonly #retired: Promise<{ close(): Promise<void> }>[] = [];
  readonly #hideEnv: string[];
  /** Set by the runner: a pinned session ended while held. */
  onPinnedLost: (p: PinnedSession, why: string) => void = () => {};
  /**
   * Set by the runner: an SSH connection was opened (`reopened` after a lost one). Its
   * `hostKeyFingerprint` and `hostKeyTrust` say which key was trusted and why; an
   * `accepted-unknown` key belongs in the journal.
   */
  onSshOpened: (host: string, t: SshTransport, reopened: boolean) => void = () => {};

  constructor(opts: ConnectionPoolOptions = {}) {
    this.#hideEnv = [...(opts.hideEnv ?? [])];
  }

  /**
   * The host's transport, opened on first use. A cached SSH connection that was lost (network,
   * sshd restart) is replaced by a new one, its host key verified again: later steps and undo
   * must not all fail with "connection lost".
   */
  transport(host: InventoryHost): Promise<Transport> {
    const cached = this.#transports.get(host.name);
    const old = cached?.value;
    if (cached && !(old instanceof SshTransport && old.lost)) return cached.promise;
    let sameKeyAs: string | undefined;
    if (old instanceof SshTransport) {
      this.#retired.push(Promise.resolve(old));
      // An unknown key accepted once must not be swapped for another unknown one on reconnect.
      if (old.hostKeyTrust === 'accepted-unknown') sameKeyAs = old.hostKeyFingerprint;
    }
    const reopened = !!old;
    const entry: Cached<Transport> = {
      promise:
        host.transport === 'local'
          ? Promise.resolve(
              new LocalTransport({ envFilter: withoutEnv([...(host.secretEnv ?? []), ...this.#hideEnv]) }),
            )
          : HANDSHAKES.run(() => openSsh(host.ssh!, { sameKeyAs })).then((t) => {
              this.onSshOpened(host.name, t, reopened);
              return t;
            }),
    };
    this.#transports.set(host.name, entry);
    entry.promise.then(
      (t) => {
        entry.value = t;
      },
      // A failed open is not cached: the next step may retry it.
      () => {
        if (this.#transports.get(host.name) === entry) this.#transports.delete(host.name);
      },
    );
    return entry.promise;
  }

  /** The host's shared PostgreSQL session; one that ended unexpectedly is replaced. */
  pg(host: InventoryHost): Promise<PgSession> {
    if (!host.pg)
      return Promise.reject(new ConnectionError(`host ${host.name} has no pg settings in the inventory`));
    const cached = this.#pg.get(host.name);
    if (cached && !cached.value?.lost) return cached.promise;
    if (cached?.value) this.#retired.push(Promise.resolve(cached.value));
    const entry: Cached<PgSession> = {
      promise: openPg(host.name, { ...host.pg, password: host.pg.password }),
    };
    this.#pg.set(host.name, entry);
    entry.promise.then(
      (s) => {
        entry.value = s;
      },
      () => {
        if (this.#pg.get(host.name) === entry) this.#pg.delete(host.name);
      },
    );
    return entry.promise;
  }

  /** Opens a dedicated session under `name`; it is watched until `releasePinned`. */
  async openPinned(
    host: InventoryHost,
    name: string,
    lostMessage: string,
    setup: string[],
  ): Promise<PinnedSession> {
    const key = `${host.name}/${name}`;
    if (this.#pinned.has(key))
      throw new ConnectionError(`${host.name}: a session named "${name}" is already held by this run`);
    if (!host.pg) throw new ConnectionError(`host ${host.name} has no pg settings in the inventory`);
    const session = await openPg(host.name, host.pg, `pgrunbook-${name}`);
    for (const sql of setup) await session.query(sql);
    const pinned: PinnedSession = { host: host.name, name, session, lostMessage };
    this.#pinned.set(key, pinned);
    session.onLost((why) => {
      if (this.#pinned.get(key) === pinned) this.onPinnedLost(pinned, why);
    });
    return pinned;
  }

  /** The pinned session `name` of a host, if this run holds it. */
  pinned(host: string, name: string): PinnedSession | undefined {
    return this.#pinned.get(`${host}/${name}`);
  }

  /** Stops watching and closes a pinned session. */
  async releasePinned(host: string, name: string): Promise<void> {
    const p = this.#pinned.get(`${host}/${name}`);
    this.#pinned.delete(`${host}/${name}`);
    await p?.session.close();
  }

  async closeAll(): Promise<void> {
    const all: Promise<{ close(): Promise<void> }>[] = [
      ...[...this.#pinned.values()].map((p) => Promise.resolve(p.session)),
      ...[...this.#transports.values()].map((c) => c.promise),
      ...[...this.#pg.values()].map((c) => c.promise),
      ...this.#retired,
    ];
    this.#pinned.clear();
    this.#transports.clear();
    this.#pg.clear();
    this.#retired.length = 0;
    await Promise.all(all.map((p) => p.then((c) => c.close()).catch(() => {})));
  }
}

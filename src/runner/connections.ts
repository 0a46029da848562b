// Connections owned by the runner: opened on first use, one per host and kind, closed at the end.

import { LocalTransport } from '../connections/local.js';
import { openPg, type PgSession } from '../connections/pg.js';
import { openSsh } from '../connections/ssh.js';
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

/** Lazily opened transports and PostgreSQL sessions per host, and pinned sessions by name. */
export class ConnectionPool {
  readonly #transports = new Map<string, Promise<Transport>>();
  readonly #pg = new Map<string, Promise<PgSession>>();
  readonly #pinned = new Map<string, PinnedSession>();
  /** Set by the runner: a pinned session ended while held. */
  onPinnedLost: (p: PinnedSession, why: string) => void = () => {};

  transport(host: InventoryHost): Promise<Transport> {
    let t = this.#transports.get(host.name);
    if (!t) {
      t =
        host.transport === 'local'
          ? Promise.resolve(new LocalTransport())
          : HANDSHAKES.run(() => openSsh(host.ssh!));
      this.#transports.set(host.name, t);
      // A failed open is not cached: the next step may retry it.
      t.catch(() => this.#transports.delete(host.name));
    }
    return t;
  }

  pg(host: InventoryHost): Promise<PgSession> {
    if (!host.pg)
      return Promise.reject(new ConnectionError(`host ${host.name} has no pg settings in the inventory`));
    let s = this.#pg.get(host.name);
    if (!s) {
      s = openPg(host.name, { ...host.pg, password: host.pg.password });
      this.#pg.set(host.name, s);
      s.catch(() => this.#pg.delete(host.name));
    }
    return s;
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
    for (const p of this.#pinned.values())
      this.#pg.set(`pinned:${p.host}/${p.name}`, Promise.resolve(p.session));
    this.#pinned.clear();
    const all = [...this.#transports.values(), ...this.#pg.values()];
    await Promise.all(all.map((p) => p.then((c) => c.close()).catch(() => {})));
    this.#transports.clear();
    this.#pg.clear();
  }
}

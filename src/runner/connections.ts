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

/** Lazily opened transports and PostgreSQL sessions per host. */
export class ConnectionPool {
  readonly #transports = new Map<string, Promise<Transport>>();
  readonly #pg = new Map<string, Promise<PgSession>>();

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

  async closeAll(): Promise<void> {
    const all = [...this.#transports.values(), ...this.#pg.values()];
    await Promise.all(all.map((p) => p.then((c) => c.close()).catch(() => {})));
    this.#transports.clear();
    this.#pg.clear();
  }
}

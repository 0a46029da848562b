// Connections owned by the runner: opened on first use, one per host and kind, closed at the end.

import { LocalTransport, withoutEnv } from '../connections/local.js';
import { openPg, type PgSession } from '../connections/pg.js';
import { openSsh, SshTransport } from '../connections/ssh.js';
import type { ExecResult, HeldCommand, Transport } from '../connections/transport.js';
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

/**
 * A held command that watches over a change for as long as the run lives (a pause's guard). It
 * speaks a line protocol on its input: `beat` (sent by the pool), then one last word from the
 * run; its last stdout line reports what it did ("ok: …", "left: …", "failed: …").
 */
export interface Guard {
  host: string;
  name: string;
  command: HeldCommand;
  /** What the run reports if the guard ends while held. */
  lostMessage: string;
  /** Its stdout lines so far. */
  lines: string[];
  /** It keeps watching past the point of no return (its act is safe at any point). */
  pastPointOfNoReturn: boolean;
}

/** A guard's last word: what it did. */
const RESULT = /^(ok|left|paused|failed): /;

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
  readonly #guards = new Map<string, Guard>();
  #beat: NodeJS.Timeout | undefined;
  /** Set by the runner: a guard ended while held (its channel closed, it gave up). */
  onGuardLost: (g: Guard, result: ExecResult) => void = () => {};
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

  /**
   * Starts a guard on `host` under a run-wide `name`: `settings` is its first input line, and it
   * must print a line starting with "ready" within `readyMs`. From then on the pool tells it the
   * run is alive every `beatMs`; if it ends while held, `onGuardLost` is called.
   */
  async startGuard(
    host: InventoryHost,
    name: string,
    line: string,
    settings: string,
    lostMessage: string,
    opts: { readyMs: number; beatMs: number; pastPointOfNoReturn?: boolean },
  ): Promise<Guard> {
    if (this.#guards.has(name))
      throw new ConnectionError(`a guard named "${name}" is already held by this run`);
    const command = await (await this.transport(host)).hold(line);
    const guard: Guard = {
      host: host.name,
      name,
      command,
      lostMessage,
      lines: [],
      pastPointOfNoReturn: opts.pastPointOfNoReturn ?? false,
    };
    let ready: (ok: boolean) => void = () => {};
    const isReady = new Promise<boolean>((r) => {
      ready = r;
    });
    command.onLine((l) => {
      guard.lines.push(l);
      if (l.startsWith('ready')) ready(true);
    });
    const timer = setTimeout(() => ready(false), opts.readyMs);
    void command.exited.then(() => ready(false));
    command.write(settings);
    const ok = await isReady;
    clearTimeout(timer);
    if (!ok) {
      command.end();
      const r = await Promise.race([
        command.exited,
        new Promise<undefined>((res) => setTimeout(() => res(undefined), 1000)),
      ]);
      const why = r
        ? `${r.stderr.trim().split('\n').slice(-2).join(' ') || 'no message'} (exit ${r.exitCode ?? r.signal ?? 'unknown'})`
        : `it did not say it was ready within ${opts.readyMs / 1000}s`;
      throw new ConnectionError(`${host.name}: the guard could not start: ${why}`);
    }
    this.#guards.set(name, guard);
    void command.exited.then((r) => {
      if (this.#guards.get(name) !== guard) return;
      this.#guards.delete(name);
      this.onGuardLost(guard, r);
    });
    this.#beat ??= setInterval(() => {
      for (const g of this.#guards.values()) g.command.write('beat\n');
    }, opts.beatMs).unref();
    return guard;
  }

  /** The guard `name`, if this run holds it. */
  guard(name: string): Guard | undefined {
    return this.#guards.get(name);
  }

  /** The guards still held, oldest first. */
  heldGuards(): Guard[] {
    return [...this.#guards.values()];
  }

  /** Tells a held guard something (e.g. `armed`) without ending it. */
  tellGuard(name: string, word: string): void {
    this.#guards.get(name)?.command.write(`${word}\n`);
  }

  /**
   * Ends a guard with its last word (`release`: nothing to guard any more; `finish`: act now)
   * and returns its last line, or undefined when it did not end within `waitMs` — it then goes
   * on by itself, its input closed.
   */
  async endGuard(name: string, word: 'release' | 'finish', waitMs: number): Promise<string | undefined> {
    const g = this.#guards.get(name);
    if (!g) return undefined;
    this.#guards.delete(name);
    if (this.#guards.size === 0 && this.#beat) {
      clearInterval(this.#beat);
      this.#beat = undefined;
    }
    // Its answer is the first result line after the word ("ok: …", "left: …", "paused: …",
    // "failed: …"): a guard may report and go on watching (a pause that may still land).
    const from = g.lines.length;
    const result = () => g.lines.slice(from).find((l) => RESULT.test(l));
    let answered: () => void = () => {};
    const answer = new Promise<void>((r) => {
      answered = r;
    });
    g.command.onLine(() => {
      if (result()) answered();
    });
    g.command.write(`${word}\n`);
    let timer: NodeJS.Timeout | undefined;
    const r = await Promise.race([
      g.command.exited,
      answer,
      new Promise<'timeout'>((res) => {
        timer = setTimeout(() => res('timeout'), waitMs);
      }),
    ]);
    clearTimeout(timer);
    g.command.end();
    if (r === 'timeout') return undefined;
    return result() ?? `(the guard ended without a word: exit ${r ? (r.exitCode ?? r.signal) : 'unknown'})`;
  }

  async closeAll(): Promise<void> {
    const all: Promise<{ close(): Promise<void> }>[] = [
      ...[...this.#pinned.values()].map((p) => Promise.resolve(p.session)),
      ...[...this.#transports.values()].map((c) => c.promise),
      ...[...this.#pg.values()].map((c) => c.promise),
      ...this.#retired,
    ];
    // A guard still held here means the runner did not end it (it should have): closing its
    // input is the signal it acts on.
    for (const g of this.#guards.values()) g.command.end();
    this.#guards.clear();
    if (this.#beat) clearInterval(this.#beat);
    this.#beat = undefined;
    this.#pinned.clear();
    this.#transports.clear();
    this.#pg.clear();
    this.#retired.length = 0;
    await Promise.all(all.map((p) => p.then((c) => c.close()).catch(() => {})));
  }
}

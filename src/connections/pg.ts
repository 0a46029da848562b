// PostgreSQL sessions: one client per host for ordinary queries, opened lazily.
import type pg from 'pg';
import { ConnectionError } from '../errors.js';
import type { Secret } from '../util/secret.js';

/** How to reach one host's PostgreSQL; the password is a Secret from an env var or a file. */
export interface PgSettings {
  host: string;
  port: number;
  user: string;
  database: string;
  sslmode: 'disable' | 'prefer' | 'require' | 'verify-ca' | 'verify-full';
  password?: Secret;
}

/** Facts learned read-only at plan --check or run start. */
export interface PgFacts {
  versionNum: number;
  version: string;
  inRecovery: boolean;
}

/** Result of one query: column names and rows as plain objects. */
export interface QueryResult {
  rows: Record<string, unknown>[];
  rowCount: number;
  command: string;
}

/** One open session; `query` is parameterised ($1, $2 …) and never interpolates values. */
export class PgSession {
  #closing = false;
  #lost: string | undefined;
  /** What steps sharing a held session tell each other (e.g. when a backup started). */
  readonly notes: Record<string, unknown> = {};
  readonly #onLost: ((why: string) => void)[] = [];

  constructor(
    private readonly client: pg.Client,
    readonly settings: PgSettings,
  ) {
    // A session can end without any query of ours: pg_terminate_backend, a restart, the network.
    client.on('error', (err: Error) => this.#lose(err.message));
    client.on('end', () => this.#lose('the server closed the connection'));
  }

  #lose(why: string): void {
    if (this.#closing || this.#lost) return;
    this.#lost = why;
    for (const f of this.#onLost) f(why);
  }

  /** Calls `f` once if the session ends other than by `close()`. */
  onLost(f: (why: string) => void): void {
    if (this.#lost) f(this.#lost);
    else this.#onLost.push(f);
  }

  /** Why the session ended unexpectedly, if it did. */
  get lost(): string | undefined {
    return this.#lost;
  }

  /** The server process of this session, for pg_terminate_backend and pg_stat_activity. */
  get backendPid(): number | undefined {
    return (this.client as unknown as { processID?: number }).processID;
  }

  async query(sql: string, params: unknown[] = []): Promise<QueryResult> {
    const r = await this.client.query({ text: sql, values: params });
    return { rows: r.rows as Record<string, unknown>[], rowCount: r.rowCount ?? 0, command: r.command };
  }

  async facts(): Promise<PgFacts> {
    const r = await this.query(
      "select current_setting('server_version_num')::int as num, current_setting('server_version') as v, pg_is_in_recovery() as rec",
    );
    const row = r.rows[0]!;
    return { versionNum: row.num as number, version: row.v as string, inRecovery: row.rec as boolean };
  }

  /** Cancels the running statement (used on abort) without closing the session. */
  async cancel(): Promise<void> {
    const pid = (this.client as unknown as { processID?: number }).processID;
    if (!pid) return;
    const { default: driver } = await import('pg');
    const c = new driver.Client(clientConfig(this.settings, 'pgrunbook-cancel'));
    try {
      await c.connect();
      await c.query('select pg_cancel_backend($1)', [pid]);
    } finally {
      await c.end().catch(() => {});
    }
  }

  async close(): Promise<void> {
    this.#closing = true;
    await this.client.end().catch(() => {});
  }
}

function clientConfig(s: PgSettings, applicationName: string): pg.ClientConfig {
  const ssl =
    s.sslmode === 'disable' || s.sslmode === 'prefer'
      ? false
      : { rejectUnauthorized: s.sslmode === 'verify-ca' || s.sslmode === 'verify-full' };
  return {
    host: s.host,
    port: s.port,
    user: s.user,
    database: s.database,
    password: s.password?.reveal(),
    ssl,
    application_name: applicationName,
    connectionTimeoutMillis: 10_000,
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
  };
}

/** Opens a session; errors name the host and never include the password. */
export async function openPg(
  hostName: string,
  s: PgSettings,
  applicationName = 'pgrunbook',
): Promise<PgSession> {
  // Loaded on first use: runs and plans without PostgreSQL hosts never pay for the driver.
  const { default: driver } = await import('pg');
  const client = new driver.Client(clientConfig(s, applicationName));
  // Until PgSession takes over the events, a dying connection must not crash the process.
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (err) {
    await client.end().catch(() => {});
    throw new ConnectionError(
      `${hostName}: cannot connect to PostgreSQL at ${s.host}:${s.port} as ${s.user}/${s.database}: ${(err as Error).message}`,
    );
  }
  return new PgSession(client, s);
}

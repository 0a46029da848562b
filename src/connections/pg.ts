// PostgreSQL sessions: one client per host for ordinary queries, opened lazily.

import type { ConnectionOptions } from 'node:tls';
import type pg from 'pg';
import { ConnectionError } from '../errors.js';
import { FileReadError, readRegularFile } from '../util/read-file.js';
import type { Secret } from '../util/secret.js';

/** How to reach one host's PostgreSQL; the password is a Secret from an env var or a file. */
export interface PgSettings {
  host: string;
  port: number;
  user: string;
  database: string;
  /** libpq's meanings: see `tlsOptions`. */
  sslmode: 'disable' | 'prefer' | 'require' | 'verify-ca' | 'verify-full';
  /** PEM file of the CA(s) to verify the server certificate with; read at each connect. */
  sslrootcert?: string;
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
    /** Whether this session runs over TLS (`prefer` falls back to plain on a server without it). */
    readonly tls = false,
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
    const c = new driver.Client(
      clientConfig(this.settings, 'pgrunbook-cancel', this.tls ? tlsOptions(this.settings) : false, driver),
    );
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

/**
 * The TLS options of a mode, as libpq means them: `disable` none; `prefer` and `require` encrypt
 * without checking the certificate (but `require` with an explicit `sslrootcert` verifies the
 * chain, as libpq does for backwards compatibility); `verify-ca` checks the chain but not the host
 * name; `verify-full` checks both. Verification uses `sslrootcert` when given, else Node's CA store.
 * Returns false for no TLS; `prefer` returns the TLS attempt (see `openPg` for its fallback).
 */
export function tlsOptions(s: PgSettings): false | ConnectionOptions {
  if (s.sslmode === 'disable') return false;
  const ca = s.sslrootcert ? readRootCert(s.sslrootcert) : undefined;
  const verifyChain =
    s.sslmode === 'verify-ca' || s.sslmode === 'verify-full' || (s.sslmode === 'require' && !!ca);
  if (!verifyChain) return { rejectUnauthorized: false };
  return {
    rejectUnauthorized: true,
    ...(ca ? { ca } : {}),
    // verify-ca: a certificate signed by a trusted CA is enough, whatever name it carries.
    ...(s.sslmode === 'verify-full' ? {} : { checkServerIdentity: () => undefined }),
  };
}

function readRootCert(path: string): Buffer {
  try {
    return readRegularFile(path, 4 * 1024 * 1024);
  } catch (err) {
    if (!(err instanceof FileReadError)) throw err;
    throw new ConnectionError(`cannot read sslrootcert ${path}: ${err.reason}`);
  }
}

/** int8 (count(*), sum of ints, bigint columns) as a number when it is exact, else as text. */
export function parseInt8(text: string): number | string {
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : text;
}

/** `{1,2,NULL}` of int8 → elements through parseInt8 (nested arrays too). */
function mapNested(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(mapNested);
  return typeof v === 'string' ? parseInt8(v) : v;
}

const INT8 = 20;
const INT8_ARRAY = 1016;

/**
 * Per-client type parsers: int8 becomes a number where it is a safe integer, so `count == 0` in a
 * playbook expression means what it says; numeric (exact decimals) stays text. The driver's global
 * parsers are left alone.
 */
export function typeParsers(driver: typeof pg): pg.CustomTypesConfig {
  const base = driver.types.getTypeParser.bind(driver.types) as (oid: number, format?: string) => unknown;
  const getTypeParser = (oid: number, format?: string) => {
    if (format !== 'binary' && oid === INT8) return parseInt8;
    if (format !== 'binary' && oid === INT8_ARRAY) {
      const arr = base(oid, 'text') as (v: string) => unknown;
      return (v: string) => mapNested(arr(v));
    }
    return base(oid, format);
  };
  return { getTypeParser } as unknown as pg.CustomTypesConfig;
}

function clientConfig(
  s: PgSettings,
  applicationName: string,
  ssl: false | ConnectionOptions,
  driver: typeof pg,
): pg.ClientConfig {
  return {
    host: s.host,
    port: s.port,
    user: s.user,
    database: s.database,
    password: s.password?.reveal(),
    ssl,
    types: typeParsers(driver),
    application_name: applicationName,
    connectionTimeoutMillis: 10_000,
    keepAlive: true,
    keepAliveInitialDelayMillis: 10_000,
  };
}

/** The driver's error when the server answers an SSLRequest with 'N' (it has no TLS). */
const NO_TLS = /server does not support SSL/i;

/** Opens a session; errors name the host and never include the password. */
export async function openPg(
  hostName: string,
  s: PgSettings,
  applicationName = 'pgrunbook',
): Promise<PgSession> {
  // Loaded on first use: runs and plans without PostgreSQL hosts never pay for the driver.
  const { default: driver } = await import('pg');
  const fail = (err: unknown) =>
    new ConnectionError(
      `${hostName}: cannot connect to PostgreSQL at ${s.host}:${s.port} as ${s.user}/${s.database}: ${(err as Error).message}`,
    );
  let ssl: false | ConnectionOptions;
  try {
    ssl = tlsOptions(s);
  } catch (err) {
    throw fail(err);
  }
  const attempt = async (tls: false | ConnectionOptions): Promise<pg.Client> => {
    const client = new driver.Client(clientConfig(s, applicationName, tls, driver));
    // Until PgSession takes over the events, a dying connection must not crash the process.
    client.on('error', () => {});
    try {
      await client.connect();
      return client;
    } catch (err) {
      await client.end().catch(() => {});
      throw err;
    }
  };
  try {
    return new PgSession(await attempt(ssl), s, ssl !== false);
  } catch (err) {
    // prefer: plain only when the server itself says it has no TLS, never after any other failure
    // (a TLS session that failed authentication is not retried in the clear).
    if (s.sslmode === 'prefer' && NO_TLS.test((err as Error).message)) {
      try {
        return new PgSession(await attempt(false), s, false);
      } catch (err2) {
        throw fail(err2);
      }
    }
    throw fail(err);
  }
}

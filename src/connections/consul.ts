// A lock in Consul, over its HTTP API: a KV key acquired by a session with a TTL and behaviour
// `delete`. The key exists while its holder renews the session and is deleted by Consul when the
// session ends (released, or not renewed in time), so two operators on two machines cannot both
// run on one cluster. The same mechanism Patroni uses for its leader key on Consul.
import { ConnectionError, PgrunbookError } from '../errors.js';
import type { Secret } from '../util/secret.js';

/** A held lock: renew its session until released. */
export interface ConsulLock {
  key: string;
  session: string;
  /** Ends the session at once (Consul deletes the key with it). */
  release(): Promise<void>;
}

/** The lock, or what holds the key now: its value as written by the holder. */
export type ConsulLockAttempt = { held: ConsulLock } | { holder: string };

/** Consul refused the session TTL (outside its session_ttl_min..24h): a setting to change. */
export class ConsulTtlError extends PgrunbookError {
  override name = 'ConsulTtlError';
}

/** Where Consul answers: its HTTP API base URL, and the ACL token to send, if any. */
export interface ConsulEndpoint {
  url: string;
  token?: Secret;
}

/** One KV entry as GET /v1/kv/KEY returns it. */
interface KvEntry {
  Key: string;
  Value: string | null;
  Session?: string;
}

/**
 * A KV path: each segment of the key percent-encoded. A `.`/`..` or empty segment would be
 * resolved by the URL to another key: refused (the inventory allowlists the scope already).
 */
function kvPath(key: string): string {
  const segments = key.split('/');
  if (segments.some((s) => s === '' || s === '.' || s === '..'))
    throw new PgrunbookError(`Consul key ${JSON.stringify(key)}: an empty, "." or ".." segment is refused`);
  return `/v1/kv/${segments.map(encodeURIComponent).join('/')}`;
}

async function call(
  ep: ConsulEndpoint,
  method: 'GET' | 'PUT' | 'DELETE',
  path: string,
  body?: string,
  timeoutMs = 5000,
): Promise<{ status: number; text: string }> {
  const url = ep.url;
  let res: Response;
  try {
    res = await fetch(`${url}${path}`, {
      method,
      ...(body === undefined ? {} : { body }),
      // The header, not ?token=: a URL is printed in messages, a header never.
      ...(ep.token ? { headers: { 'x-consul-token': ep.token.reveal() } } : {}),
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (err) {
    throw new ConnectionError(`Consul ${url}: no answer to ${method} ${path} (${causeOf(err)})`);
  }
  return { status: res.status, text: await res.text() };
}

/** An unexpected answer; a 403 says which token (by its source) or that one is needed. */
function fail(ep: ConsulEndpoint, method: string, path: string, r: { status: number; text: string }): never {
  const denied =
    r.status === 403
      ? ep.token
        ? ` (the ACL token from ${ep.token.source} may not do this: it needs key_prefix "pgrunbook/locks/" write and session write)`
        : ' (Consul enforces ACLs: give patroni.dcs.token)'
      : '';
  throw new ConnectionError(
    `Consul ${ep.url}: ${method} ${path}: HTTP ${r.status} ${r.text.trim().slice(0, 200)}${denied}`,
  );
}

/**
 * The session TTL for a lock that must end at most `lockTtlS` after its holder's last renewal:
 * Consul invalidates a session only after twice its TTL (as Patroni also accounts for).
 */
export function sessionTtl(lockTtlS: number): string {
  return `${lockTtlS / 2}s`;
}

/** Creates a session for a lock of `lockTtlS` seconds; its id. */
async function createSession(ep: ConsulEndpoint, name: string, lockTtlS: number): Promise<string> {
  const path = '/v1/session/create';
  const r = await call(
    ep,
    'PUT',
    path,
    JSON.stringify({
      Name: name,
      TTL: sessionTtl(lockTtlS),
      // Deleted, not merely released, when the session ends: no stale holder left behind.
      Behavior: 'delete',
      // No serf health check: the lock lives with the runner's renewals, not with a Consul node.
      Checks: [],
      // Consul's default lock-delay (15 s) would keep the key from being taken again that long
      // after a holder died; lock_ttl already is the time the operator chose (Patroni: 1 ms).
      LockDelay: '1ms',
    }),
  );
  if (r.status === 500 && /Invalid Session TTL/i.test(r.text))
    throw new ConsulTtlError(
      `Consul ${ep.url} refused a session TTL of ${sessionTtl(lockTtlS)} for the run lock (${r.text.trim().slice(0, 120)}). ` +
        `The session TTL is half of patroni.dcs.lock_ttl (${lockTtlS} s), since Consul ends a session only after twice its TTL: ` +
        `set lock_ttl to at least twice Consul's session_ttl_min (20 with its default of 10 s). Nothing was run.`,
    );
  if (r.status !== 200) fail(ep, 'PUT', path, r);
  const id = (JSON.parse(r.text) as { ID?: string }).ID;
  if (!id) fail(ep, 'PUT', path, r);
  return id;
}

/** Ends a session; Consul deletes the keys it holds (behaviour delete). */
async function destroySession(ep: ConsulEndpoint, session: string): Promise<void> {
  const path = `/v1/session/destroy/${encodeURIComponent(session)}`;
  const r = await call(ep, 'PUT', path);
  if (r.status !== 200) fail(ep, 'PUT', path, r);
}

/** The key's entry, or undefined when there is none. */
async function readKey(ep: ConsulEndpoint, key: string): Promise<KvEntry | undefined> {
  const path = kvPath(key);
  const r = await call(ep, 'GET', path);
  if (r.status === 404) return undefined;
  if (r.status !== 200) fail(ep, 'GET', path, r);
  return (JSON.parse(r.text) as KvEntry[])[0];
}

const textOf = (e: KvEntry | undefined) =>
  e?.Value ? Buffer.from(e.Value, 'base64').toString('utf8') : undefined;

/**
 * Acquires `key` with a new session of TTL `lockTtlS`/2 and writes `value` into it (one atomic
 * acquire: two runs racing cannot both win). When another session holds it, says who.
 */
export async function tryLock(
  ep: ConsulEndpoint,
  key: string,
  value: string,
  lockTtlS: number,
): Promise<ConsulLockAttempt> {
  const session = await createSession(ep, `pgrunbook ${key}`, lockTtlS);
  const release = async () => {
    await destroySession(ep, session).catch(() => {});
  };
  try {
    const path = `${kvPath(key)}?acquire=${encodeURIComponent(session)}`;
    const r = await call(ep, 'PUT', path, value);
    if (r.status !== 200) fail(ep, 'PUT', path, r);
    if (r.text.trim() === 'true') return { held: { key, session, release } };
    await release();
    const holder = textOf(await readKey(ep, key));
    return { holder: holder ?? '(the lock expired just now; try again)' };
  } catch (err) {
    await release();
    throw err;
  }
}

/** Renews a session once; false when it is gone (expired or destroyed: the lock was lost). */
export async function renew(ep: ConsulEndpoint, session: string): Promise<boolean> {
  const path = `/v1/session/renew/${encodeURIComponent(session)}`;
  const r = await call(ep, 'PUT', path);
  if (r.status === 404) return false;
  if (r.status !== 200) fail(ep, 'PUT', path, r);
  return true;
}

/**
 * Breaks a lock whoever holds it, only on the operator's explicit word: ends the holder's
 * session (a holder still alive then fails its next renewal and stops) and deletes the key.
 */
export async function breakLock(ep: ConsulEndpoint, key: string): Promise<void> {
  const entry = await readKey(ep, key);
  if (entry?.Session) await destroySession(ep, entry.Session);
  const path = kvPath(key);
  const r = await call(ep, 'DELETE', path);
  if (r.status !== 200) fail(ep, 'DELETE', path, r);
}

/** Why a fetch failed: the socket error's code (ECONNREFUSED…) rather than undici's "fetch failed". */
function causeOf(err: unknown): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  return e.cause?.code ?? e.cause?.message ?? e.message;
}

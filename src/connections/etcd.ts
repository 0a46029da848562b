// A lock in etcd (v3), over its JSON gateway on the client port: a key bound to a lease. The key
// exists while its holder keeps the lease alive and disappears by itself when the holder dies, so
// two operators on two machines cannot both run on one cluster. No gRPC client needed.
import { ConnectionError } from '../errors.js';

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
const unb64 = (s: string) => Buffer.from(s, 'base64').toString('utf8');

/** A held lock: keep it alive until released. */
export interface EtcdLock {
  key: string;
  leaseId: string;
  /** Ends the lease at once (the key goes with it). */
  release(): Promise<void>;
}

/** What holds a key now, if anyone: its value as written by the holder. */
export type LockAttempt = { held: EtcdLock } | { holder: string };

async function call(
  url: string,
  path: string,
  body: unknown,
  timeoutMs = 5000,
): Promise<Record<string, unknown>> {
  let res: Response;
  try {
    res = await fetch(`${url}${path}`, {
      method: 'POST',
      body: JSON.stringify(body),
      headers: { 'content-type': 'application/json' },
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (err) {
    throw new ConnectionError(`etcd ${url}: no answer to ${path} (${causeOf(err)})`);
  }
  const text = await res.text();
  if (!res.ok) throw new ConnectionError(`etcd ${url}${path}: HTTP ${res.status} ${text.slice(0, 200)}`);
  return JSON.parse(text) as Record<string, unknown>;
}

/**
 * Creates `key` bound to a new lease of `ttlS` seconds unless it exists (one transaction: two
 * runs racing cannot both win). When it exists, says who holds it.
 */
export async function tryLock(url: string, key: string, value: string, ttlS: number): Promise<LockAttempt> {
  const grant = await call(url, '/v3/lease/grant', { TTL: ttlS });
  const leaseId = String(grant.ID);
  const k = b64(key);
  const txn = await call(url, '/v3/kv/txn', {
    compare: [{ key: k, result: 'EQUAL', target: 'CREATE', create_revision: '0' }],
    success: [{ request_put: { key: k, value: b64(value), lease: leaseId } }],
    failure: [{ request_range: { key: k } }],
  });
  const release = async () => {
    await call(url, '/v3/lease/revoke', { ID: leaseId }).catch(() => {});
  };
  if (txn.succeeded === true) return { held: { key, leaseId, release } };
  await release();
  const responses = (txn.responses ?? []) as { response_range?: { kvs?: { value?: string }[] } }[];
  const v = responses[0]?.response_range?.kvs?.[0]?.value;
  return { holder: v ? unb64(v) : '(the lock expired just now; try again)' };
}

/** Renews a lease once; false when it is gone (expired: the lock was lost). */
export async function keepAlive(url: string, leaseId: string): Promise<boolean> {
  const r = await call(url, '/v3/lease/keepalive', { ID: leaseId });
  const ttl = Number((r.result as { TTL?: string } | undefined)?.TTL ?? 0);
  return ttl > 0;
}

/**
 * Breaks a lock whoever holds it, only on the operator's explicit word: revokes the holder's lease
 * (a holder still alive then fails its next renewal and stops) and deletes the key.
 */
export async function breakLock(url: string, key: string): Promise<void> {
  const r = await call(url, '/v3/kv/range', { key: b64(key) });
  const lease = ((r.kvs ?? []) as { lease?: string }[])[0]?.lease;
  if (lease && lease !== '0') await call(url, '/v3/lease/revoke', { ID: lease });
  await call(url, '/v3/kv/deleterange', { key: b64(key) });
}

/** Why a fetch failed: the socket error's code (ECONNREFUSED…) rather than undici's "fetch failed". */
function causeOf(err: unknown): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  return e.cause?.code ?? e.cause?.message ?? e.message;
}

// One real DCS (etcd or a Consul dev agent) and a Patroni cluster for a test file: started before
// its tests, stopped after.
import { afterAll, beforeAll } from 'vitest';
import {
  type ConsulServer,
  type EtcdServer,
  httpRequest,
  type PatroniCluster,
  type StartPatroniOptions,
  startConsul,
  startEtcd,
  startPatroniCluster,
} from '../../tools/testenv/index.js';

/** What the file's tests use; `set` receives it once the cluster has a leader and streaming replicas. */
export function usePatroniCluster(
  set: (lab: { etcd: EtcdServer; cluster: PatroniCluster }) => void,
  opts: Omit<StartPatroniOptions, 'etcd' | 'consul'> = {},
): void {
  let etcd: EtcdServer | undefined;
  let cluster: PatroniCluster | undefined;
  beforeAll(async () => {
    etcd = await startEtcd();
    cluster = await startPatroniCluster({ members: 2, ...opts, etcd });
    set({ etcd, cluster });
  }, 90_000);
  afterAll(async () => {
    await cluster?.stop();
    await etcd?.stop();
  });
}

/** The DCS kinds pgrunbook and the test clusters support, as the inventory spells them. */
export type DcsKind = 'etcd3' | 'consul';

/** A running DCS of either kind, with what a test asks of it directly (not through pgrunbook). */
export interface TestDcs {
  kind: DcsKind;
  /** etcd's client URL or Consul's HTTP API URL: the inventory's `patroni.dcs.<kind>` */
  url: string;
  /** what startPatroniCluster takes to put a cluster on it */
  patroniOption: Pick<StartPatroniOptions, 'etcd' | 'consul'>;
  /** The value of pgrunbook's lock key of `scope`, or undefined when there is none. */
  lockValue(scope: string): Promise<string | undefined>;
  /** Writes `value` as the lock of `scope`, held by a lease/session of `ttlS` nobody renews. */
  putStaleLock(scope: string, value: string, ttlS: number): Promise<void>;
  stop(): Promise<void>;
}

/** Starts a DCS of `kind`: a single etcd, or a Consul dev agent. */
export async function startTestDcs(kind: DcsKind): Promise<TestDcs> {
  if (kind === 'consul') {
    const c: ConsulServer = await startConsul();
    const key = (scope: string) => `${c.httpUrl}/v1/kv/pgrunbook/locks/${encodeURIComponent(scope)}`;
    return {
      kind,
      url: c.httpUrl,
      patroniOption: { consul: c },
      async lockValue(scope) {
        const r = await httpRequest('GET', key(scope));
        if (r.status === 404) return undefined;
        const v = (JSON.parse(r.body) as { Value: string | null }[])[0]?.Value;
        return v ? Buffer.from(v, 'base64').toString() : undefined;
      },
      async putStaleLock(scope, value, ttlS) {
        const s = await httpRequest('PUT', `${c.httpUrl}/v1/session/create`, {
          TTL: `${ttlS}s`,
          Behavior: 'delete',
          LockDelay: '1ms',
        });
        const id = (JSON.parse(s.body) as { ID: string }).ID;
        // httpRequest sends JSON: the stored value is the JSON string of `value`; write it raw.
        const r = await rawPut(`${key(scope)}?acquire=${id}`, value);
        if (r.trim() !== 'true') throw new Error(`putStaleLock: acquire answered ${r}`);
      },
      stop: () => c.stop(),
    };
  }
  const e = await startEtcd();
  const key = (scope: string) => Buffer.from(`/pgrunbook/locks/${scope}`).toString('base64');
  return {
    kind,
    url: e.clientUrl,
    patroniOption: { etcd: e },
    async lockValue(scope) {
      const r = await httpRequest('POST', `${e.clientUrl}/v3/kv/range`, { key: key(scope) });
      const kv = (JSON.parse(r.body).kvs ?? [])[0];
      return kv ? Buffer.from(kv.value, 'base64').toString() : undefined;
    },
    async putStaleLock(scope, value, ttlS) {
      const grant = JSON.parse(
        (await httpRequest('POST', `${e.clientUrl}/v3/lease/grant`, { TTL: ttlS })).body,
      );
      await httpRequest('POST', `${e.clientUrl}/v3/kv/put`, {
        key: key(scope),
        value: Buffer.from(value).toString('base64'),
        lease: grant.ID,
      });
    },
    stop: () => e.stop(),
  };
}

/** PUT with a raw (not JSON-encoded) body; the answer's text. */
async function rawPut(url: string, body: string): Promise<string> {
  const res = await fetch(url, { method: 'PUT', body, signal: AbortSignal.timeout(3000) });
  return res.text();
}

/** usePatroniCluster on a DCS of either kind. */
export function usePatroniClusterOn(
  kind: DcsKind,
  set: (lab: { dcs: TestDcs; cluster: PatroniCluster }) => void,
  opts: Omit<StartPatroniOptions, 'etcd' | 'consul'> = {},
): void {
  let dcs: TestDcs | undefined;
  let cluster: PatroniCluster | undefined;
  beforeAll(async () => {
    dcs = await startTestDcs(kind);
    cluster = await startPatroniCluster({ members: 2, ...opts, ...dcs.patroniOption });
    set({ dcs, cluster });
  }, 90_000);
  afterAll(async () => {
    await cluster?.stop();
    await dcs?.stop();
  });
}

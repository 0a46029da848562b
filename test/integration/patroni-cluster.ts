// One real etcd and a Patroni cluster for a test file: started before its tests, stopped after.
import { afterAll, beforeAll } from 'vitest';
import {
  type EtcdServer,
  type PatroniCluster,
  type StartPatroniOptions,
  startEtcd,
  startPatroniCluster,
} from '../../tools/testenv/index.js';

/** What the file's tests use; `set` receives it once the cluster has a leader and streaming replicas. */
export function usePatroniCluster(
  set: (lab: { etcd: EtcdServer; cluster: PatroniCluster }) => void,
  opts: Omit<StartPatroniOptions, 'etcd'> = {},
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

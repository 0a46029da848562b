// The dynamic groups `patroni_leader` and `patroni_replicas`: who leads each Patroni cluster is a
// fact of the moment, asked from the REST API at run start (and by `plan --check`), never written
// down in the inventory where it would go stale after the next failover.
import { type ClusterStatus, PatroniClient } from '../connections/patroni.js';
import { ConnectionError, UsageError } from '../errors.js';
import type { Inventory, InventoryHost, PatroniGroups } from '../inventory/inventory.js';
import { done, poll } from '../util/poll.js';

/** Members of one cluster name different leaders. */
class Disagreement extends ConnectionError {}

const LEADER_ROLES = ['leader', 'standby_leader', 'master', 'primary'];

/**
 * Asks every host with Patroni settings for its view of the cluster and derives the groups.
 * Members of one cluster that disagree on the leader (a failover in progress) are an error:
 * nothing should start on a guess.
 */
export async function resolvePatroniGroups(
  inventory: Inventory,
  signal?: AbortSignal,
  settleMs = 10_000,
): Promise<PatroniGroups> {
  // Right after a leader change, members' views converge within a loop_wait or two.
  return poll(async () => done(await resolveOnce(inventory, signal)), {
    timeoutMs: settleMs,
    intervalMs: 500,
    signal,
    retryErrors: (err) => err instanceof Disagreement,
  });
}

async function resolveOnce(inventory: Inventory, signal?: AbortSignal): Promise<PatroniGroups> {
  const hosts = [...inventory.hosts.values()].filter((h) => h.patroni);
  // No Patroni here: both groups are empty (a play on `all:!patroni_replicas` runs on every
  // host; one on `patroni_leader` matches nothing, which the plan reports as an error).
  if (hosts.length === 0)
    return {
      at: new Date().toISOString(),
      clusters: [],
      groups: { patroni_leader: [], patroni_replicas: [] },
    };
  const answers = await Promise.all(
    hosts.map(async (h) => {
      try {
        return { h, c: await new PatroniClient(h.name, h.patroni!).cluster(signal) };
      } catch (err) {
        return { h, err: (err as Error).message };
      }
    }),
  );
  const ok = answers.filter((a): a is { h: InventoryHost; c: ClusterStatus } => 'c' in a && !!a.c);
  if (ok.length === 0)
    throw new ConnectionError(
      `cannot resolve patroni_leader/patroni_replicas: no Patroni REST API answered:\n  ${answers.map((a) => ('err' in a ? a.err : '')).join('\n  ')}`,
    );
  // A cluster is known by its scope; hosts belong to the cluster their own API described.
  const byScope = new Map<string, { h: InventoryHost; c: ClusterStatus }[]>();
  for (const a of ok) {
    const key =
      a.c.scope ??
      a.c.members
        .map((m) => m.name)
        .sort()
        .join(',');
    byScope.set(key, [...(byScope.get(key) ?? []), a]);
  }
  const silent = answers.filter((a) => 'err' in a).map((a) => a.h);
  const out: PatroniGroups = { at: new Date().toISOString(), clusters: [], groups: {} };
  const leaders: string[] = [];
  const replicas: string[] = [];
  for (const [scope, views] of byScope) {
    const named = new Set(views.map((v) => v.c.leader ?? '(none)'));
    if (named.size > 1)
      throw new Disagreement(
        `Patroni members of ${scope} disagree on the leader (${views.map((v) => `${v.h.name} says ${v.c.leader ?? 'none'}`).join(', ')}): a failover or switchover is in progress; retry once the cluster has settled`,
      );
    const view = views[0]!.c;
    // Inventory hosts of this cluster: those that answered for it, and silent ones it lists.
    const answered = views.map((v) => v.h);
    const sameName = (member: string) => hosts.filter((h) => h.patroni!.member === member);
    const hostOf = (m: ClusterStatus['members'][number]) =>
      (
        answered.find((h) => h.patroni!.member === m.name) ??
        // A silent host is placed by its REST URL, or by a member name no other cluster uses:
        // two clusters both with a "pg1" must not swap hosts.
        silent.find((h) => m.apiUrl !== undefined && h.patroni!.url === m.apiUrl) ??
        (sameName(m.name).length === 1 ? silent.find((h) => h.patroni!.member === m.name) : undefined)
      )?.name;
    const cluster: PatroniGroups['clusters'][number] = { scope, replicas: [], unknownMembers: [] };
    for (const m of view.members) {
      const host = hostOf(m);
      if (!host) {
        cluster.unknownMembers.push(m.name);
        continue;
      }
      if (LEADER_ROLES.includes(m.role)) {
        cluster.leader = host;
        cluster.timeline = m.timeline;
        leaders.push(host);
      } else {
        cluster.replicas.push(host);
        replicas.push(host);
      }
    }
    // Nothing may start on a cluster without a leader, or whose leader the inventory cannot name:
    // a play on patroni_leader would silently do nothing.
    if (!view.leader)
      throw new Disagreement(
        `Patroni cluster ${scope} has no leader (failover in progress, or the cluster is down)`,
      );
    if (!cluster.leader)
      throw new ConnectionError(
        `Patroni cluster ${scope}: its leader ${view.leader} is no host of the inventory (set patroni.member on the host whose Patroni name it is)`,
      );
    out.clusters.push(cluster);
  }
  const order = [...inventory.hosts.keys()];
  const sorted = (hs: string[]) => order.filter((h) => hs.includes(h));
  out.groups = { patroni_leader: sorted(leaders), patroni_replicas: sorted(replicas) };
  return out;
}

/**
 * The dynamic groups as if `leaders` (comma-separated, one per Patroni cluster) led: every other
 * host with Patroni settings is a replica. With several leaders (a blue-green upgrade's two
 * clusters), a replica is placed with the leader it shares an inventory group with. Only the plan
 * uses this; a run always asks Patroni.
 */
export function assumedGroups(inventory: Inventory, leaders: string): PatroniGroups {
  const names = leaders
    .split(',')
    .map((n) => n.trim())
    .filter(Boolean);
  if (names.length === 0) throw new UsageError('--assume-leader: no host named');
  for (const leader of names) {
    const h = inventory.hosts.get(leader);
    if (!h?.patroni)
      throw new UsageError(
        `--assume-leader: "${leader}" is not a host with patroni settings in ${inventory.file}`,
      );
  }
  const replicas = [...inventory.hosts.values()]
    .filter((x) => x.patroni && !names.includes(x.name))
    .map((x) => x.name);
  const groupsOf = (name: string) => new Set(inventory.hosts.get(name)?.groups ?? []);
  const clusters = names.map((leader) => {
    const mine = groupsOf(leader);
    return {
      scope: '(assumed with --assume-leader; asked from Patroni at run start)',
      leader,
      replicas:
        names.length === 1 ? replicas : replicas.filter((r) => [...groupsOf(r)].some((g) => mine.has(g))),
      unknownMembers: [],
    };
  });
  const order = [...inventory.hosts.keys()];
  return {
    at: new Date().toISOString(),
    clusters,
    groups: { patroni_leader: order.filter((h) => names.includes(h)), patroni_replicas: replicas },
  };
}

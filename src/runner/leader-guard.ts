// `requires_leader: true`: just before such a step, the host must still be its cluster's Patroni
// leader. A switchover or failover mid-run (by anyone) makes the step refuse rather than run on
// a replica, or on a demoted primary that still looks writable for a moment.
import { PatroniClient } from '../connections/patroni.js';
import { StepFailure } from '../errors.js';
import type { InventoryHost } from '../inventory/inventory.js';

const LEADER_ROLES = ['master', 'primary', 'standby_leader'];

/** Resolves with a line for the log when `host` leads; throws StepFailure saying who does if not. */
export async function checkLeader(host: InventoryHost, signal?: AbortSignal): Promise<string> {
  if (!host.patroni)
    throw new StepFailure(
      `requires_leader: host ${host.name} has no patroni settings (patroni.url) in the inventory`,
    );
  const client = new PatroniClient(host.name, host.patroni);
  const member = host.patroni.member;
  let role: string;
  let cluster: Awaited<ReturnType<PatroniClient['cluster']>>;
  try {
    // Its own role says what PostgreSQL is now (demotion is immediate); /cluster says who holds
    // the leader key. Both must name this host.
    const [me, c] = await Promise.all([client.memberStatus(signal), client.cluster(signal)]);
    role = String(me.role ?? 'unknown');
    cluster = c;
  } catch (err) {
    throw new StepFailure(
      `requires_leader: cannot confirm ${host.name} is the Patroni leader (${(err as Error).message}); refusing the step`,
    );
  }
  const scope = cluster.scope ?? 'the cluster';
  if (cluster.leader !== member || !LEADER_ROLES.includes(role)) {
    throw new StepFailure(
      `requires_leader: ${host.name} (member ${member}) is not the leader of ${scope} now: the leader is ${cluster.leader ?? '(none)'} and ${member} reports role ${role}. ` +
        'If it led when the run started, a switchover or failover happened since; refusing the step.',
    );
  }
  const tl = cluster.members.find((m) => m.name === member)?.timeline;
  return `leader confirmed: ${member} leads ${scope}${tl !== undefined ? ` (timeline ${tl})` : ''}`;
}

// Shared by the Patroni steps: reach the cluster through this host, then check every member.
import { setTimeout as sleep } from 'node:timers/promises';
import { type ClusterStatus, PatroniClient } from '../../connections/patroni.js';
import { StepFailure } from '../../errors.js';
import type { ApplyContext, PlanContext } from '../define.js';

/** This host's Patroni client; a host without `patroni:` settings cannot run Patroni steps. */
export function clientOf(ctx: PlanContext): PatroniClient {
  const s = ctx.host.patroni;
  if (!s)
    throw new StepFailure(`host ${ctx.host.name} has no patroni settings (patroni.url) in the inventory`);
  return new PatroniClient(ctx.host.name, s);
}

/** A client for another member, with this host's credentials and TLS settings. */
export function memberClient(ctx: PlanContext, name: string, url: string): PatroniClient {
  return new PatroniClient(name, { ...ctx.host.patroni!, url });
}

/**
 * Polls GET /patroni on every member until each reports the wanted pause state. `patronictl
 * pause --wait` returns even when a member never acknowledged: this does not.
 */
export async function waitForPause(
  ctx: ApplyContext,
  cluster: ClusterStatus,
  paused: boolean,
  timeoutS: number,
): Promise<void> {
  const pending = new Map(cluster.members.map((m) => [m.name, m.apiUrl ?? '']));
  const why = new Map<string, string>();
  const deadline = Date.now() + timeoutS * 1000;
  for (;;) {
    await Promise.all(
      [...pending].map(async ([name, url]) => {
        if (!url) {
          why.set(name, 'no api_url in /cluster');
          return;
        }
        try {
          const st = await memberClient(ctx, name, url).memberStatus(ctx.signal);
          if ((st.pause === true) === paused) {
            pending.delete(name);
            why.delete(name);
          } else why.set(name, `reports pause: ${st.pause === true}`);
        } catch (err) {
          why.set(name, (err as Error).message);
        }
      }),
    );
    if (pending.size === 0) return;
    if (Date.now() > deadline) {
      const list = [...pending.keys()].map((n) => `${n} (${why.get(n) ?? 'no answer'})`).join(', ');
      throw new StepFailure(
        `${paused ? 'pause' : 'resume'} not acknowledged within ${timeoutS}s by: ${list}`,
      );
    }
    await sleep(200, undefined, { signal: ctx.signal });
  }
}

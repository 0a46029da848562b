// Shared by the Patroni steps: reach the cluster through this host, then check every member.
import { type ClusterStatus, PatroniClient } from '../../connections/patroni.js';
import { StepFailure } from '../../errors.js';
import { done, notYet, poll } from '../../util/poll.js';
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
  await poll(
    async () => {
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
      return pending.size === 0 ? done(undefined) : notYet();
    },
    {
      timeoutMs: timeoutS * 1000,
      intervalMs: 200,
      signal: ctx.signal,
      onTimeout: () => {
        const list = [...pending.keys()].map((n) => `${n} (${why.get(n) ?? 'no answer'})`).join(', ');
        return new StepFailure(
          `${paused ? 'pause' : 'resume'} not acknowledged within ${timeoutS}s by: ${list}`,
        );
      },
    },
  );
}

/**
 * Polls one member's GET /patroni until `reached` holds; on timeout fails with `what` and the last
 * state seen (or why the member did not answer).
 */
export async function waitForMember(
  ctx: ApplyContext,
  name: string,
  url: string,
  what: string,
  reached: (st: Record<string, unknown>) => boolean,
  timeoutS: number,
): Promise<Record<string, unknown>> {
  const client = memberClient(ctx, name, url);
  return poll(
    async () => {
      try {
        const st = await client.memberStatus(ctx.signal);
        return reached(st) ? done(st) : notYet(`role ${String(st.role)}, state ${String(st.state)}`);
      } catch (err) {
        return notYet((err as Error).message);
      }
    },
    {
      timeoutMs: timeoutS * 1000,
      intervalMs: 500,
      signal: ctx.signal,
      onTimeout: (last) =>
        new StepFailure(
          `${name}: ${what} not reached within ${timeoutS}s (last seen: ${last ?? 'no answer yet'})`,
        ),
    },
  );
}

/** A POST to a member's API that must answer 2xx; the member's own text explains a refusal. */
export async function post(
  ctx: ApplyContext,
  client: PatroniClient,
  path: string,
  body: Record<string, unknown>,
  timeoutS?: number,
): Promise<string> {
  const r = await client.send('POST', path, body, ctx.signal, timeoutS ? timeoutS * 1000 : undefined);
  const text = r.body.trim().slice(0, 500);
  if (r.status === 401 || r.status === 403)
    throw new StepFailure(
      `Patroni ${client.memberName}: POST ${path} refused (${r.status}): check patroni.username/password`,
    );
  if (r.status < 200 || r.status >= 300)
    throw new StepFailure(
      `Patroni ${client.memberName}: POST ${path} answered ${r.status}: ${text || '(no text)'}`,
    );
  return text;
}

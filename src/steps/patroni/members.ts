// Shared by the Patroni steps: reach the cluster through this host, then check every member.
import { type ClusterStatus, DcsError, PatroniClient, patroniMessage } from '../../connections/patroni.js';
import { ConnectionError, StepFailure } from '../../errors.js';
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
  const text = patroniMessage(r.body);
  if (r.status === 401 || r.status === 403)
    throw new StepFailure(
      `Patroni ${client.memberName}: POST ${path} refused (${r.status}): check patroni.username/password`,
    );
  if (r.status < 200 || r.status >= 300)
    throw new StepFailure(`Patroni ${client.memberName}: POST ${path} answered ${r.status}: ${text}`);
  return r.body.trim().slice(0, 500);
}

/** Members' REST API URLs by member name, as GET /cluster advertises them (kept in a pause's outputs). */
export function memberUrls(cluster: ClusterStatus): Record<string, string> {
  return Object.fromEntries(cluster.members.filter((m) => m.apiUrl).map((m) => [m.name, m.apiUrl!]));
}

/**
 * The first member that answers GET /cluster: this host's own REST API, then each other member
 * (its inventory URL when the inventory names it, else the URL Patroni advertises). A pause must
 * be undone through any member that is up, not only through the one that is down. When none
 * answers, the failure says what each said, and whether members are up but their DCS is not.
 */
export async function reachCluster(
  ctx: ApplyContext,
  others: Record<string, string> = {},
): Promise<{ client: PatroniClient; cluster: ClusterStatus }> {
  const own = clientOf(ctx);
  const candidates: PatroniClient[] = [own];
  for (const [name, url] of Object.entries(others)) {
    const inv = ctx.peer(name)?.patroni?.url;
    const target = inv ?? url;
    if (candidates.some((c) => c.url === target)) continue;
    candidates.push(memberClient(ctx, name, target));
  }
  const why: string[] = [];
  let dcs = 0;
  for (const client of candidates) {
    try {
      return { client, cluster: await client.cluster(ctx.signal) };
    } catch (err) {
      if (!(err instanceof ConnectionError)) throw err;
      // GET /cluster reads the DCS: a member cut off from it answers /patroni still, and says so.
      const stale = await dcsStaleness(ctx, client);
      if (stale) dcs++;
      why.push(stale ? `${err.message} (${stale})` : err.message);
    }
  }
  throw new ConnectionError(
    `${dcs > 0 ? 'the DCS (etcd, Consul) looks down or unreachable from the members; ' : ''}no member's Patroni REST API answered GET /cluster: ${why.join('; ')}`,
  );
}

/**
 * PATCH /config through the first member that takes it, starting with `first` (which answered
 * GET /cluster). A member that cannot reach the DCS is skipped too: another may. The failure
 * names each member's answer, so "etcd is down" reads as that, not as a dead REST API.
 */
export async function patchAnyMember(
  ctx: ApplyContext,
  first: PatroniClient,
  cluster: ClusterStatus,
  body: Record<string, unknown>,
): Promise<PatroniClient> {
  const others = cluster.members
    .filter((m) => m.apiUrl && m.apiUrl !== first.url && m.name !== first.memberName)
    .map((m) => memberClient(ctx, m.name, ctx.peer(m.name)?.patroni?.url ?? m.apiUrl!));
  const why: string[] = [];
  let dcs = 0;
  for (const client of [first, ...others]) {
    try {
      await client.patchConfig(body, ctx.signal);
      return client;
    } catch (err) {
      if (!(err instanceof ConnectionError)) throw err;
      // A PATCH that timed out or conflicted says little; the member's own view says whether it
      // still reaches its DCS.
      const stale = err instanceof DcsError ? undefined : await dcsStaleness(ctx, client);
      if (err instanceof DcsError || stale) dcs++;
      why.push(stale ? `${err.message} (${stale})` : err.message);
    }
  }
  // One member that answers and says it lost its DCS is the best evidence there is: members
  // blocked on the DCS answer nothing at all.
  throw new ConnectionError(
    `${dcs > 0 ? 'no member could change the configuration, and the DCS (etcd, Consul) looks down or unreachable from them: ' : ''}${why.join('; ')}`,
  );
}

/** Seconds without DCS contact beyond which a member is taken as cut off from it. */
const DCS_STALE_S = 5;

/**
 * "it last reached its DCS N s ago" when a member answers GET /patroni but has not reached its
 * DCS for a while (`dcs_last_seen`, the member's clock); undefined otherwise or when it cannot tell.
 */
async function dcsStaleness(ctx: ApplyContext, client: PatroniClient): Promise<string | undefined> {
  try {
    const st = await client.memberStatus(ctx.signal);
    const seen = Number(st.dcs_last_seen);
    if (!Number.isFinite(seen) || seen <= 0) return undefined;
    const age = Date.now() / 1000 - seen;
    return age > DCS_STALE_S
      ? `its Patroni answers, but last reached its DCS ${Math.round(age)} s ago`
      : undefined;
  } catch {
    return undefined;
  }
}

/** The cluster split by whether each member's REST API answers GET /patroni now. */
export async function answeringMembers(
  ctx: ApplyContext,
  cluster: ClusterStatus,
): Promise<{ answering: ClusterStatus; silent: ClusterStatus['members'] }> {
  const up = await Promise.all(
    cluster.members.map(async (m) => {
      if (!m.apiUrl) return false;
      try {
        await memberClient(ctx, m.name, m.apiUrl).memberStatus(ctx.signal);
        return true;
      } catch {
        return false;
      }
    }),
  );
  return {
    answering: { ...cluster, members: cluster.members.filter((_, i) => up[i]) },
    silent: cluster.members.filter((_, i) => !up[i]),
  };
}

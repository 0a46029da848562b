// `patroni.pause`: put the cluster in maintenance mode (no automatic failover), verified on
// every member; undone by a resume only if this run paused it. A pause cannot outlive its run:
// a guard on this host (pause-guard.ts) resumes the cluster if the runner dies or goes silent.
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { Type } from '@sinclair/typebox';
import { StepFailure } from '../../errors.js';
import { done, poll } from '../../util/poll.js';
import { type ApplyContext, defineStep } from '../define.js';
import {
  answeringMembers,
  clientOf,
  memberClient,
  memberUrls,
  patchAnyMember,
  reachCluster,
  waitForPause,
} from './members.js';
import { guardCommandLine, guardSettings, MARKER_KEY, type PauseMarker } from './pause-guard.js';

const Params = Type.Object(
  {
    timeout: Type.Optional(
      Type.Number({ minimum: 1, description: 'seconds for every member to acknowledge (default 30)' }),
    ),
    guard_silence: Type.Optional(
      Type.Integer({
        minimum: 5,
        maximum: 600,
        description:
          'seconds without word from the run (a network cut, a frozen runner) after which the guard resumes the cluster (default 15); a runner that dies is noticed at once',
      }),
    ),
    outlive_run: Type.Optional(
      Type.Boolean({
        description:
          'true: the pause is meant to last after the run (a maintenance window opened by one playbook, closed by another): no guard, and the run does not resume it at its end (default false)',
      }),
    ),
  },
  { additionalProperties: false },
);

const Outputs = Type.Object({
  paused_by_run: Type.Boolean({
    description:
      'true when this run paused the cluster or adopted its pause (run --adopt-pause); a cluster paused by someone else otherwise fails the step',
  }),
  adopted: Type.Boolean({ description: 'the pause was found in place and taken over (run --adopt-pause)' }),
  guarded: Type.Boolean({
    description: 'a guard resumes the cluster if the run dies (false with outlive_run)',
  }),
  scope: Type.String(),
  leader: Type.String(),
  members: Type.Array(Type.String()),
  member_urls: Type.Record(Type.String(), Type.String(), {
    description: "each member's REST API as /cluster advertised it: the undo goes through any that answers",
  }),
});

export default defineStep({
  type: 'patroni.pause',
  summary: 'Pause Patroni (maintenance mode) and verify every member acknowledges it.',
  params: Params,
  outputs: Outputs,
  mutating: true,
  marksChanges: true,
  undoSummary:
    'resume (verified on every member) — only while the pause is still the one this run set (its marker in the DCS config)',
  needs(_ctx, p) {
    // The guard is a Python program (every Patroni host has Python: Patroni is written in it).
    return p.outlive_run ? {} : { binaries: [{ name: 'python3', package: 'python3' }] };
  },
  plan(ctx, p) {
    const url = ctx.host.patroni?.url ?? '(patroni.url missing)';
    const silence = p.guard_silence ?? DEFAULT_SILENCE_S;
    const marker = {
      [MARKER_KEY]: { run: runId(ctx), controller: '(this machine)', pid: '(the runner)', since: '(now)' },
    };
    return {
      action:
        'pause Patroni through the REST API (a cluster paused by someone else fails the step, unless run --adopt-pause)',
      ops: [
        { kind: 'http', method: 'GET', url: `${url}/cluster` },
        ...(p.outlive_run
          ? [
              {
                kind: 'note' as const,
                text: 'outlive_run: no guard — the pause stays in place after the run, until someone resumes it',
              },
            ]
          : [
              {
                kind: 'note' as const,
                text: `start the pause guard on ${ctx.host.name} (python3, over the run's own connection): if the run dies, or is silent for ${silence}s, it resumes the cluster — only while the DCS config still holds this run's marker`,
              },
            ]),
        { kind: 'http', method: 'PATCH', url: `${url}/config`, body: { pause: true, ...marker } },
        {
          kind: 'wait',
          what: 'GET /patroni on every member reports "pause": true',
          timeoutSeconds: p.timeout ?? 30,
        },
      ],
      undo: {
        action: 'resume, only while the pause is still the one this run set',
        ops: [
          { kind: 'http', method: 'GET', url: `${url}/config` },
          { kind: 'http', method: 'PATCH', url: `${url}/config`, body: { pause: null, [MARKER_KEY]: null } },
          { kind: 'wait', what: 'no member reports "pause": true', timeoutSeconds: p.timeout ?? 30 },
        ],
      },
    };
  },
  async preview(ctx) {
    // What the run will find: a cluster paused by someone else is refused (or adopted).
    const client = clientOf(ctx);
    const cluster = await client.cluster(ctx.signal);
    if (!cluster.paused)
      return { summary: `cluster ${cluster.scope} is not paused: the run will pause it`, lines: [] };
    const conf = await client.json('/config', ctx.signal);
    const by = pausedBy(conf[MARKER_KEY] as Partial<PauseMarker> | undefined);
    return {
      summary: `cluster ${cluster.scope} is ALREADY PAUSED by ${by}: the run will refuse it unless run with --adopt-pause`,
      lines: [],
    };
  },
  async apply(ctx, p) {
    const { client, cluster } = await reachCluster(ctx);
    const scope = cluster.scope ?? '';
    const base = {
      scope,
      leader: cluster.leader ?? '',
      members: cluster.members.map((m) => m.name),
      member_urls: memberUrls(cluster),
    };
    const run = String(ctx.evaluate('run.id'));
    const marker: PauseMarker = {
      run,
      attempt: randomBytes(6).toString('hex'),
      controller: hostname(),
      pid: process.pid,
      since: new Date().toISOString(),
    };
    // One member's /cluster can lag a pause made elsewhere by up to loop_wait: ask every member.
    const views = await Promise.all(
      cluster.members.map((m) =>
        m.apiUrl
          ? memberClient(ctx, m.name, m.apiUrl)
              .memberStatus(ctx.signal)
              .catch(() => ({}))
          : Promise.resolve({}),
      ),
    );
    const guarded = !p.outlive_run;
    if (cluster.paused || views.some((v) => (v as { pause?: unknown }).pause === true)) {
      const conf: Record<string, unknown> = await client.json('/config', ctx.signal).catch(() => ({}));
      const found = conf[MARKER_KEY] as Partial<PauseMarker> | undefined;
      // A resumed run re-running its own pause step finds its own marker: that pause is its own.
      const own = found?.run === run;
      if (!own && !adoptPause(ctx))
        throw new StepFailure(
          `cluster ${scope} is already paused by ${pausedBy(found)}: refusing to work under a pause this run does not own (it may end at any moment, or never). If nobody needs it, resume it (patronictl resume ${scope}); to take it over, run again with --adopt-pause: this run then resumes it when it ends`,
        );
      // Someone else's pause still has to hold on every member before anything relies on it.
      try {
        await waitForPause(ctx, cluster, true, p.timeout ?? 30);
      } catch (err) {
        throw new StepFailure(
          `the cluster was already paused by ${own ? 'this run' : pausedBy(found)}, but ${(err as Error).message}; that pause was left as it is`,
        );
      }
      // The marker is rewritten with this attempt's token: a guard left by an earlier attempt of
      // this run (still watching for its own pause to land) leaves this pause to this attempt's.
      if (guarded) await startGuard(ctx, p, scope, client.url, base.member_urls, run, marker.attempt);
      ctx.changing();
      await patchAnyMember(ctx, client, cluster, { [MARKER_KEY]: marker });
      if (guarded) ctx.guards.tell(guardName(scope), 'armed');
      ctx.log(
        own
          ? `cluster ${scope} is still paused by this run`
          : `cluster ${scope} was paused by ${pausedBy(found)}: adopted (--adopt-pause); this run resumes it when it ends`,
      );
      return { paused_by_run: true, adopted: !own, guarded, ...base };
    }
    // The guard first: a runner killed right after the PATCH must already be watched.
    if (guarded) await startGuard(ctx, p, scope, client.url, base.member_urls, run, marker.attempt);
    ctx.changing();
    let via = client;
    try {
      via = await patchAnyMember(ctx, client, cluster, { pause: true, [MARKER_KEY]: marker });
      await waitForPause(ctx, cluster, true, p.timeout ?? 30);
    } catch (err) {
      // Half a pause is worse than none: nothing after this step runs, so take it back — and say
      // plainly if that did not work. The guard stays on then: it tries again when the run ends.
      let withdrawn = 'the pause was withdrawn (PATCH /config {"pause": null})';
      try {
        await patchAnyMember(ctx, via, cluster, { pause: null, [MARKER_KEY]: null });
        // The members that never acknowledged cannot confirm the withdrawal either.
        const answering = {
          ...cluster,
          members: cluster.members.filter((m) => !String(err).includes(m.name)),
        };
        await waitForPause(ctx, answering, false, p.timeout ?? 30);
        if (guarded) await ctx.guards.end(guardName(scope), 'release');
      } catch (again) {
        withdrawn = `THE PAUSE IS STILL IN PLACE: withdrawing it failed (${(again as Error).message}); ${guarded ? 'the guard tries again when the run ends, else r' : 'r'}esume by hand: patronictl resume ${scope}`;
      }
      throw new StepFailure(`${(err as Error).message}; ${withdrawn}`);
    }
    if (guarded) ctx.guards.tell(guardName(scope), 'armed');
    ctx.log(
      `cluster ${scope} paused; acknowledged by ${base.members.join(', ')}${guarded ? `; guarded from ${ctx.host.name}` : '; outlive_run: not guarded, stays paused after the run'}`,
    );
    return { paused_by_run: true, adopted: false, guarded, ...base };
  },
  async undo(ctx, p, out) {
    if (!out.paused_by_run) return;
    const run = String(ctx.evaluate('run.id'));
    // Through any member that answers (this host's Patroni may be the one that is down). An
    // unwinding upgrade has just started Patroni again (systemctl returns before its REST API
    // listens): keep asking, a second apart, until one answers; the last error once the timeout
    // has no second left.
    const found = await poll(
      async () => {
        const { client, cluster } = await reachCluster(ctx, out.member_urls ?? {});
        const conf = await client.json('/config', ctx.signal);
        const marker = conf[MARKER_KEY] as Partial<PauseMarker> | undefined;
        if (conf.pause !== true) return done({ cluster, outcome: 'not paused any more: nothing to resume' });
        if (marker?.run !== run)
          return done({ cluster, outcome: `paused again since, by ${pausedBy(marker)}: left paused` });
        await patchAnyMember(ctx, client, cluster, { pause: null, [MARKER_KEY]: null });
        return done({ cluster: await client.cluster(ctx.signal), outcome: '' });
      },
      {
        timeoutMs: (p.timeout ?? 30) * 1000,
        intervalMs: 1000,
        wholeIntervals: true,
        retryErrors: true,
        signal: ctx.signal,
      },
    );
    if (found.outcome) {
      if (out.guarded) await ctx.guards.end(guardName(out.scope), 'release');
      ctx.log(`cluster ${out.scope}: ${found.outcome}`);
      return;
    }
    // A member whose Patroni is down cannot acknowledge; the pause is gone from the DCS, which it
    // reads when it starts again. Wait for the others, and say which did not answer.
    const { answering, silent } = await answeringMembers(ctx, found.cluster);
    await waitForPause(ctx, answering, false, p.timeout ?? 30);
    if (out.guarded) await ctx.guards.end(guardName(out.scope), 'release');
    for (const m of silent)
      ctx.log(
        `${m.name}: its Patroni did not answer; the pause is cleared in the DCS, which it reads when it starts`,
      );
    ctx.log(`cluster ${out.scope} resumed (this run had paused it)`);
  },
});

/** Seconds without word from the run before a guard acts, by default. */
const DEFAULT_SILENCE_S = 15;
/** How long a guard keeps trying to resume once the run is gone (the DCS may be down a while). */
const GUARD_RETRY_S = 600;

/** The run-wide name of the guard of a cluster's pause (also how the summary names it). */
export function guardName(scope: string): string {
  return `Patroni pause of cluster ${scope}`;
}

/** Who a marker says paused the cluster. */
function pausedBy(m: Partial<PauseMarker> | undefined): string {
  if (!m?.run) return 'someone else (no pgrunbook marker: patronictl pause, or an operator)';
  return `pgrunbook run ${m.run} (from ${m.controller ?? '?'}, pid ${m.pid ?? '?'}, since ${m.since ?? '?'})`;
}

/** The run's id ("(known after apply)" in a plan). */
function runId(ctx: { evaluate(e: string): unknown }): string {
  try {
    return String(ctx.evaluate('run.id'));
  } catch {
    return '(this run)';
  }
}

/** Whether the run was started with --adopt-pause. */
function adoptPause(ctx: ApplyContext): boolean {
  try {
    return ctx.evaluate('run.adopt_pause') === true;
  } catch {
    return false;
  }
}

async function startGuard(
  ctx: ApplyContext,
  p: { guard_silence?: number; timeout?: number },
  scope: string,
  ownUrl: string,
  memberUrls: Record<string, string>,
  run: string,
  attempt: string,
): Promise<void> {
  const others = Object.entries(memberUrls).map(([name, url]) => ctx.peer(name)?.patroni?.url ?? url);
  const urls = [...new Set([ownUrl, ...others])];
  try {
    await ctx.guards.start(
      guardName(scope),
      guardCommandLine(),
      guardSettings({
        run,
        attempt,
        scope,
        urls,
        patroni: ctx.host.patroni!,
        silenceS: p.guard_silence ?? DEFAULT_SILENCE_S,
        retryS: GUARD_RETRY_S,
        // Before every member acknowledged, a member's cached /config may not show the pause.
        settleS: (p.timeout ?? 30) + 5,
      }),
      `the guard of the pause of cluster ${scope} ended while the run relied on the pause`,
    );
  } catch (err) {
    throw new StepFailure(
      `nothing was paused: the guard that resumes the cluster if this run dies could not start on ${ctx.host.name} (${(err as Error).message}). A pause must not outlive its run: make python3 available there, or set outlive_run: true to pause without a guard`,
    );
  }
}

// `patroni.pause`: put the cluster in maintenance mode (no automatic failover), verified on
// every member; undone by a resume only if this run paused it.
import { Type } from '@sinclair/typebox';
import { StepFailure } from '../../errors.js';
import { done, poll } from '../../util/poll.js';
import { defineStep } from '../define.js';
import {
  answeringMembers,
  memberClient,
  memberUrls,
  patchAnyMember,
  reachCluster,
  waitForPause,
} from './members.js';

const Params = Type.Object(
  {
    timeout: Type.Optional(
      Type.Number({ minimum: 1, description: 'seconds for every member to acknowledge (default 30)' }),
    ),
  },
  { additionalProperties: false },
);

const Outputs = Type.Object({
  paused_by_run: Type.Boolean({
    description: 'false when the cluster was already paused (then it is left paused)',
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
    'resume (verified on every member) — only if this run paused it; a cluster found paused stays paused',
  plan(ctx, p) {
    const url = ctx.host.patroni?.url ?? '(patroni.url missing)';
    return {
      action: 'pause Patroni through the REST API (a cluster already paused is left as it is)',
      ops: [
        { kind: 'http', method: 'GET', url: `${url}/cluster` },
        { kind: 'http', method: 'PATCH', url: `${url}/config`, body: { pause: true } },
        {
          kind: 'wait',
          what: 'GET /patroni on every member reports "pause": true',
          timeoutSeconds: p.timeout ?? 30,
        },
      ],
      undo: {
        action: 'resume, only if this run paused it',
        ops: [
          { kind: 'http', method: 'PATCH', url: `${url}/config`, body: { pause: null } },
          { kind: 'wait', what: 'no member reports "pause": true', timeoutSeconds: p.timeout ?? 30 },
        ],
      },
    };
  },
  async apply(ctx, p) {
    const { client, cluster } = await reachCluster(ctx);
    const base = {
      scope: cluster.scope ?? '',
      leader: cluster.leader ?? '',
      members: cluster.members.map((m) => m.name),
      member_urls: memberUrls(cluster),
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
    if (cluster.paused || views.some((v) => (v as { pause?: unknown }).pause === true)) {
      // Someone else's pause still has to hold on every member before anything relies on it.
      try {
        await waitForPause(ctx, cluster, true, p.timeout ?? 30);
      } catch (err) {
        throw new StepFailure(
          `the cluster was already paused by someone else, but ${(err as Error).message}; that pause was left as it is`,
        );
      }
      ctx.log(`cluster ${cluster.scope} was already paused: left paused, and this run will not resume it`);
      return { paused_by_run: false, ...base };
    }
    ctx.changing();
    const via = await patchAnyMember(ctx, client, cluster, { pause: true });
    try {
      await waitForPause(ctx, cluster, true, p.timeout ?? 30);
    } catch (err) {
      // Half a pause is worse than none: nothing after this step runs, so take it back — and say
      // plainly if that did not work, since no undo will be registered for a failed step.
      let withdrawn = 'the pause was withdrawn (PATCH /config {"pause": null})';
      try {
        await patchAnyMember(ctx, via, cluster, { pause: null });
        // The members that never acknowledged cannot confirm the withdrawal either.
        const answering = {
          ...cluster,
          members: cluster.members.filter((m) => !String(err).includes(m.name)),
        };
        await waitForPause(ctx, answering, false, p.timeout ?? 30);
      } catch (again) {
        withdrawn = `THE PAUSE IS STILL IN PLACE: withdrawing it failed (${(again as Error).message}); resume by hand: patronictl resume`;
      }
      throw new StepFailure(`${(err as Error).message}; ${withdrawn}`);
    }
    ctx.log(`cluster ${cluster.scope} paused; acknowledged by ${base.members.join(', ')}`);
    return { paused_by_run: true, ...base };
  },
  async undo(ctx, p, out) {
    if (!out.paused_by_run) return;
    // Through any member that answers (this host's Patroni may be the one that is down). An
    // unwinding upgrade has just started Patroni again (systemctl returns before its REST API
    // listens): keep asking, a second apart, until one answers; the last error once the timeout
    // has no second left.
    const cluster = await poll(
      async () => {
        const { client, cluster } = await reachCluster(ctx, out.member_urls ?? {});
        await patchAnyMember(ctx, client, cluster, { pause: null });
        return done(await client.cluster(ctx.signal));
      },
      {
        timeoutMs: (p.timeout ?? 30) * 1000,
        intervalMs: 1000,
        wholeIntervals: true,
        retryErrors: true,
        signal: ctx.signal,
      },
    );
    // A member whose Patroni is down cannot acknowledge; the pause is gone from the DCS, which it
    // reads when it starts again. Wait for the others, and say which did not answer.
    const { answering, silent } = await answeringMembers(ctx, cluster);
    await waitForPause(ctx, answering, false, p.timeout ?? 30);
    for (const m of silent)
      ctx.log(
        `${m.name}: its Patroni did not answer; the pause is cleared in the DCS, which it reads when it starts`,
      );
    ctx.log(`cluster ${out.scope} resumed (this run had paused it)`);
  },
});

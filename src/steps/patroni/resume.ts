// `patroni.resume`: leave maintenance mode, verified on every member. With `paused_by` (the
// pause step's outputs) only a pause made by this run is resumed, so a clean-up in `always` never
// unpauses someone else's; without it, any pause is ended (the operator ending maintenance).
import { Type } from '@sinclair/typebox';
import { defineStep } from '../define.js';
import { answeringMembers, patchAnyMember, reachCluster, waitForPause } from './members.js';
import { guardName } from './pause.js';
import { MARKER_KEY } from './pause-guard.js';

const Params = Type.Object(
  {
    paused_by: Type.Optional(
      Type.Record(Type.String(), Type.Unknown(), {
        description:
          'the outputs of the patroni.pause step, e.g. "{{ pause }}": resume only if it paused the cluster',
      }),
    ),
    timeout: Type.Optional(
      Type.Number({ minimum: 1, description: 'seconds for every member to acknowledge (default 30)' }),
    ),
  },
  { additionalProperties: false },
);

const Outputs = Type.Object({ resumed: Type.Boolean(), reason: Type.String() });

export default defineStep({
  type: 'patroni.resume',
  summary: 'Resume Patroni (leave maintenance mode) and verify no member reports a pause any more.',
  params: Params,
  outputs: Outputs,
  mutating: true,
  marksChanges: true,
  undoSummary: 'none (resuming is itself the clean-up)',
  plan(ctx, p) {
    const url = ctx.host.patroni?.url ?? '(patroni.url missing)';
    return {
      action: p.paused_by ? 'resume Patroni if the given pause step paused it' : 'resume Patroni',
      ops: [
        { kind: 'http', method: 'PATCH', url: `${url}/config`, body: { pause: null, [MARKER_KEY]: null } },
        { kind: 'wait', what: 'no member reports "pause": true', timeoutSeconds: p.timeout ?? 30 },
      ],
    };
  },
  async apply(ctx, p) {
    if (p.paused_by && p.paused_by.paused_by_run !== true) {
      const why = p.paused_by.skipped
        ? 'the pause step did not run'
        : 'the cluster was already paused before this run';
      ctx.log(`not resuming: ${why}`);
      return { resumed: false, reason: why };
    }
    // Through any member that answers: the pause step kept every member's URL.
    const urls = (p.paused_by?.member_urls ?? {}) as Record<string, string>;
    const { client, cluster } = await reachCluster(ctx, urls);
    // Resumed, by whoever: this run's guard of that pause has nothing left to watch.
    const release = () => ctx.guards.end(guardName(cluster.scope ?? ''), 'release');
    if (!cluster.paused) {
      await release();
      return { resumed: false, reason: 'the cluster is not paused' };
    }
    ctx.changing();
    await patchAnyMember(ctx, client, cluster, { pause: null, [MARKER_KEY]: null });
    const { answering, silent } = await answeringMembers(ctx, cluster);
    await waitForPause(ctx, answering, false, p.timeout ?? 30);
    await release();
    for (const m of silent)
      ctx.log(
        `${m.name}: its Patroni did not answer; the pause is cleared in the DCS, which it reads when it starts`,
      );
    return { resumed: true, reason: 'resumed' };
  },
});

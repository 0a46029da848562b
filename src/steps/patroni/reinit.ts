// `patroni.reinit`: rebuild a replica from the leader (POST /reinitialize): Patroni wipes the
// member's data directory and clones it again. The fallback when a replica cannot be synced.
import { Type } from '@sinclair/typebox';
import { StepFailure } from '../../errors.js';
import { defineStep } from '../define.js';
import { clientOf, post, waitForMember } from './members.js';

const Params = Type.Object(
  {
    force: Type.Optional(
      Type.Boolean({ description: 'cancel a running bootstrap or restart first (Patroni `force`)' }),
    ),
    timeout: Type.Optional(
      Type.Number({
        minimum: 1,
        description: 'seconds for the clone to finish and the replica to run (default 3600)',
      }),
    ),
  },
  { additionalProperties: false },
);

const Outputs = Type.Object({
  message: Type.String({ description: "Patroni's answer" }),
  state: Type.String(),
  timeline: Type.Union([Type.Integer(), Type.Null()]),
});

const LEADS = ['master', 'primary', 'standby_leader'];

export default defineStep({
  type: 'patroni.reinit',
  summary: "Rebuild this host's replica from the leader through Patroni (REST API) and wait until it runs.",
  params: Params,
  outputs: Outputs,
  mutating: true,
  marksChanges: true,
  undoSummary: "none: the replica's old data directory is gone once Patroni starts the clone",
  confirm: () => 'Wipe this replica’s data directory and clone it again from the leader?',
  plan(ctx, p) {
    const url = ctx.host.patroni?.url ?? '(patroni.url missing)';
    return {
      action: `wipe and re-clone the replica ${ctx.host.patroni?.member ?? ctx.host.name} from the leader (Patroni REST API)`,
      ops: [
        { kind: 'http', method: 'GET', url: `${url}/patroni` },
        { kind: 'http', method: 'POST', url: `${url}/reinitialize`, body: { force: p.force === true } },
        {
          kind: 'wait',
          what: 'GET /patroni reports role replica and state running',
          timeoutSeconds: p.timeout ?? 3600,
        },
      ],
      undo: { action: 'none: the old data directory is gone', ops: [] },
    };
  },
  async apply(ctx, p) {
    const client = clientOf(ctx);
    const me = await client.memberStatus(ctx.signal);
    if (LEADS.includes(String(me.role)))
      throw new StepFailure(`${client.memberName} is the leader: only a replica can be reinitialised`);
    const cluster = await client.cluster(ctx.signal);
    const leader = cluster.members.find((m) => m.name === cluster.leader);
    if (!leader || leader.state !== 'running')
      throw new StepFailure(
        `no running leader to clone from (${cluster.leader ?? 'no leader'}${leader ? `, ${leader.state}` : ''}): not wiping ${client.memberName}`,
      );
    ctx.changing();
    const message = await post(ctx, client, '/reinitialize', { force: p.force === true });
    ctx.log(`Patroni: ${message}`);
    // A clone ends with a new postmaster: an old "running" is not taken for the end of it.
    const st = await waitForMember(
      ctx,
      client.memberName,
      client.url,
      'role replica, state running, PostgreSQL started anew',
      (s) =>
        s.role === 'replica' && s.state === 'running' && s.postmaster_start_time !== me.postmaster_start_time,
      p.timeout ?? 3600,
    );
    return {
      message,
      state: String(st.state),
      timeline: typeof st.timeline === 'number' ? st.timeline : null,
    };
  },
});

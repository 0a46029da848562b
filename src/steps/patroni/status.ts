// `patroni.status`: the cluster as Patroni describes it, as facts for later steps and `when`.
import { Type } from '@sinclair/typebox';
import { StepFailure } from '../../errors.js';
import { done, notYet, poll } from '../../util/poll.js';
import { defineStep } from '../define.js';
import { clientOf } from './members.js';

const Params = Type.Object(
  {
    wait_running: Type.Optional(
      Type.Object(
        {
          members: Type.Integer({ minimum: 1, description: 'how many members must be there' }),
          timeout: Type.Optional(Type.Number({ minimum: 1, description: 'seconds (default 60)' })),
        },
        {
          additionalProperties: false,
          description:
            'wait until that many members are listed, each running (a replica: running or streaming), with a leader',
        },
      ),
    ),
  },
  { additionalProperties: false },
);

/** Patroni 3 says `running` for every member, 4 says `streaming` for a replica. */
const RUNNING = new Set(['running', 'streaming']);

const Member = Type.Object({
  name: Type.String(),
  role: Type.String({ description: 'leader, replica, sync_standby, standby_leader' }),
  state: Type.String({ description: 'running, streaming, stopped, starting, creating replica, …' }),
  timeline: Type.Union([Type.Integer(), Type.Null()]),
  lag: Type.Union([Type.Number(), Type.String(), Type.Null()], {
    description: 'replication lag in bytes as Patroni reports it (null on the leader)',
  }),
});

const Outputs = Type.Object({
  scope: Type.String(),
  paused: Type.Boolean(),
  leader: Type.Union([Type.String(), Type.Null()], { description: 'member name of the leader' }),
  members: Type.Array(Member),
  replicas: Type.Array(Type.String(), { description: 'member names of the replicas' }),
});

export default defineStep({
  type: 'patroni.status',
  summary: "Read the Patroni cluster's state: leader, members with role, state, timeline and lag.",
  params: Params,
  outputs: Outputs,
  mutating: false,
  undoSummary: 'none (reads only)',
  plan(ctx, p) {
    const url = ctx.host.patroni?.url ?? '(patroni.url missing)';
    const w = p.wait_running;
    return {
      action: 'read the cluster state from the Patroni REST API',
      ops: [
        { kind: 'http', method: 'GET', url: `${url}/cluster` },
        ...(w
          ? [
              {
                kind: 'wait' as const,
                what: `${w.members} member(s) running with a leader (GET /cluster again)`,
                timeoutSeconds: w.timeout ?? 60,
              },
            ]
          : []),
      ],
    };
  },
  async apply(ctx, p) {
    const client = clientOf(ctx);
    const w = p.wait_running;
    // A replica streams before its Patroni notices (up to loop_wait): what operators and load
    // balancers read is Patroni's word, so that is what is waited for.
    const c = !w
      ? await client.cluster(ctx.signal)
      : await poll(
          async () => {
            const seen = await client.cluster(ctx.signal);
            const ok =
              seen.leader &&
              seen.members.length >= w.members &&
              seen.members.every((m) => RUNNING.has(m.state));
            return ok ? done(seen) : notYet(seen);
          },
          {
            timeoutMs: (w.timeout ?? 60) * 1000,
            intervalMs: 500,
            signal: ctx.signal,
            onTimeout: (last) =>
              new StepFailure(
                `Patroni does not report ${w.members} running member(s) with a leader within ${w.timeout ?? 60} s: ${last?.members.map((m) => `${m.name} ${m.role} ${m.state}`).join('; ') || 'no member'}`,
              ),
          },
        );
    const members = c.members.map((m) => ({
      name: m.name,
      role: m.role,
      state: m.state,
      timeline: m.timeline ?? null,
      lag: m.lag ?? null,
    }));
    ctx.log(
      `${c.scope ?? 'cluster'}${c.paused ? ' (paused)' : ''}: ${members.map((m) => `${m.name} ${m.role} ${m.state}${m.lag !== null ? ` lag ${m.lag}` : ''}`).join('; ')}`,
    );
    return {
      scope: c.scope ?? '',
      paused: c.paused,
      leader: c.leader ?? null,
      members,
      replicas: c.members.filter((m) => m.name !== c.leader).map((m) => m.name),
    };
  },
});

// `patroni.status`: the cluster as Patroni describes it, as facts for later steps and `when`.
import { Type } from '@sinclair/typebox';
import { defineStep } from '../define.js';
import { clientOf } from './members.js';

const Params = Type.Object({}, { additionalProperties: false });

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
  plan(ctx) {
    const url = ctx.host.patroni?.url ?? '(patroni.url missing)';
    return {
      action: 'read the cluster state from the Patroni REST API',
      ops: [{ kind: 'http', method: 'GET', url: `${url}/cluster` }],
    };
  },
  async apply(ctx) {
    const c = await clientOf(ctx).cluster(ctx.signal);
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

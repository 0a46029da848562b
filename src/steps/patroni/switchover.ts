// `patroni.switchover`: hand the leader role to a named replica through the REST API, always
// behind an approval gate, then wait until the candidate leads and runs.
import { Type } from '@sinclair/typebox';
import { StepFailure } from '../../errors.js';
import { defineStep } from '../define.js';
import { clientOf, memberClient, waitForMember } from './members.js';

const Params = Type.Object(
  {
    candidate: Type.String({ minLength: 1, description: 'member name of the replica that is to lead' }),
    leader: Type.Optional(
      Type.String({
        minLength: 1,
        description: 'member expected to lead now (default: whoever leads); Patroni refuses if it does not',
      }),
    ),
    timeout: Type.Optional(
      Type.Number({ minimum: 1, description: 'seconds for the candidate to lead and run (default 120)' }),
    ),
  },
  { additionalProperties: false },
);

const Outputs = Type.Object({
  switched: Type.Boolean({ description: 'false when the candidate already led' }),
  from: Type.String(),
  to: Type.String(),
  timeline: Type.Union([Type.Integer(), Type.Null()]),
  message: Type.String({ description: "Patroni's answer" }),
});

const LEADS = ['master', 'primary'];

export default defineStep({
  type: 'patroni.switchover',
  summary: 'Switch the Patroni leader over to a named replica (REST API), behind an approval gate.',
  params: Params,
  outputs: Outputs,
  mutating: true,
  marksChanges: true,
  undoSummary:
    'none: a switchover is not reversed automatically (a second one is a decision of its own); the run summary names the leader',
  confirm: (p) => `Switch the Patroni leader over to ${String(p.candidate)}?`,
  plan(ctx, p) {
    const url = ctx.host.patroni?.url ?? '(patroni.url missing)';
    return {
      action: `switch the leader over to ${p.candidate} (Patroni REST API)`,
      ops: [
        { kind: 'http', method: 'GET', url: `${url}/cluster` },
        {
          kind: 'http',
          method: 'POST',
          url: `${url}/switchover`,
          body: { leader: p.leader ?? '(the current leader)', candidate: p.candidate },
        },
        {
          kind: 'wait',
          what: `GET /patroni on ${p.candidate} reports role primary and state running`,
          timeoutSeconds: p.timeout ?? 120,
        },
        {
          kind: 'wait',
          what: 'GET /patroni on the former leader reports role replica and state running',
          timeoutSeconds: p.timeout ?? 120,
        },
      ],
      undo: { action: 'none: not switched back automatically', ops: [] },
    };
  },
  async apply(ctx, p) {
    const client = clientOf(ctx);
    const before = await client.cluster(ctx.signal);
    const target = before.members.find((m) => m.name === p.candidate);
    if (!target)
      throw new StepFailure(
        `no member ${p.candidate} in ${before.scope ?? 'the cluster'} (members: ${before.members.map((m) => m.name).join(', ')})`,
      );
    const from = p.leader ?? before.leader;
    if (!from) throw new StepFailure(`${before.scope ?? 'the cluster'} has no leader to switch over from`);
    if (before.leader === p.candidate) {
      ctx.log(`${p.candidate} already leads ${before.scope}: nothing to do`);
      return {
        switched: false,
        from,
        to: p.candidate,
        timeline: target.timeline ?? null,
        message: 'already leader',
      };
    }
    // Patroni answers once the DCS shows the new leader (it polls for up to ~10 s itself).
    // Patroni answers after polling ~20 s itself; "status unknown" (503) means still in progress.
    ctx.changing();
    const r = await client.send(
      'POST',
      '/switchover',
      { leader: from, candidate: p.candidate },
      ctx.signal,
      Math.max(60, p.timeout ?? 120) * 1000,
    );
    const message = r.body.trim().slice(0, 500);
    if (!(r.status >= 200 && r.status < 300) && !(r.status === 503 && /status unknown/i.test(message)))
      throw new StepFailure(
        `Patroni ${client.memberName}: POST /switchover answered ${r.status}: ${message || '(no text)'}`,
      );
    ctx.log(
      `Patroni: ${message}${r.status === 503 ? ' — still in progress: waiting for the candidate to lead' : ''}`,
    );
    if (!target.apiUrl)
      throw new StepFailure(`${p.candidate} has no api_url in /cluster: cannot confirm it leads`);
    const st = await waitForMember(
      ctx,
      p.candidate,
      target.apiUrl,
      'role primary, state running',
      (s) => LEADS.includes(String(s.role)) && s.state === 'running',
      p.timeout ?? 120,
    );
    const after = await memberClient(ctx, p.candidate, target.apiUrl).cluster(ctx.signal);
    if (after.leader !== p.candidate)
      throw new StepFailure(
        `after the switchover the DCS names ${after.leader ?? 'no leader'}, not ${p.candidate}`,
      );
    // Settled means the former leader runs again as a replica: until then Patroni refuses
    // restarts and the next switchover ("demote already in progress").
    const former = before.members.find((m) => m.name === from);
    if (former?.apiUrl) {
      await waitForMember(
        ctx,
        from,
        former.apiUrl,
        `${p.candidate} leads, but the former leader rejoining as a running replica`,
        (s) => s.role === 'replica' && s.state === 'running',
        p.timeout ?? 120,
      );
    }
    const timeline = typeof st.timeline === 'number' ? st.timeline : null;
    ctx.log(
      `${p.candidate} leads ${after.scope ?? 'the cluster'} on timeline ${timeline ?? '?'} (was ${from})`,
    );
    return { switched: true, from, to: p.candidate, timeline, message };
  },
});

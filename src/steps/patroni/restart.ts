// `patroni.restart`: restart PostgreSQL on this host's member through Patroni (POST /restart), so
// Patroni knows it is intended; then wait until the member runs again.
import { Type } from '@sinclair/typebox';
import { defineStep } from '../define.js';
import { clientOf, post, waitForMember } from './members.js';

const Params = Type.Object(
  {
    pending_only: Type.Optional(
      Type.Boolean({ description: 'restart only if Patroni reports a pending restart (restart_pending)' }),
    ),
    timeout: Type.Optional(
      Type.Number({ minimum: 1, description: 'seconds for PostgreSQL to run again (default 120)' }),
    ),
  },
  { additionalProperties: false },
);

const Outputs = Type.Object({
  restarted: Type.Boolean(),
  message: Type.String({ description: "Patroni's answer" }),
  postmaster_start_time: Type.Union([Type.String(), Type.Null()]),
});

export default defineStep({
  type: 'patroni.restart',
  summary: "Restart one member's PostgreSQL through Patroni (REST API) and wait until it runs.",
  params: Params,
  outputs: Outputs,
  mutating: true,
  marksChanges: true,
  undoSummary: 'none: a restart changes no setting (it only applies pending ones)',
  plan(ctx, p) {
    const url = ctx.host.patroni?.url ?? '(patroni.url missing)';
    return {
      action: `restart PostgreSQL of member ${ctx.host.patroni?.member ?? ctx.host.name} (Patroni REST API)`,
      ops: [
        {
          kind: 'http',
          method: 'POST',
          url: `${url}/restart`,
          body: p.pending_only ? { restart_pending: true } : {},
        },
        { kind: 'wait', what: 'GET /patroni reports state running', timeoutSeconds: p.timeout ?? 120 },
      ],
    };
  },
  async apply(ctx, p) {
    const client = clientOf(ctx);
    const before = await client.memberStatus(ctx.signal);
    if (p.pending_only && before.pending_restart !== true) {
      ctx.log('no restart pending: not restarted');
      return {
        restarted: false,
        message: 'no restart pending',
        postmaster_start_time: (before.postmaster_start_time as string | undefined) ?? null,
      };
    }
    // Patroni answers once PostgreSQL is back (or its own restart timeout passed).
    ctx.changing();
    const message = await post(
      ctx,
      client,
      '/restart',
      p.pending_only ? { restart_pending: true } : {},
      (p.timeout ?? 120) + 10,
    );
    ctx.log(`Patroni: ${message}`);
    const st = await waitForMember(
      ctx,
      client.memberName,
      client.url,
      'state running',
      (s) => s.state === 'running',
      p.timeout ?? 120,
    );
    const started = (st.postmaster_start_time as string | undefined) ?? null;
    return { restarted: started !== before.postmaster_start_time, message, postmaster_start_time: started };
  },
});

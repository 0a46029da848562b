// `pgbouncer.resume`: RESUME on PgBouncer's admin console (clients held by a pause go on) and the
// pause's guard stands down. Resuming a PgBouncer that is not paused is not an error: the step
// says so.
import { Type } from '@sinclair/typebox';
import { defineStep } from '../define.js';
import { consoleAddress, resumeConsole } from './admin.js';
import { bouncerGuardName } from './pause.js';

const Params = Type.Object(
  {
    paused_by: Type.Optional(
      Type.Record(Type.String(), Type.Unknown(), {
        description:
          'the outputs of the pgbouncer.pause step, e.g. "{{ bouncer_pause }}": reports how long clients waited',
      }),
    ),
  },
  { additionalProperties: false },
);

const Outputs = Type.Object({
  resumed: Type.Boolean({ description: 'false when PgBouncer was not paused' }),
  paused_ms: Type.Optional(Type.Integer({ description: 'from PAUSE returning to RESUME (with paused_by)' })),
});

export default defineStep({
  type: 'pgbouncer.resume',
  summary: 'RESUME PgBouncer (clients held by a pause go on) and stand its pause guard down.',
  params: Params,
  outputs: Outputs,
  mutating: true,
  marksChanges: true,
  undoSummary: 'none (resuming is itself the clean-up)',
  plan(ctx) {
    return { action: `resume PgBouncer ${consoleAddress(ctx.host)}`, ops: [{ kind: 'sql', sql: 'RESUME' }] };
  },
  async apply(ctx, p) {
    ctx.changing();
    const resumed = await resumeConsole(ctx.host, ctx.signal);
    await ctx.guards.end(bouncerGuardName(ctx.host.name), 'release');
    const since = typeof p.paused_by?.paused_at === 'string' ? Date.parse(p.paused_by.paused_at) : Number.NaN;
    const paused_ms = Number.isFinite(since) ? Date.now() - since : undefined;
    ctx.log(
      resumed
        ? `PgBouncer ${consoleAddress(ctx.host)} resumed${paused_ms !== undefined ? ` after ${paused_ms} ms paused` : ''}`
        : `PgBouncer ${consoleAddress(ctx.host)} was not paused`,
    );
    return { resumed, ...(paused_ms !== undefined ? { paused_ms } : {}) };
  },
});

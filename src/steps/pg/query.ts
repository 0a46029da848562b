// `pg.query`: one parameterised SQL statement on the host's PostgreSQL, rows registered.
import { Type } from '@sinclair/typebox';
import { defineStep, type Operation } from '../define.js';

const Params = Type.Object(
  {
    sql: Type.String({ minLength: 1, description: 'one SQL statement; use $1, $2 … for values' }),
    params: Type.Optional(Type.Array(Type.Unknown(), { description: 'values bound to $1, $2 …' })),
    revert_sql: Type.Optional(Type.String({ minLength: 1, description: 'statement that undoes this one' })),
    revert_params: Type.Optional(Type.Array(Type.Unknown())),
  },
  { additionalProperties: false },
);

const Outputs = Type.Object({
  rows: Type.Array(Type.Record(Type.String(), Type.Unknown())),
  rowcount: Type.Integer(),
  command: Type.String({ description: 'SELECT, INSERT, …' }),
});

const READ_ONLY = /^\s*(select|show|explain|values|table)\b/i;

export default defineStep({
  type: 'pg.query',
  summary: 'Run one parameterised SQL statement and register the rows it returns.',
  params: Params,
  outputs: Outputs,
  // Plain reads change nothing; anything else (including WITH, which may hold DML) might.
  mutating: (p) => p.revert_sql !== undefined || !READ_ONLY.test(p.sql),
  marksChanges: true,
  shorthand: 'sql',
  undoSummary: 'runs `revert_sql` when given; otherwise none',
  plan(_ctx, p) {
    const ops: Operation[] = [{ kind: 'sql', sql: p.sql, params: p.params }];
    const undo = p.revert_sql
      ? {
          action: 'run the revert statement',
          ops: [{ kind: 'sql', sql: p.revert_sql, params: p.revert_params } as Operation],
        }
      : undefined;
    return { action: 'run SQL', ops, undo };
  },
  async apply(ctx, p) {
    const s = await ctx.pg();
    // Connected: from here the statement may run (a failed connection changed nothing).
    ctx.changing();
    // Ctrl-C or a timeout must stop the statement on the server, not just stop waiting for it.
    const cancel = () => void s.cancel().catch(() => {});
    ctx.signal.addEventListener('abort', cancel, { once: true });
    const r = await s
      .query(p.sql, p.params ?? [])
      .finally(() => ctx.signal.removeEventListener('abort', cancel));
    return { rows: r.rows, rowcount: r.rowCount, command: r.command };
  },
  async undo(ctx, p) {
    if (!p.revert_sql) return;
    const s = await ctx.pg();
    await s.query(p.revert_sql, p.revert_params ?? []);
  },
});

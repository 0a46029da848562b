// `pg.logical_slot`: a logical replication slot (pgoutput) on the publisher. The LSN at which it
// became consistent is the blue-green upgrade's switch point: a physical copy recovered exactly to
// it holds every change before it, and the slot streams every change after it. An existing slot
// of that name is refused (its consistent point is long past); `state: absent` drops one (the
// clean-up). The undo drops only a slot this step created.
import { Type } from '@sinclair/typebox';
import type { PgSession } from '../../connections/pg.js';
import { StepFailure } from '../../errors.js';
import { defineStep } from '../define.js';
import { DatabaseParam, Name, openOn, StateParam } from './logical.js';

const Params = Type.Object(
  {
    name: Name('the slot'),
    database: DatabaseParam,
    state: StateParam(
      'present (default): created, refused if it exists; absent: dropped if it exists (refused while in use)',
    ),
  },
  { additionalProperties: false },
);

const Outputs = Type.Object({
  name: Type.String(),
  database: Type.String(),
  consistent_lsn: Type.String({
    description: 'where the slot became consistent: its changes start after it',
  }),
  changed: Type.Boolean(),
});

const FIND_SQL =
  'select slot_type, database, active, active_pid, confirmed_flush_lsn::text as lsn from pg_replication_slots where slot_name = $1';
const CREATE_SQL = "select lsn::text as lsn from pg_create_logical_replication_slot($1, 'pgoutput')";
const DROP_SQL = 'select pg_drop_replication_slot($1)';

/**
 * The slot as it is once its reader let go: a subscription just disabled or dropped ends its
 * walsender a moment later, so an active slot is looked at again for up to `waitMs`.
 */
async function settled(
  s: PgSession,
  name: string,
  waitMs = 10_000,
): Promise<Record<string, unknown> | undefined> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const found = (await s.query(FIND_SQL, [name])).rows[0];
    if (!found || found.active !== true || Date.now() >= deadline) return found;
    await new Promise((r) => setTimeout(r, 200));
  }
}

export default defineStep({
  type: 'pg.logical_slot',
  summary:
    'Create a logical replication slot (pgoutput) and return the LSN where it became consistent, or drop one.',
  params: Params,
  outputs: Outputs,
  mutating: true,
  marksChanges: true,
  undoSummary: 'drops the slot if this step created it (state: absent has no undo)',
  plan(ctx, p) {
    const db = p.database ?? ctx.host.pg?.database ?? '(the host database)';
    const find = { kind: 'sql' as const, sql: FIND_SQL.replace('$1', `'${p.name}'`) };
    const drop = { kind: 'sql' as const, sql: DROP_SQL.replace('$1', `'${p.name}'`) };
    if (p.state === 'absent')
      return {
        action: `drop replication slot ${p.name} if it exists (refused while in use)`,
        ops: [find, drop],
      };
    return {
      action: `create logical replication slot ${p.name} (pgoutput) in ${db}`,
      ops: [
        find,
        { kind: 'note', text: 'refused if it exists' },
        { kind: 'sql', sql: CREATE_SQL.replace('$1', `'${p.name}'`) },
      ],
      undo: { action: `drop replication slot ${p.name}`, ops: [drop] },
    };
  },
  async apply(ctx, p) {
    const s = await openOn(ctx.host, p.database);
    try {
      const database = s.settings.database;
      const found =
        p.state === 'absent' ? await settled(s, p.name) : (await s.query(FIND_SQL, [p.name])).rows[0];
      if (p.state === 'absent') {
        if (!found) {
          ctx.log(`replication slot ${p.name} does not exist`);
          return { name: p.name, database, consistent_lsn: '', changed: false };
        }
        if (found.active === true)
          throw new StepFailure(
            `replication slot ${p.name} is in use (pid ${found.active_pid}): disable or drop its subscription first`,
          );
        ctx.changing();
        await s.query(DROP_SQL, [p.name]);
        ctx.log(`replication slot ${p.name} dropped (it had confirmed ${found.lsn ?? 'nothing'})`);
        return { name: p.name, database, consistent_lsn: '', changed: true };
      }
      if (found)
        throw new StepFailure(
          `replication slot ${p.name} already exists (${found.slot_type}, database ${found.database ?? '-'}, confirmed ${found.lsn ?? '-'}): its consistent point is not now. Drop it (state: absent) or choose another name`,
        );
      ctx.changing();
      // Waits for the transactions running now to end: the slot's snapshot is consistent after them.
      const lsn = String((await s.query(CREATE_SQL, [p.name])).rows[0]?.lsn);
      ctx.log(`logical replication slot ${p.name} created in ${database}: consistent at ${lsn}`);
      return { name: p.name, database, consistent_lsn: lsn, changed: true };
    } finally {
      await s.close();
    }
  },
  async undo(ctx, p, out) {
    if (p.state === 'absent' || !out.changed) return;
    const s = await openOn(ctx.host, p.database);
    try {
      const found = await settled(s, p.name);
      if (!found) return;
      if (found.active === true)
        throw new StepFailure(
          `replication slot ${p.name} is still in use (pid ${found.active_pid}): not dropped`,
        );
      await s.query(DROP_SQL, [p.name]);
    } finally {
      await s.close();
    }
  },
});

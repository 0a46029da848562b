// `pg.publication`: a publication FOR ALL TABLES on the publisher (a blue-green upgrade's source,
// or its target for the way back), or its removal (`state: absent`, the clean-up). Its undo drops
// only a publication this step created.
import { Type } from '@sinclair/typebox';
import { StepFailure } from '../../errors.js';
import { defineStep } from '../define.js';
import { DatabaseParam, Name, openOn, StateParam } from './logical.js';

const Params = Type.Object(
  {
    name: Name('the publication'),
    database: DatabaseParam,
    state: StateParam(
      'present (default): created FOR ALL TABLES unless it exists; absent: dropped if it exists',
    ),
  },
  { additionalProperties: false },
);

const Outputs = Type.Object({
  name: Type.String(),
  database: Type.String(),
  changed: Type.Boolean({ description: 'whether this step created (or dropped) it' }),
});

const EXISTS_SQL = 'select puballtables from pg_publication where pubname = $1';

export default defineStep({
  type: 'pg.publication',
  summary: 'Create a publication FOR ALL TABLES (logical replication), or drop one.',
  params: Params,
  outputs: Outputs,
  mutating: true,
  marksChanges: true,
  undoSummary: 'drops the publication if this step created it (state: absent has no undo)',
  plan(ctx, p) {
    const db = p.database ?? ctx.host.pg?.database ?? '(the host database)';
    if (p.state === 'absent')
      return {
        action: `drop publication ${p.name} in ${db} if it exists`,
        ops: [{ kind: 'sql', sql: `DROP PUBLICATION IF EXISTS ${p.name}` }],
      };
    return {
      action: `create publication ${p.name} for all tables in ${db}`,
      ops: [
        { kind: 'sql', sql: EXISTS_SQL.replace('$1', `'${p.name}'`) },
        { kind: 'sql', sql: `CREATE PUBLICATION ${p.name} FOR ALL TABLES` },
      ],
      undo: {
        action: `drop publication ${p.name} (if this step created it)`,
        ops: [{ kind: 'sql', sql: `DROP PUBLICATION IF EXISTS ${p.name}` }],
      },
    };
  },
  async apply(ctx, p) {
    const s = await openOn(ctx.host, p.database);
    try {
      const database = s.settings.database;
      const found = (await s.query(EXISTS_SQL, [p.name])).rows[0];
      if (p.state === 'absent') {
        if (!found) {
          ctx.log(`publication ${p.name} does not exist in ${database}`);
          return { name: p.name, database, changed: false };
        }
        ctx.changing();
        await s.query(`DROP PUBLICATION ${p.name}`);
        ctx.log(`publication ${p.name} dropped in ${database}`);
        return { name: p.name, database, changed: true };
      }
      if (found) {
        if (found.puballtables !== true)
          throw new StepFailure(
            `publication ${p.name} exists in ${database} but is not FOR ALL TABLES: drop it or choose another name`,
          );
        ctx.log(
          `publication ${p.name} already exists in ${database} (for all tables): kept, and left in place by the undo`,
        );
        return { name: p.name, database, changed: false };
      }
      ctx.changing();
      await s.query(`CREATE PUBLICATION ${p.name} FOR ALL TABLES`);
      ctx.log(`publication ${p.name} created for all tables in ${database}`);
      return { name: p.name, database, changed: true };
    } finally {
      await s.close();
    }
  },
  async undo(ctx, p, out) {
    if (p.state === 'absent' || !out.changed) return;
    const s = await openOn(ctx.host, p.database);
    try {
      await s.query(`DROP PUBLICATION IF EXISTS ${p.name}`);
    } finally {
      await s.close();
    }
  },
});

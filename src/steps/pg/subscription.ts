// `pg.subscription`: the subscriber's side of a blue-green upgrade's logical replication. Created
// on an existing slot without copying data (the subscriber already holds everything up to the
// slot's consistent point, as a physical copy recovered to it), its replication origin advanced to
// that point, then enabled; or enabled, disabled, dropped. The connection string comes from the
// publisher's inventory settings: its password is masked in the plan and never logged, and the
// session turns statement logging off first so that it does not reach the server log either (it
// does live in pg_subscription, readable by superusers only, as with any subscription).
import { Type } from '@sinclair/typebox';
import type { PgSession } from '../../connections/pg.js';
import { StepFailure } from '../../errors.js';
import { defineStep, type PlanContext } from '../define.js';
import { conninfo, DatabaseParam, literal, Name, openOn, sourceHost } from './logical.js';

const Params = Type.Object(
  {
    name: Name('the subscription'),
    database: DatabaseParam,
    state: Type.Optional(
      Type.Union(
        [Type.Literal('present'), Type.Literal('enabled'), Type.Literal('disabled'), Type.Literal('absent')],
        {
          description:
            "present (default): created (refused if it exists), origin advanced, enabled unless enabled: false; enabled/disabled: switched; absent: dropped if it exists, leaving the publisher's slot to pg.logical_slot",
        },
      ),
    ),
    source: Type.Optional(
      Type.String({
        minLength: 1,
        description:
          'state present: the inventory host of the publisher (its pg settings make the connection)',
      }),
    ),
    source_database: Type.Optional(
      Type.String({ minLength: 1, description: "the publisher's database (default: this step's database)" }),
    ),
    connect_host: Type.Optional(
      Type.String({
        minLength: 1,
        description: "the publisher's address as the subscriber reaches it (default: its pg host)",
      }),
    ),
    connect_port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
    publication: Type.Optional(Name('state present: the publication')),
    slot_name: Type.Optional(Name('state present: the existing slot on the publisher')),
    origin_lsn: Type.Optional(
      Type.String({
        pattern: '^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$',
        description:
          "an LSN such as 0/3000060; state present: advance the subscription's replication origin to this LSN (the slot's consistent point) before enabling",
      }),
    ),
    enabled: Type.Optional(
      Type.Boolean({ description: 'state present: enable once created (default true)' }),
    ),
  },
  { additionalProperties: false },
);

const Outputs = Type.Object({
  name: Type.String(),
  database: Type.String(),
  enabled: Type.Boolean(),
  changed: Type.Boolean(),
});

type P = typeof Params.static;

const FIND_SQL =
  'select subenabled, subslotname from pg_subscription where subname = $1 and subdbid = (select oid from pg_database where datname = current_database())';
const ADVANCE_SQL =
  "select pg_replication_origin_advance('pg_' || oid::text, $2::pg_lsn) from pg_subscription where subname = $1 and subdbid = (select oid from pg_database where datname = current_database())";

function createSql(ctx: PlanContext, p: P, reveal: boolean): string {
  if (!p.source || !p.publication || !p.slot_name)
    throw new StepFailure('state present needs source, publication and slot_name');
  const src = sourceHost(ctx, p.source);
  const info = conninfo(
    src,
    p.source_database ?? p.database,
    { host: p.connect_host, port: p.connect_port },
    reveal,
  );
  return `CREATE SUBSCRIPTION ${p.name} CONNECTION ${literal(info)} PUBLICATION ${p.publication} WITH (create_slot = false, slot_name = ${literal(p.slot_name)}, copy_data = false, enabled = false)`;
}

const dropSqls = (name: string) => [
  `ALTER SUBSCRIPTION ${name} DISABLE`,
  `ALTER SUBSCRIPTION ${name} SET (slot_name = NONE)`,
  `DROP SUBSCRIPTION ${name}`,
];

async function drop(s: PgSession, name: string): Promise<void> {
  for (const q of dropSqls(name)) await s.query(q);
}

export default defineStep({
  type: 'pg.subscription',
  summary:
    "Create a subscription on an existing slot without copying data (origin advanced to the slot's consistent point), or enable, disable or drop one.",
  params: Params,
  outputs: Outputs,
  peerParams: ['source'],
  mutating: true,
  marksChanges: true,
  undoSummary: "present: dropped (the publisher's slot kept); enabled/disabled: switched back; absent: none",
  plan(ctx, p) {
    const state = p.state ?? 'present';
    const find = { kind: 'sql' as const, sql: FIND_SQL.replace('$1', `'${p.name}'`) };
    if (state === 'absent')
      return {
        action: `drop subscription ${p.name} if it exists (the publisher's slot is kept)`,
        ops: [find, ...dropSqls(p.name).map((sql) => ({ kind: 'sql' as const, sql }))],
      };
    if (state === 'enabled' || state === 'disabled') {
      const to = state === 'enabled' ? 'ENABLE' : 'DISABLE';
      const back = state === 'enabled' ? 'DISABLE' : 'ENABLE';
      return {
        action: `${to.toLowerCase()} subscription ${p.name}`,
        ops: [find, { kind: 'sql', sql: `ALTER SUBSCRIPTION ${p.name} ${to}` }],
        undo: {
          action: `${back.toLowerCase()} it again`,
          ops: [{ kind: 'sql', sql: `ALTER SUBSCRIPTION ${p.name} ${back}` }],
        },
      };
    }
    return {
      action: `subscribe ${p.name} to publication ${p.publication} on ${p.source} through its slot ${p.slot_name}, without copying data`,
      ops: [
        find,
        {
          kind: 'note',
          text: 'refused if it exists; statement logging off for this session (the connection string holds a password)',
        },
        { kind: 'sql', sql: "SET log_statement = 'none'" },
        { kind: 'sql', sql: createSql(ctx, p, false) },
        ...(p.origin_lsn
          ? [
              {
                kind: 'sql' as const,
                sql: ADVANCE_SQL.replace('$1', `'${p.name}'`).replace('$2', `'${p.origin_lsn}'`),
              },
            ]
          : []),
        ...(p.enabled === false
          ? []
          : [{ kind: 'sql' as const, sql: `ALTER SUBSCRIPTION ${p.name} ENABLE` }]),
      ],
      undo: {
        action: `drop subscription ${p.name} (the publisher's slot is kept)`,
        ops: dropSqls(p.name).map((sql) => ({ kind: 'sql' as const, sql })),
      },
    };
  },
  async apply(ctx, p) {
    const state = p.state ?? 'present';
    const s = await openOn(ctx.host, p.database);
    try {
      const database = s.settings.database;
      const found = (await s.query(FIND_SQL, [p.name])).rows[0];
      if (state === 'absent') {
        if (!found) {
          ctx.log(`subscription ${p.name} does not exist in ${database}`);
          return { name: p.name, database, enabled: false, changed: false };
        }
        ctx.changing();
        await drop(s, p.name);
        ctx.log(
          `subscription ${p.name} dropped in ${database}; the publisher's slot ${found.subslotname ?? ''} is kept`,
        );
        return { name: p.name, database, enabled: false, changed: true };
      }
      if (state === 'enabled' || state === 'disabled') {
        if (!found) throw new StepFailure(`subscription ${p.name} does not exist in ${database}`);
        const want = state === 'enabled';
        if (found.subenabled === want) {
          ctx.log(`subscription ${p.name} is already ${state}`);
          return { name: p.name, database, enabled: want, changed: false };
        }
        ctx.changing();
        await s.query(`ALTER SUBSCRIPTION ${p.name} ${want ? 'ENABLE' : 'DISABLE'}`);
        ctx.log(`subscription ${p.name} ${state}`);
        return { name: p.name, database, enabled: want, changed: true };
      }
      if (found)
        throw new StepFailure(
          `subscription ${p.name} already exists in ${database}: drop it (state: absent) or choose another name`,
        );
      const sql = createSql(ctx, p, true);
      // The statement holds the publisher's password: keep it out of the server log.
      await s
        .query("SET log_statement = 'none'")
        .catch((err) =>
          ctx.log(
            `could not turn statement logging off (${(err as Error).message}): the server log may show the connection string`,
          ),
        );
      ctx.changing();
      await s.query(sql);
      if (p.origin_lsn) {
        await s.query(ADVANCE_SQL, [p.name, p.origin_lsn]);
        ctx.log(`replication origin of ${p.name} advanced to ${p.origin_lsn}`);
      }
      if (p.enabled !== false) await s.query(`ALTER SUBSCRIPTION ${p.name} ENABLE`);
      ctx.log(
        `subscription ${p.name} to ${p.publication} on ${p.source} (slot ${p.slot_name}, no initial copy) created${p.enabled !== false ? ' and enabled' : ', disabled'}`,
      );
      return { name: p.name, database, enabled: p.enabled !== false, changed: true };
    } finally {
      await s.close();
    }
  },
  async undo(ctx, p, out) {
    if (!out.changed) return;
    const state = p.state ?? 'present';
    if (state === 'absent') return;
    const s = await openOn(ctx.host, p.database);
    try {
      if (state === 'present') {
        if ((await s.query(FIND_SQL, [p.name])).rows[0]) await drop(s, p.name);
        return;
      }
      await s.query(`ALTER SUBSCRIPTION ${p.name} ${state === 'enabled' ? 'DISABLE' : 'ENABLE'}`);
    } finally {
      await s.close();
    }
  },
});

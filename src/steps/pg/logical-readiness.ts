// `pg.logical_readiness`: what logical replication would silently get wrong, per database, before
// a blue-green upgrade relies on it. Logical replication carries rows of tables with a replica
// identity; it does not carry large objects, unlogged tables, sequences or DDL. So: tables that
// cannot replicate an UPDATE or DELETE (no primary key, no usable replica identity), unlogged
// tables and large objects are refused unless `allow` names them; sequences are listed (their
// values are copied at the switchover); a schema fingerprint (tables, columns, types, nullability)
// lets the playbook compare both sides and refuse once DDL ran on one of them. Reads only.
import { createHash } from 'node:crypto';
import { Type } from '@sinclair/typebox';
import { openPg, type PgSession } from '../../connections/pg.js';
import { StepFailure } from '../../errors.js';
import { defineStep } from '../define.js';

const ALLOW = ['no_replica_identity', 'unlogged', 'large_objects'] as const;
type Allow = (typeof ALLOW)[number];

const Params = Type.Object(
  {
    databases: Type.Optional(
      Type.Array(Type.String({ minLength: 1 }), {
        description:
          'databases to check (default: every database that accepts connections, templates excepted)',
      }),
    ),
    allow: Type.Optional(
      Type.Array(Type.Union(ALLOW.map((a) => Type.Literal(a))), {
        description:
          'accept what logical replication does not carry: tables without a replica identity (their UPDATE and DELETE fail on the source once published), unlogged tables, large objects (default: refused)',
      }),
    ),
  },
  { additionalProperties: false },
);

const Database = Type.Object({
  database: Type.String(),
  fingerprint: Type.String({ description: "md5 of the database's tables, columns, types and nullability" }),
  tables: Type.Integer(),
  no_replica_identity: Type.Array(Type.String()),
  unlogged: Type.Array(Type.String()),
  large_objects: Type.Integer(),
  sequences: Type.Array(
    Type.Object({ name: Type.String(), last_value: Type.Union([Type.String(), Type.Null()]) }),
  ),
});

const Outputs = Type.Object({
  databases: Type.Array(Database),
  fingerprint: Type.String({
    description: 'md5 over every database checked: equal on both sides when the schemas are',
  }),
  problems: Type.Array(Type.String(), { description: 'what was found and allowed' }),
});

const DATABASES_SQL =
  'select datname from pg_database where datallowconn and not datistemplate order by datname';

// User tables: not the catalogs, not TOAST, not a temporary schema.
const USER_TABLES = `c.relkind = 'r' and n.nspname not in ('pg_catalog', 'information_schema')
  and n.nspname !~ '^pg_toast' and n.nspname !~ '^pg_temp_'`;

/** Permanent tables whose UPDATE and DELETE cannot be published: no identity to find the row by. */
export const NO_IDENTITY_SQL = `select format('%I.%I', n.nspname, c.relname) as name
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where ${USER_TABLES} and c.relpersistence = 'p'
  and (c.relreplident = 'n'
    or (c.relreplident = 'd' and not exists (select 1 from pg_index i where i.indrelid = c.oid and i.indisprimary))
    or (c.relreplident = 'i' and not exists (select 1 from pg_index i where i.indrelid = c.oid and i.indisreplident)))
order by 1`;

export const UNLOGGED_SQL = `select format('%I.%I', n.nspname, c.relname) as name
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where ${USER_TABLES} and c.relpersistence = 'u' order by 1`;

export const LARGE_OBJECTS_SQL = 'select count(*)::int as n from pg_largeobject_metadata';

export const SEQUENCES_SQL = `select format('%I.%I', schemaname, sequencename) as name, last_value::text as last_value
from pg_sequences order by 1`;

/**
 * One line per column of every permanent or unlogged user table, in a stable order: the text the
 * fingerprint hashes. Types through format_type, which prints the same for the same type on 13
 * and 15.
 */
export const SCHEMA_SQL = `select format('%I.%I', n.nspname, c.relname) || ' ' || c.relpersistence::text || ' '
  || coalesce(string_agg(format('%I %s%s', a.attname, format_type(a.atttypid, a.atttypmod),
       case when a.attnotnull then ' not null' else '' end), ', ' order by a.attnum), '') as line
from pg_class c join pg_namespace n on n.oid = c.relnamespace
left join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
where ${USER_TABLES}
group by n.nspname, c.relname, c.relpersistence order by 1`;

const md5 = (text: string) => createHash('md5').update(text).digest('hex');

/** The fingerprint of a database from its schema lines, and of several from theirs. */
export function fingerprintOf(lines: string[]): string {
  return md5(lines.join('\n'));
}

export default defineStep({
  type: 'pg.logical_readiness',
  summary:
    'Check, per database, what logical replication would not carry (tables without a replica identity, unlogged tables, large objects), list the sequences, and fingerprint the schema.',
  params: Params,
  outputs: Outputs,
  mutating: false,
  undoSummary: 'none (reads only)',
  plan(_ctx, p) {
    const allowed = new Set<Allow>(p.allow ?? []);
    return {
      action: `check logical replication readiness in ${p.databases ? p.databases.join(', ') : 'every database'}`,
      ops: [
        ...(p.databases ? [] : [{ kind: 'sql' as const, sql: DATABASES_SQL }]),
        { kind: 'note', text: 'in each database:' },
        { kind: 'sql', sql: NO_IDENTITY_SQL },
        { kind: 'sql', sql: UNLOGGED_SQL },
        { kind: 'sql', sql: LARGE_OBJECTS_SQL },
        { kind: 'sql', sql: SEQUENCES_SQL },
        { kind: 'sql', sql: SCHEMA_SQL },
        {
          kind: 'note',
          text: `refused: ${
            ALLOW.filter((a) => !allowed.has(a))
              .map((a) => a.replace(/_/g, ' '))
              .join(', ') || 'nothing (all allowed)'
          }; sequences are listed, the schema's md5 is the output fingerprint`,
        },
      ],
    };
  },
  async apply(ctx, p) {
    const pgs = ctx.host.pg;
    if (!pgs) throw new StepFailure(`host ${ctx.host.name}: pg settings are needed in the inventory`);
    const main = await ctx.pg();
    const names = p.databases ?? (await main.query(DATABASES_SQL)).rows.map((r) => String(r.datname));
    const allowed = new Set<Allow>(p.allow ?? []);
    const databases: (typeof Database.static)[] = [];
    const refused: string[] = [];
    const accepted: string[] = [];
    for (const database of names) {
      let s: PgSession | undefined;
      try {
        s = await openPg(ctx.host.name, { ...pgs, database });
        const col = async (sql: string) => (await s!.query(sql)).rows.map((r) => String(r.name));
        const noIdentity = await col(NO_IDENTITY_SQL);
        const unlogged = await col(UNLOGGED_SQL);
        const largeObjects = Number((await s.query(LARGE_OBJECTS_SQL)).rows[0]?.n ?? 0);
        const sequences = (await s.query(SEQUENCES_SQL)).rows.map((r) => ({
          name: String(r.name),
          last_value: r.last_value === null ? null : String(r.last_value),
        }));
        const lines = (await s.query(SCHEMA_SQL)).rows.map((r) => String(r.line));
        const d = {
          database,
          fingerprint: fingerprintOf(lines),
          tables: lines.length,
          no_replica_identity: noIdentity,
          unlogged,
          large_objects: largeObjects,
          sequences,
        };
        databases.push(d);
        const found: [Allow, string][] = [
          ...noIdentity.map(
            (t) =>
              [
                'no_replica_identity',
                `${database}: table ${t} has no primary key or replica identity (its UPDATE and DELETE would fail once published)`,
              ] as [Allow, string],
          ),
          ...unlogged.map(
            (t) =>
              ['unlogged', `${database}: table ${t} is unlogged (logical replication does not carry it)`] as [
                Allow,
                string,
              ],
          ),
          ...(largeObjects > 0
            ? [
                [
                  'large_objects',
                  `${database}: ${largeObjects} large object(s) (logical replication does not carry them)`,
                ] as [Allow, string],
              ]
            : []),
        ];
        for (const [kind, text] of found) (allowed.has(kind) ? accepted : refused).push(text);
        ctx.log(
          `${database}: ${lines.length} table(s), schema ${d.fingerprint}; ${sequences.length} sequence(s) to copy at the switchover${noIdentity.length ? `; ${noIdentity.length} without replica identity` : ''}${unlogged.length ? `; ${unlogged.length} unlogged` : ''}${largeObjects ? `; ${largeObjects} large object(s)` : ''}`,
        );
      } finally {
        await s?.close();
      }
    }
    for (const a of accepted) ctx.log(`allowed: ${a}`);
    if (refused.length)
      throw new StepFailure(
        `logical replication would not carry everything:\n  ${refused.join('\n  ')}\nFix them (a primary key, REPLICA IDENTITY FULL, a logged table, no large objects), or accept them with allow: [${[
          ...new Set(
            refused.map((r) =>
              /replica identity/.test(r)
                ? 'no_replica_identity'
                : /unlogged/.test(r)
                  ? 'unlogged'
                  : 'large_objects',
            ),
          ),
        ].join(', ')}]`,
      );
    return {
      databases,
      fingerprint: fingerprintOf(databases.map((d) => `${d.database} ${d.fingerprint}`)),
      problems: accepted,
    };
  },
});

// `pg.update_extensions`: after a major upgrade, bring every extension to the version the new
// binaries ship as default — what pg_upgrade's update_extensions.sql asks for, done per database
// by the runner (that script is psql-only and is otherwise left unrun). Each database is reached
// with the host's pg settings and its own name; every update is one `ALTER EXTENSION … UPDATE`,
// listed in the output per database.
import { Type } from '@sinclair/typebox';
import { openPg, type PgSession } from '../../connections/pg.js';
import { StepFailure } from '../../errors.js';
import { defineStep } from '../define.js';

const Params = Type.Object(
  {
    databases: Type.Optional(
      Type.Array(Type.String({ minLength: 1 }), {
        description:
          'databases to update (default: every database that accepts connections, templates excepted)',
      }),
    ),
    only_list: Type.Optional(
      Type.Boolean({ description: 'list what would be updated and change nothing (default false)' }),
    ),
  },
  { additionalProperties: false },
);

const Update = Type.Object({
  database: Type.String(),
  extension: Type.String(),
  from: Type.String(),
  to: Type.String(),
  statement: Type.String(),
});

const Outputs = Type.Object({
  updates: Type.Array(Update, { description: 'per database and extension: the version before and after' }),
  databases: Type.Array(Type.String(), { description: 'the databases looked at' }),
});

/** Databases a default run looks at: connectable, not templates. */
const DATABASES_SQL =
  'select datname from pg_database where datallowconn and not datistemplate order by datname';
/** Extensions whose installed version is not the default the binaries ship. */
const OUTDATED_SQL =
  'select e.extname, e.extversion, a.default_version from pg_extension e join pg_available_extensions a on a.name = e.extname where a.default_version is not null and e.extversion <> a.default_version order by e.extname';

export default defineStep({
  type: 'pg.update_extensions',
  summary:
    "Update every extension to the new binaries' default version in each database (pg_upgrade's update_extensions.sql, done by the runner).",
  params: Params,
  outputs: Outputs,
  mutating: (p) => p.only_list !== true,
  marksChanges: true,
  undoSummary: 'none: an extension update has no way back (it runs once the new major takes writes)',
  plan(_ctx, p) {
    return {
      action: p.only_list ? 'list the extensions an update would change' : 'update outdated extensions',
      ops: [
        ...(p.databases ? [] : [{ kind: 'sql' as const, sql: DATABASES_SQL }]),
        {
          kind: 'note',
          text: `in ${p.databases ? p.databases.join(', ') : 'each of those databases'}:`,
        },
        { kind: 'sql', sql: OUTDATED_SQL },
        ...(p.only_list
          ? []
          : [
              {
                kind: 'note' as const,
                text: 'for each row: ALTER EXTENSION "name" UPDATE (to its default version)',
              },
            ]),
      ],
    };
  },
  async apply(ctx, p) {
    const pgs = ctx.host.pg;
    if (!pgs) throw new StepFailure(`host ${ctx.host.name}: pg settings are needed in the inventory`);
    const main = await ctx.pg();
    const databases = p.databases ?? (await main.query(DATABASES_SQL)).rows.map((r) => String(r.datname));
    const updates: { database: string; extension: string; from: string; to: string; statement: string }[] =
      [];
    for (const database of databases) {
      let s: PgSession | undefined;
      try {
        s = await openPg(ctx.host.name, { ...pgs, database });
        const outdated = (await s.query(OUTDATED_SQL)).rows;
        for (const r of outdated) {
          const extension = String(r.extname);
          // Quoted as an identifier by the server's own rules: the name comes from the catalog.
          const statement = `ALTER EXTENSION ${quoteIdent(extension)} UPDATE`;
          const u = {
            database,
            extension,
            from: String(r.extversion),
            to: String(r.default_version),
            statement,
          };
          if (!p.only_list) {
            ctx.changing();
            await s.query(statement);
            const now = String(
              (await s.query('select extversion from pg_extension where extname = $1', [extension])).rows[0]
                ?.extversion,
            );
            u.to = now;
          }
          ctx.log(`${database}: ${extension} ${u.from} → ${u.to}${p.only_list ? ' (would update)' : ''}`);
          updates.push(u);
        }
      } finally {
        await s?.close();
      }
    }
    if (!updates.length) ctx.log(`every extension is at its default version in ${databases.join(', ')}`);
    return { updates, databases };
  },
});

/** An SQL identifier in double quotes, embedded quotes doubled. */
function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

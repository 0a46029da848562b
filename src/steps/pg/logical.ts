// What the logical replication steps share: names they create (an allowlist: they go into SQL
// unquoted-safe and into the plan as they are), a session on one database of the host, and the
// connection string a subscriber uses to reach its publisher, built from the publisher's
// inventory settings (its password a Secret: masked in plans, logs and the journal).

import { Type } from '@sinclair/typebox';
import { openPg, type PgSession, type PgSettings } from '../../connections/pg.js';
import { StepFailure } from '../../errors.js';
import type { InventoryHost } from '../../inventory/inventory.js';
import type { PlanContext } from '../define.js';

/** Lower-case identifiers only: no quoting questions, the same text in SQL, catalogs and plans. */
export const NAME_PATTERN = '^[a-z_][a-z0-9_]{0,62}$';

export const Name = (what: string) =>
  Type.String({ pattern: NAME_PATTERN, description: `${what}: a lower-case identifier (${NAME_PATTERN})` });

/** present (default) or absent: the create-or-drop choice of the publication and slot steps. */
export const StateParam = (description: string) =>
  Type.Optional(Type.Union([Type.Literal('present'), Type.Literal('absent')], { description }));

export const DatabaseParam = Type.Optional(
  Type.String({ minLength: 1, description: "the database (default: the host's pg database)" }),
);

/** The host's pg settings, for `database` when given. */
export function settingsFor(host: InventoryHost, database?: string): PgSettings {
  if (!host.pg) throw new StepFailure(`host ${host.name}: pg settings are needed in the inventory`);
  return database ? { ...host.pg, database } : host.pg;
}

/** Another inventory host a step reads from or points at (the publisher). */
export function sourceHost(ctx: PlanContext, name: string, param = 'source'): InventoryHost {
  const h = ctx.peer(name);
  if (!h) throw new StepFailure(`${param}: no host "${name}" in the inventory`);
  return h;
}

/** A session of its own on one database (closed by the caller): logical objects are per database. */
export function openOn(host: InventoryHost, database?: string): Promise<PgSession> {
  if (host.pg?.passwordSource && !host.pg.password)
    throw new StepFailure(
      `the pg password of host ${host.name} was not read: name the host literally in the step (not through a template), or put it in a play's hosts`,
    );
  return openPg(host.name, settingsFor(host, database));
}

/** A libpq keyword/value string: values single-quoted, backslashes and quotes escaped. */
function kv(key: string, value: string | number): string {
  return `${key}='${String(value).replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/**
 * How a subscriber reaches the publisher `source` (its inventory pg settings, or `host`/`port`
 * overrides for the address the subscriber sees). `reveal` puts the password in; without it the
 * text shows *** (plans, logs).
 */
export function conninfo(
  source: InventoryHost,
  database: string | undefined,
  over: { host?: string; port?: number },
  reveal: boolean,
): string {
  const s = settingsFor(source, database);
  const parts = [
    kv('host', over.host ?? s.host),
    kv('port', over.port ?? s.port),
    kv('user', s.user),
    kv('dbname', s.database),
    kv('sslmode', s.sslmode),
    ...(s.sslrootcert ? [kv('sslrootcert', s.sslrootcert)] : []),
    // Masked whenever the inventory names a password, read yet or not (an offline plan reads none).
    ...(s.password && reveal
      ? [kv('password', s.password.reveal())]
      : s.password || source.pg?.passwordSource
        ? ["password='***'"]
        : []),
  ];
  return parts.join(' ');
}

/** An SQL string literal (standard_conforming_strings: quotes doubled). */
export function literal(text: string): string {
  return `'${text.replace(/'/g, "''")}'`;
}

// Physical replication connections made from a host to another inventory host's PostgreSQL
// (pg_basebackup, a copy streaming from its source): who logs in, the connection string, and the
// password handed over without ever being on a command line, in a plan or in a log. The password
// goes to the remote script on standard input, which writes it to a passfile in a private
// temporary directory (mode 700) that the script removes when it ends.
import { StepFailure } from '../../errors.js';
import type { InventoryHost } from '../../inventory/inventory.js';
import type { Secret } from '../../util/secret.js';

export interface ReplicationLogin {
  user: string;
  password?: Secret;
  /** The inventory names a password (read yet or not): plans say a passfile is used. */
  hasPassword: boolean;
}

/** pg.replication_user (default: pg.user) and pg.replication_password (default: pg.password). */
export function replicationLogin(source: InventoryHost): ReplicationLogin {
  const s = source.pg;
  if (!s) throw new StepFailure(`host ${source.name}: pg settings are needed in the inventory`);
  const password = s.replicationPassword ?? s.password;
  return {
    user: s.replicationUser ?? s.user,
    password,
    hasPassword: password !== undefined || !!(s.replicationPasswordSource ?? s.passwordSource),
  };
}

/**
 * A libpq keyword/value pair: a plain value as it is (what a reviewer reads in the plan), any
 * other single-quoted with backslashes and quotes escaped.
 */
export function kv(key: string, value: string | number): string {
  const v = String(value);
  if (/^[A-Za-z0-9._/:@+-]+$/.test(v)) return `${key}=${v}`;
  return `${key}='${v.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/**
 * The connection string of a physical replication connection to `source` (no dbname, no
 * password: the password is in the passfile `passfile`, when given).
 */
export function replicationConninfo(
  source: InventoryHost,
  over: { host?: string; port?: number },
  passfile?: string,
): string {
  const s = source.pg;
  if (!s) throw new StepFailure(`host ${source.name}: pg settings are needed in the inventory`);
  return [
    kv('host', over.host ?? s.host),
    kv('port', over.port ?? s.port),
    kv('user', replicationLogin(source).user),
    kv('sslmode', s.sslmode),
    ...(s.sslrootcert ? [kv('sslrootcert', s.sslrootcert)] : []),
    kv('application_name', 'pgrunbook'),
    ...(passfile ? [kv('passfile', passfile)] : []),
  ].join(' ');
}

/**
 * The passfile's one line: any host, port and database, this user and password (libpq's format:
 * `\` and `:` escaped). Empty without a password. A line break cannot be written in a passfile.
 */
export function passfileText(login: ReplicationLogin): string {
  if (!login.password) return '';
  const pw = login.password.reveal();
  if (/[\r\n]/.test(pw))
    throw new StepFailure(
      `the replication password of ${login.user} holds a line break, which a libpq passfile cannot hold`,
    );
  const esc = (v: string) => v.replace(/\\/g, '\\\\').replace(/:/g, '\\:');
  return `*:*:*:${esc(login.user)}:${esc(pw)}\n`;
}

/**
 * Shell lines that make `$tmp` (a private directory, removed when the script exits, with
 * `$cleanup_extra` run first) and write standard input to `$tmp/pgpass` (mode 600).
 */
export const PASSFILE_LINES = [
  'umask 077',
  'tmp=$(mktemp -d) || exit 1',
  // The server user may not enter the caller's directory (programs like pg_ctl chdir back to it).
  'cd "$tmp" || exit 1',
  'cleanup_extra=:',
  'trap \'eval "$cleanup_extra"; rm -rf -- "$tmp"\' EXIT',
  "trap 'exit 130' INT",
  "trap 'exit 143' TERM",
  "trap 'exit 129' HUP",
  'cat > "$tmp/pgpass"',
];

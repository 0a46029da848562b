// Is a directory the data directory of a running PostgreSQL? Writing backup_label there is how a
// primary fails to restart after a crash, so steps that write labels refuse such a place.
import type { PgSession } from '../../connections/pg.js';
import { commandLine, type Transport } from '../../connections/transport.js';
import { quote } from '../../util/shell.js';

/**
 * Returns why `dir` is a live data directory, or undefined. Two independent checks: the server's
 * own data_directory, and a postmaster.pid whose process is alive (and, where /proc allows,
 * runs in that directory). Unreadable evidence counts as live: refusing is the safe side.
 */
export async function liveDataDirectory(
  t: Transport,
  dir: string,
  pg?: PgSession,
  become?: 'sudo',
): Promise<string | undefined> {
  const script = [
    `d=$(realpath -m ${quote(dir)})`,
    'echo "real=$d"',
    // A directory this user cannot look into cannot be shown not to be a live data directory.
    'if [ -e "$d" ] && ! ls -A "$d" >/dev/null 2>&1; then echo unreadable; fi',
    'if [ -f "$d/PG_VERSION" ] && [ -f "$d/postmaster.pid" ]; then',
    '  pid=$(head -n 1 "$d/postmaster.pid")',
    '  if [ -n "$pid" ] && [ -d "/proc/$pid" ]; then',
    '    cwd=$(readlink "/proc/$pid/cwd" 2>/dev/null || echo unknown)',
    '    echo "pid=$pid cwd=$cwd"',
    '  fi',
    'fi',
  ].join('\n');
  const r = await t.exec(commandLine({ script }, become));
  const real = r.stdout.match(/^real=(.*)$/m)?.[1] ?? dir;
  if (/^unreadable$/m.test(r.stdout)) {
    return `${dir} cannot be read by the connecting user, so it cannot be shown not to be a live data directory`;
  }
  const live = r.stdout.match(/^pid=(\d+) cwd=(.*)$/m);
  if (live && (live[2] === real || live[2] === 'unknown')) {
    return `${dir} is the data directory of a running PostgreSQL (postmaster pid ${live[1]})`;
  }
  if (pg) {
    try {
      const dd = String((await pg.query("select current_setting('data_directory') as d")).rows[0]!.d);
      const rr = await t.exec(`realpath -m ${quote(dd)}`);
      if (rr.stdout.trim() === real) return `${dir} is the data directory of the host's running PostgreSQL`;
    } catch {
      // a role without pg_read_all_settings cannot see data_directory; the postmaster.pid check stands
    }
  }
  return undefined;
}

// Whether a server archives its WAL: read from its settings and pg_stat_archiver, read-only (no
// pg_switch_wal). A low-level backup is only valid with every WAL segment from its start to its
// stop in the archive, and pg_backup_stop waits for them: a broken archive is found before start.
import type { PgSession } from './pg.js';

/** The columns archiveProblemsOf reads (from `pg_stat_archiver a`), for queries that read more. */
export const ARCHIVE_COLUMNS = `current_setting('archive_mode') as archive_mode,
       current_setting('archive_command') as archive_command,
       (select setting from pg_settings where name = 'archive_library') as archive_library,
       pg_is_in_recovery() as in_recovery,
       a.last_archived_time::text as last_archived_time, a.last_archived_wal,
       a.last_failed_time::text as last_failed_time, a.last_failed_wal, a.failed_count,
       coalesce(a.last_failed_time > coalesce(a.last_archived_time, '-infinity'), false) as archiver_failing`;

/** The settings and archiver statistics archiveProblemsOf reads. */
export const ARCHIVE_SQL = `select ${ARCHIVE_COLUMNS}
  from pg_stat_archiver a`;

/** Every reason the server's WAL archiving would not serve a backup, or none. */
export async function archiveProblems(s: PgSession): Promise<string[]> {
  return archiveProblemsOf((await s.query(ARCHIVE_SQL)).rows[0]!);
}

/** The same, from a row with ARCHIVE_SQL's columns (pg.backup_start reads them with its own). */
export function archiveProblemsOf(r: Record<string, unknown>): string[] {
  const problems: string[] = [];
  const mode = String(r.archive_mode);
  if (r.in_recovery ? mode !== 'always' : !['on', 'always'].includes(mode)) {
    problems.push(
      `archive_mode is "${mode}": the WAL from backup start to stop must be archived (${r.in_recovery ? 'a standby needs always' : 'on or always'})`,
    );
  }
  const command = String(r.archive_command ?? '');
  if ((command === '' || command === '(disabled)') && !r.archive_library) {
    problems.push(
      'neither archive_command nor archive_library is set: nothing would archive the WAL the backup needs',
    );
  }
  if (r.archiver_failing) {
    problems.push(
      `the WAL archiver is failing: last failure at ${r.last_failed_time} for ${r.last_failed_wal} (${r.failed_count} failures), ` +
        `last success ${r.last_archived_time ?? 'never'}; fix archive_command first — pg_backup_stop would wait forever for the archive`,
    );
  }
  return problems;
}

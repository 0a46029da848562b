// The low-level backup API by server version: PostgreSQL 15 renamed the functions and dropped
// exclusive backups; before that, non-exclusive mode is the third argument of pg_start_backup.

/** First version with pg_backup_start/pg_backup_stop. */
export const NEW_API = 150000;

/** A statement with its parameters. */
export interface Sql {
  sql: string;
  params: unknown[];
}

/** Starts a non-exclusive backup on the calling session. */
export function startBackupSql(versionNum: number, label: string, fast: boolean): Sql {
  return versionNum >= NEW_API
    ? { sql: 'select pg_backup_start($1, $2)::text as lsn', params: [label, fast] }
    : { sql: 'select pg_start_backup($1, $2, false)::text as lsn', params: [label, fast] };
}

/** Stops the session's non-exclusive backup; returns lsn, labelfile, spcmapfile. */
export function stopBackupSql(versionNum: number, waitForArchive: boolean): Sql {
  return versionNum >= NEW_API
    ? { sql: 'select lsn::text, labelfile, spcmapfile from pg_backup_stop($1)', params: [waitForArchive] }
    : {
        sql: 'select lsn::text, labelfile, spcmapfile from pg_stop_backup(false, $1)',
        params: [waitForArchive],
      };
}

/** The function whose EXECUTE privilege a role needs to start a backup. */
export function startFunction(versionNum: number): string {
  return versionNum >= NEW_API ? 'pg_backup_start(text, boolean)' : 'pg_start_backup(text, boolean, boolean)';
}

/** Settings for the dedicated backup session: nothing may end it or cancel the stop's wait. */
export function pinnedSessionSetup(versionNum: number): string[] {
  const out = [
    'set statement_timeout = 0',
    'set idle_in_transaction_session_timeout = 0',
    'set lock_timeout = 0',
  ];
  if (versionNum >= 140000) out.push('set idle_session_timeout = 0');
  return out;
}

/** Fields of a backup_label file (`START WAL LOCATION: 0/2000028 (file 000000010000000000000002)`). */
export interface LabelInfo {
  startLsn?: string;
  startWalFile?: string;
  checkpointLsn?: string;
  backupFrom?: string;
  startTime?: string;
  label?: string;
  startTimeline?: number;
}

/** Reads the fields pgrunbook reports from a backup_label; the text itself is never changed. */
export function parseLabel(labelfile: string): LabelInfo {
  const get = (key: string) => labelfile.match(new RegExp(`^${key}: (.*)$`, 'm'))?.[1]?.trim();
  const start = get('START WAL LOCATION')?.match(/^(\S+) \(file (\S+)\)$/);
  const tl = get('START TIMELINE');
  return {
    startLsn: start?.[1],
    startWalFile: start?.[2],
    checkpointLsn: get('CHECKPOINT LOCATION'),
    backupFrom: get('BACKUP FROM'),
    startTime: get('START TIME'),
    label: get('LABEL'),
    startTimeline: tl ? Number(tl) : undefined,
  };
}

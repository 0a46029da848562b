// `pg.backup_start`: begin a non-exclusive low-level backup on a dedicated session the runner holds.
import { Type } from '@sinclair/typebox';
import { openPg, type PgSession } from '../../connections/pg.js';
import { ARCHIVE_COLUMNS, archiveProblemsOf } from '../../connections/pg-archive.js';
import { checkPairing, IDENTITY_SQL, pairingLines, serverIdentity } from '../../connections/pg-identity.js';
import { StepFailure } from '../../errors.js';
import { checkIdentity, claimsOf, pgdataOf } from '../backup/identity.js';
import { defineStep, type Operation } from '../define.js';
import { NEW_API, pinnedSessionSetup, startBackupSql, startFunction, stopBackupSql } from './backup-sql.js';

const Params = Type.Object(
  {
    label: Type.String({
      minLength: 1,
      maxLength: 1000,
      description: 'the backup label (written into backup_label)',
    }),
    fast: Type.Optional(
      Type.Boolean({ description: 'an immediate checkpoint instead of a spread one (default true)' }),
    ),
    session: Type.Optional(
      Type.String({
        pattern: '^[a-z][a-z0-9_]*$',
        description: 'name of the held session (default "backup")',
      }),
    ),
  },
  { additionalProperties: false },
);

const Outputs = Type.Object({
  lsn: Type.String({ description: 'backup start LSN' }),
  label: Type.String(),
  version_num: Type.Integer(),
  session: Type.String(),
  backend_pid: Type.Integer({ description: 'server process holding the backup' }),
  started_at: Type.String(),
  // The server the labels will describe, read on the held session: pg.backup_stop and
  // backup.write_labels check that what was copied is its data directory.
  system_identifier: Type.String({ description: 'from pg_control_system()' }),
  data_directory: Type.String({ description: "the server's data_directory" }),
  postmaster_start_time: Type.String({ description: 'pg_postmaster_start_time()' }),
  timeline: Type.Integer({ description: "the latest checkpoint's timeline (pg_control_checkpoint())" }),
});

/** The message a run fails with when the held session ends before the stop. */
export const BACKUP_LOST =
  'the backup was aborted by PostgreSQL when its session ended; nothing taken since backup start is a valid backup';

const PREFLIGHT = `select current_setting('server_version_num')::int as version_num,
       current_setting('wal_level') as wal_level,
       ${ARCHIVE_COLUMNS}
  from pg_stat_archiver a`;

const OTHERS = `select pid, application_name, backend_start::text as since
  from pg_stat_activity where application_name = $1 and pid <> pg_backend_pid()`;

/** Every reason the server is not fit for a low-level backup, or none. */
async function preflight(s: PgSession, appName: string): Promise<{ versionNum: number; problems: string[] }> {
  const r = (await s.query(PREFLIGHT)).rows[0]!;
  const versionNum = r.version_num as number;
  const problems: string[] = [];
  if (!['replica', 'logical'].includes(String(r.wal_level))) {
    problems.push(`wal_level is "${r.wal_level}": a low-level backup needs replica or logical`);
  }
  problems.push(...archiveProblemsOf(r));
  const fn = startFunction(versionNum);
  const priv = await s.query('select has_function_privilege(current_user, $1, $2) as ok', [fn, 'execute']);
  if (!priv.rows[0]?.ok) problems.push(`role may not run ${fn}: grant execute on it, or use a superuser`);
  const others = await s.query(OTHERS, [appName]);
  for (const o of others.rows) {
    problems.push(
      `another pgrunbook backup session is open on this server (pid ${o.pid}, since ${o.since}); finish or end it first`,
    );
  }
  return { versionNum, problems };
}

export default defineStep({
  type: 'pg.backup_start',
  summary: 'Start a non-exclusive low-level backup on a dedicated session held open until pg.backup_stop.',
  params: Params,
  outputs: Outputs,
  mutating: true,
  marksChanges: true,
  undoSummary: 'stops the backup on its session without keeping the labels, marking it void',
  // The WAL from start to stop must reach the archive: a broken archive is found before the run.
  // The server the pg: settings reach must be the one whose pgdata the inventory names.
  needs: () => ({ archive: true, pairing: [{}] }),
  plan(ctx, p) {
    const fast = p.fast ?? true;
    const v = ctx.facts.pg?.versionNum;
    const pgdata = pgdataOf(ctx.host);
    const ops: Operation[] = [
      { kind: 'sql', sql: PREFLIGHT },
      {
        kind: 'note',
        text: `open a dedicated session "${p.session ?? 'backup'}" held by the runner until pg.backup_stop`,
      },
      { kind: 'sql', sql: IDENTITY_SQL },
      {
        kind: 'note',
        text: pgdata
          ? `refuse unless pgdata ${pgdata} is that server's data_directory (symlinks resolved) and its global/pg_control has that system identifier`
          : 'record the server (system identifier, data_directory): the snapshot must be of that directory',
      },
    ];
    const undoOps: Operation[] = [];
    if (v) {
      for (const sql of pinnedSessionSetup(v)) ops.push({ kind: 'sql', sql, params: [] });
      const start = startBackupSql(v, p.label, fast);
      ops.push({ kind: 'sql', ...start });
      undoOps.push({ kind: 'sql', ...stopBackupSql(v, false) });
    } else {
      ops.push(
        {
          kind: 'note',
          text: 'PostgreSQL version unknown offline (plan --check learns it); the start is one of:',
        },
        { kind: 'sql', ...startBackupSql(NEW_API, p.label, fast) },
        { kind: 'sql', ...startBackupSql(140000, p.label, fast) },
      );
      undoOps.push({
        kind: 'note',
        text: 'on the held session: pg_backup_stop(false) (15+) or pg_stop_backup(false, false) (13, 14)',
      });
    }
    return {
      action: `start backup "${p.label}"${v ? ` (PostgreSQL ${v >= NEW_API ? '15+ API' : '13/14 API'})` : ''}`,
      ops,
      undo: { action: 'stop the backup and mark it void', ops: undoOps },
    };
  },
  async preview(ctx) {
    // The pairing the run will check: the server the pg: settings reach, and the inventory's pgdata.
    if (!ctx.host.pg) return { summary: 'no pg: settings: the run cannot start a backup here', lines: [] };
    const s = await openPg(ctx.host.name, ctx.host.pg, 'pgrunbook-preview');
    try {
      await s.query('set default_transaction_read_only = on');
      const id = await serverIdentity(s);
      const t = await ctx.transport();
      const pairing = await checkPairing(t, id, claimsOf(ctx.host, id.data_directory), {
        become: ctx.host.become,
        signal: ctx.signal,
      });
      return {
        summary: pairing.problems.length
          ? `the labels would describe another server than pgdata: ${pairing.problems.join('; ')}`
          : `the labels will describe server ${id.system_identifier} (data_directory ${id.data_directory}, timeline ${id.timeline})${pgdataOf(ctx.host) ? ", which is the inventory's pgdata" : ''}`,
        lines: pairingLines(id, pairing),
      };
    } finally {
      await s.close();
    }
  },
  async apply(ctx, p) {
    const name = p.session ?? 'backup';
    const check = await ctx.pg();
    const { versionNum, problems } = await preflight(check, `pgrunbook-${name}`);
    if (problems.length)
      throw new StepFailure(`refusing to start the backup:\n  - ${problems.join('\n  - ')}`);
    const s = await ctx.sessions.open(name, BACKUP_LOST, pinnedSessionSetup(versionNum));
    const { sql, params } = startBackupSql(versionNum, p.label, p.fast ?? true);
    try {
      // The server the labels will describe: the inventory's pgdata must be its directory, or the
      // snapshot (of pgdata, and what an upgrade stops and a rollback restores) is another's.
      const id = await serverIdentity(s);
      const pairing = await checkIdentity(ctx, id, claimsOf(ctx.host, id.data_directory));
      if (pairing.problems.length)
        throw new StepFailure(`refusing to start the backup:\n  - ${pairing.problems.join('\n  - ')}`);
      for (const l of pairingLines(id, pairing)) ctx.log(`identity: ${l}`);
      // The checks and the session changed nothing; starting the backup does.
      ctx.changing();
      const r = await s.query(sql, params);
      s.notes.backupStartedAt = Date.now();
      ctx.log(`backup "${p.label}" started at ${r.rows[0]!.lsn} on session pid ${s.backendPid}`);
      return {
        lsn: String(r.rows[0]!.lsn),
        label: p.label,
        version_num: versionNum,
        session: name,
        backend_pid: s.backendPid ?? 0,
        started_at: new Date().toISOString(),
        ...id,
      };
    } catch (err) {
      await ctx.sessions.release(name);
      throw err;
    }
  },
  async undo(ctx, _p, out) {
    const s = ctx.sessions.get(out.session);
    // Stopped already (pg.backup_stop released it) or ended (PostgreSQL aborted the backup).
    if (!s) return;
    if (s.lost) {
      await ctx.sessions.release(out.session);
      return;
    }
    const { sql, params } = stopBackupSql(out.version_num, false);
    try {
      await s.query(sql, params);
    } catch (err) {
      // Stopped meanwhile (a cancelled pg.backup_stop that had already ended it): nothing to undo.
      if (!/not in progress/i.test((err as Error).message)) throw err;
    }
    ctx.log(`backup "${out.label}" stopped and void: its labels were discarded`);
    await ctx.sessions.release(out.session);
  },
});

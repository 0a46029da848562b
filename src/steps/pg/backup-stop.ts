// `pg.backup_stop`: end the backup on its held session and register what PostgreSQL returned.
import { Type } from '@sinclair/typebox';
import { IDENTITY_SQL, pairingLines, serverIdentity } from '../../connections/pg-identity.js';
import { StepFailure } from '../../errors.js';
import { done, notYet, poll } from '../../util/poll.js';
import { quote } from '../../util/shell.js';
import { checkIdentity, claimsOf, pgdataOf, tookSomething } from '../backup/identity.js';
import { defineStep, type Operation } from '../define.js';
import { NEW_API, parseLabel, stopBackupSql } from './backup-sql.js';
import { BACKUP_LOST } from './backup-start.js';

const Params = Type.Object(
  {
    session: Type.Optional(
      Type.String({
        pattern: '^[a-z][a-z0-9_]*$',
        description: 'the session pg.backup_start held (default "backup")',
      }),
    ),
    wait_for_archive: Type.Optional(
      Type.Boolean({
        description: 'PostgreSQL waits until the WAL up to the stop is archived (default true)',
      }),
    ),
    archive_dir: Type.Optional(
      Type.String({
        pattern: '^/',
        description: 'also confirm the stop WAL segment is in this directory on the host',
      }),
    ),
    archive_timeout: Type.Optional(
      Type.Number({ minimum: 1, description: 'seconds to wait for archive_dir (default 60)' }),
    ),
    snapshots: Type.Optional(
      Type.Array(Type.Record(Type.String(), Type.Unknown()), {
        description:
          'what fs.snapshot or gcp.snapshot registered, e.g. ["{{ snap }}"]: checked to be this server\'s data directory before the stop',
      }),
    ),
  },
  { additionalProperties: false },
);

const Outputs = Type.Object({
  lsn: Type.String({ description: 'backup stop LSN' }),
  labelfile: Type.String({ description: 'backup_label, exactly as PostgreSQL returned it' }),
  spcmapfile: Type.String({ description: 'tablespace_map, exactly as returned (empty without tablespaces)' }),
  start_lsn: Type.String(),
  label: Type.String(),
  stop_wal_file: Type.String(),
  timeline: Type.Integer(),
  system_identifier: Type.String(),
  data_directory: Type.String({ description: "the server's data_directory, read on the held session" }),
  postmaster_start_time: Type.String(),
  version_num: Type.Integer(),
  seconds_in_backup: Type.Number({ description: 'from backup start to stop' }),
  stopped_at: Type.String(),
  archived: Type.Boolean({
    description: 'the stop segment was seen in archive_dir (or PostgreSQL waited for it)',
  }),
});

export default defineStep({
  type: 'pg.backup_stop',
  summary: 'Stop the non-exclusive backup on its held session; registers lsn, labelfile and spcmapfile.',
  params: Params,
  outputs: Outputs,
  mutating: false,
  undoSummary:
    'none: stopping ends backup mode; a backup made void later is marked so by backup.write_labels',
  plan(ctx, p) {
    const v = ctx.facts.pg?.versionNum;
    const wait = p.wait_for_archive ?? true;
    const what = [
      ...(pgdataOf(ctx.host) ? [`pgdata ${pgdataOf(ctx.host)}`] : []),
      ...(p.snapshots?.length ? ["what each snapshot took (its copy's global/pg_control)"] : []),
    ];
    const stop: Operation[] = v
      ? [{ kind: 'sql', ...stopBackupSql(v, wait) }]
      : [
          {
            kind: 'note',
            text: 'on the held session; PostgreSQL version unknown offline (plan --check learns it), one of:',
          },
          { kind: 'sql', ...stopBackupSql(NEW_API, wait) },
          { kind: 'sql', ...stopBackupSql(140000, wait) },
        ];
    const ops: Operation[] = [{ kind: 'sql', sql: IDENTITY_SQL }];
    if (what.length)
      ops.push({
        kind: 'note',
        text: `refuse to stop with labels unless ${what.join(' and ')} is the held session's server: its data_directory (symlinks resolved), its system identifier`,
      });
    ops.push(...stop);
    if (p.archive_dir) {
      ops.push({
        kind: 'wait',
        what: `the stop WAL segment is in ${p.archive_dir}`,
        timeoutSeconds: p.archive_timeout ?? 60,
      });
    }
    ops.push({ kind: 'note', text: `close the held session "${p.session ?? 'backup'}"` });
    return { action: 'stop the backup and keep backup_label/tablespace_map as returned', ops };
  },
  async apply(ctx, p) {
    const name = p.session ?? 'backup';
    const s = ctx.sessions.get(name);
    if (!s)
      throw new StepFailure(
        `no backup session "${name}" is held on ${ctx.host.name}: pg.backup_start must run first in this run`,
      );
    if (s.lost) throw new StepFailure(`${BACKUP_LOST} (${s.lost})`);
    const facts = await s.query(
      "select current_setting('server_version_num')::int as v, system_identifier::text as sysid from pg_control_system()",
    );
    const versionNum = facts.rows[0]!.v as number;
    // Before PostgreSQL hands out labels: they describe this session's server, and must not be
    // kept for a copy of another's directory. A refusal leaves the backup open; the undo of
    // pg.backup_start stops it void.
    const id = await serverIdentity(s);
    if (p.snapshots !== undefined || pgdataOf(ctx.host)) {
      const pairing = await checkIdentity(ctx, id, claimsOf(ctx.host, id.data_directory, p.snapshots));
      if (pairing.problems.length)
        throw new StepFailure(
          `refusing to stop the backup with labels: they would describe another server than what was copied:\n  - ${pairing.problems.join('\n  - ')}`,
        );
      for (const l of pairingLines(id, pairing)) ctx.log(`identity: ${l}`);
      if (p.snapshots !== undefined && !tookSomething(p.snapshots))
        ctx.log('identity: no snapshot took anything (every provider step was skipped)');
    }
    const { sql, params } = stopBackupSql(versionNum, p.wait_for_archive ?? true);
    let row: Record<string, unknown>;
    // The stop can wait a long time for the archive: Ctrl-C or a timeout must cancel it on the
    // server, or the undo's own stop would queue behind it on this session.
    const cancel = () => void s.cancel().catch(() => {});
    ctx.signal.addEventListener('abort', cancel, { once: true });
    const waiting = setTimeout(
      () =>
        ctx.log(
          'still waiting for PostgreSQL to archive the WAL the backup needs (pg_stat_archiver shows why)',
        ),
      10_000,
    );
    try {
      row = (await s.query(sql, params)).rows[0]!;
    } catch (err) {
      if (s.lost) throw new StepFailure(`${BACKUP_LOST} (${s.lost})`);
      throw err;
    } finally {
      clearTimeout(waiting);
      ctx.signal.removeEventListener('abort', cancel);
    }
    const stoppedAt = new Date();
    const startedAt = s.notes.backupStartedAt;
    const labelfile = String(row.labelfile);
    const info = parseLabel(labelfile);
    const inRecovery = (await s.query('select pg_is_in_recovery() as r')).rows[0]!.r === true;
    const stopWal = inRecovery
      ? ''
      : String((await s.query('select pg_walfile_name($1::pg_lsn) as f', [row.lsn])).rows[0]!.f);
    await ctx.sessions.release(name);
    let archived = p.wait_for_archive ?? true;
    if (p.archive_dir && stopWal) {
      const t = await ctx.transport();
      await poll(
        async () => {
          const r = await t.exec(`test -f ${quote(`${p.archive_dir}/${stopWal}`)}`, { signal: ctx.signal });
          return r.exitCode === 0 ? done(undefined) : notYet();
        },
        {
          timeoutMs: (p.archive_timeout ?? 60) * 1000,
          intervalMs: 500,
          signal: ctx.signal,
          onTimeout: () =>
            new StepFailure(
              `WAL segment ${stopWal} (the backup's stop) did not reach ${p.archive_dir} within ${p.archive_timeout ?? 60}s`,
            ),
        },
      );
      archived = true;
    }
    const started = typeof startedAt === 'number' ? startedAt : Number.NaN;
    return {
      lsn: String(row.lsn),
      labelfile,
      spcmapfile: String(row.spcmapfile ?? ''),
      start_lsn: info.startLsn ?? '',
      label: info.label ?? '',
      stop_wal_file: stopWal,
      timeline: info.startTimeline ?? 0,
      system_identifier: String(facts.rows[0]!.sysid),
      data_directory: id.data_directory,
      postmaster_start_time: id.postmaster_start_time,
      version_num: versionNum,
      seconds_in_backup: Number.isNaN(started) ? -1 : Math.max(0, (stoppedAt.getTime() - started) / 1000),
      stopped_at: stoppedAt.toISOString(),
      archived,
    };
  },
});

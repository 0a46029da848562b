// `backup.keep_basebackup`: a pg.basebackup copy made a backup like the snapshot ones — its
// backup_label (and tablespace_map) taken out of the copy byte for byte into the backup's own
// directory, and a manifest.json that backup.verify reads. From then on the copy is kept whatever
// fails later (pg.basebackup's undo leaves the stack).
import { createHash } from 'node:crypto';
import { Type } from '@sinclair/typebox';
import { commandLine } from '../../connections/transport.js';
import { StepFailure } from '../../errors.js';
import { done, notYet, PollTimeout, poll } from '../../util/poll.js';
import { quote } from '../../util/shell.js';
import { defineStep, type Operation } from '../define.js';
import { parseLabel } from '../pg/backup-sql.js';
import { remoteSha256, run, writeRemoteFile } from '../remote-files.js';
import { liveDataDirectory } from './live-datadir.js';
import { describeKept } from './manifest.js';

const LSN = '^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$';

const BasebackupOutputs = Type.Object(
  {
    to: Type.String({ pattern: '^/' }),
    format: Type.Union([Type.Literal('plain'), Type.Literal('tar')]),
    from: Type.String({ minLength: 1 }),
    system_identifier: Type.String(),
    timeline: Type.Integer(),
    start_lsn: Type.String({ pattern: LSN }),
    stop_lsn: Type.String({ pattern: LSN }),
    history_file: Type.String(),
    backup_from: Type.Union([Type.Literal('primary'), Type.Literal('standby')]),
    version_num: Type.Integer(),
    started_at: Type.String(),
    stopped_at: Type.String(),
    seconds: Type.Number(),
    copy_seconds: Type.Optional(Type.Number()),
    bytes: Type.Number(),
  },
  { description: 'the registered outputs of pg.basebackup, e.g. "{{ base }}"' },
);

const Params = Type.Object(
  {
    to: Type.String({
      pattern: '^/',
      description: "the backup's own directory (absolute): backup_label, tablespace_map, manifest.json",
    }),
    from: BasebackupOutputs,
    backup_id: Type.Optional(Type.String({ minLength: 1, description: 'default: the backup label' })),
    archive_dir: Type.Optional(
      Type.String({
        pattern: '^(/.*)?$',
        description:
          "the source's WAL archive as this host sees it: wait there for the backup history file (a primary with archiving on), and record whether it came (empty: none)",
      }),
    ),
    archive_timeout: Type.Optional(
      Type.Number({ minimum: 1, description: 'seconds to wait for the history file (default 60)' }),
    ),
  },
  { additionalProperties: false },
);

const Outputs = Type.Object({
  dir: Type.String(),
  manifest: Type.String({ description: 'path of manifest.json' }),
  backup_id: Type.String(),
  backup_label_sha256: Type.String(),
  history_archived: Type.Boolean({ description: 'the backup history file was found in archive_dir' }),
});

type P = typeof Params.static;

const sha256 = (s: string) => createHash('sha256').update(s, 'utf8').digest('hex');

/** Reads a file of the copy: from the directory (plain), or out of base.tar (tar). */
function readFromCopy(p: P, name: string): string {
  // In an offline plan the copy's outputs are not known yet.
  const copy = typeof p.from?.to === 'string' ? p.from.to : 'COPY';
  return p.from?.format === 'tar'
    ? `tar -xOf ${quote(`${copy}/base.tar`)} ${quote(name)}`
    : `cat ${quote(`${copy}/${name}`)}`;
}

/** What of the copy is a tablespace: pg_tblspc's links (plain), or OID.tar files (tar). */
function tablespacesScript(p: P): string {
  return p.from.format === 'tar'
    ? `cd ${quote(p.from.to)} && for f in *.tar; do case "$f" in base.tar|pg_wal.tar) ;; *) echo "\${f%.tar}" ;; esac; done`
    : `ls -1 ${quote(`${p.from.to}/pg_tblspc`)} 2>/dev/null; true`;
}

export default defineStep({
  type: 'backup.keep_basebackup',
  summary:
    'Keep a pg.basebackup copy as a backup: its backup_label (and tablespace_map) byte for byte next to it with a manifest.json, like a snapshot backup, for backup.verify; from then on the copy is kept.',
  params: Params,
  outputs: Outputs,
  mutating: true,
  marksChanges: true,
  undoSummary:
    'none: once its manifest says complete, the copy is kept whatever fails later (pg.basebackup’s undo is taken off the stack); a failed run’s summary says where it is and how to delete it',
  needs: (_ctx, p) => ({ writable: [{ path: p.to, param: 'to' }] }),
  plan(_ctx, p) {
    const ops: Operation[] = [
      { kind: 'note', text: `refuse if ${p.to} is the data directory of a running PostgreSQL` },
      {
        kind: 'command',
        line: `${readFromCopy(p, 'backup_label')}   (COPY: pg.basebackup's destination; its START WAL LOCATION must be the backup's start LSN)`,
      },
      { kind: 'command', line: `mkdir -p -m 700 ${quote(p.to)}` },
      {
        kind: 'note',
        text: `write ${p.to}/backup_label (and tablespace_map) exactly as in the copy, then manifest.json (atomic renames), sha256 checked`,
      },
      ...(p.archive_dir
        ? [
            {
              kind: 'note' as const,
              text: `from a primary with archiving on: wait up to ${p.archive_timeout ?? 60} s for the backup history file in ${p.archive_dir}`,
            },
          ]
        : []),
      {
        kind: 'note',
        text: 'from here the copy is a complete backup: kept whatever fails later (not undone)',
      },
    ];
    return { action: `keep the pg_basebackup copy as a backup in ${p.to}`, ops };
  },
  async apply(ctx, p) {
    const t = await ctx.transport();
    const become = ctx.host.become;
    const pg = ctx.host.pg ? await ctx.pg().catch(() => undefined) : undefined;
    const live = await liveDataDirectory(t, p.to, pg, become);
    if (live) throw new StepFailure(`refusing to keep a backup in ${p.to}: ${live}`);
    const opts = { become, signal: ctx.signal };
    // Through become, like run(): the copy is the server user's (0700), the archive may be too.
    const sh = (script: string) => t.exec(commandLine({ script }, become), { signal: ctx.signal });
    const labelfile = await run(t, readFromCopy(p, 'backup_label'), `reading the copy's backup_label`, opts);
    const info = parseLabel(labelfile);
    // The label must be this backup's: the copy may have been replaced since pg.basebackup ran.
    if (info.startLsn?.toUpperCase() !== p.from.start_lsn.toUpperCase())
      throw new StepFailure(
        `the backup_label in ${p.from.to} starts at ${info.startLsn ?? 'nothing'}, not at ${p.from.start_lsn} where pg.basebackup's backup started: not this backup's copy`,
      );
    const spcmap = (await sh(`${readFromCopy(p, 'tablespace_map')} 2>/dev/null`)).stdout;
    const spaces = (await run(t, tablespacesScript(p), 'listing the copy’s tablespaces', opts))
      .split('\n')
      .filter(Boolean);
    const hasManifest = (await sh(`test -f ${quote(`${p.from.to}/backup_manifest`)}`)).exitCode === 0;
    ctx.changing();
    await run(
      t,
      `mkdir -p -m 700 ${quote(p.to)}\nif [ -e ${quote(`${p.to}/backup_label`)} ]; then echo ${quote(`${p.to}/backup_label exists: another backup lives here`)} >&2; exit 17; fi`,
      `preparing ${p.to}`,
      opts,
    );
    await writeRemoteFile(t, `${p.to}/backup_label`, labelfile, opts);
    if (spcmap) await writeRemoteFile(t, `${p.to}/tablespace_map`, spcmap, opts);
    const sums = await remoteSha256(
      t,
      [`${p.to}/backup_label`, ...(spcmap ? [`${p.to}/tablespace_map`] : [])],
      become,
      ctx.signal,
    );
    if (sums.get(`${p.to}/backup_label`) !== sha256(labelfile))
      throw new StepFailure(`${p.to}/backup_label on disk differs from the copy's`);
    if (spcmap && sums.get(`${p.to}/tablespace_map`) !== sha256(spcmap))
      throw new StepFailure(`${p.to}/tablespace_map on disk differs from the copy's`);
    let archived = false;
    if (p.archive_dir && p.from.history_file) {
      const file = `${p.archive_dir}/${p.from.history_file}`;
      const timeout = p.archive_timeout ?? 60;
      archived = await poll(
        async () => ((await sh(`test -f ${quote(file)}`)).exitCode === 0 ? done(true) : notYet(false)),
        { timeoutMs: timeout * 1000, intervalMs: 500, signal: ctx.signal },
      ).catch((e: unknown) => {
        if (e instanceof PollTimeout) return false;
        throw e;
      });
      if (!archived)
        ctx.log(
          `warning: ${p.from.history_file} did not reach ${p.archive_dir} within ${timeout} s (is archive_command working?); the copy carries its own WAL`,
        );
    }
    const backupId = p.backup_id ?? info.label ?? 'backup';
    const m = {
      format: 'pgrunbook-backup/1',
      status: 'complete',
      kind: 'pg_basebackup',
      backup_id: backupId,
      label: info.label,
      pg_version_num: p.from.version_num,
      system_identifier: p.from.system_identifier,
      timeline: p.from.timeline,
      start_lsn: p.from.start_lsn,
      start_wal_file: info.startWalFile,
      checkpoint_lsn: info.checkpointLsn,
      backup_from: info.backupFrom ?? p.from.backup_from,
      source_host: p.from.from,
      stop_lsn: p.from.stop_lsn,
      started_at: p.from.started_at,
      stopped_at: p.from.stopped_at,
      seconds_in_backup: p.from.copy_seconds ?? p.from.seconds,
      // The WAL from start to stop was streamed into the copy (pg_wal, or pg_wal.tar).
      wal_included: true,
      history_file: p.from.history_file || undefined,
      wal_archived: archived,
      snapshots: [
        {
          provider: 'pg_basebackup',
          format: p.from.format,
          data: p.from.to,
          bytes: p.from.bytes,
          // Tablespaces stay inside the copy (links in pg_tblspc, or OID.tar): listed, by OID.
          tablespaces_in_copy: spaces,
        },
      ],
      files: {
        backup_label: { sha256: sha256(labelfile), bytes: Buffer.byteLength(labelfile) },
        ...(spcmap ? { tablespace_map: { sha256: sha256(spcmap), bytes: Buffer.byteLength(spcmap) } } : {}),
      },
      // pg_basebackup's own manifest (PostgreSQL 13+): pg_verifybackup checks the copy against it.
      backup_manifest: hasManifest,
      written_at: new Date().toISOString(),
    };
    await writeRemoteFile(t, `${p.to}/manifest.json`, `${JSON.stringify(m, null, 2)}\n`, opts);
    ctx.keep([p.from], `backup ${backupId} is complete (labels and manifest in ${p.to})`);
    ctx.log(
      `backup ${backupId}: labels and manifest in ${p.to}, the copy in ${p.from.to}${archived ? `, ${p.from.history_file} archived` : ''}`,
    );
    return {
      dir: p.to,
      manifest: `${p.to}/manifest.json`,
      backup_id: backupId,
      backup_label_sha256: sha256(labelfile),
      history_archived: archived,
    };
  },
  async kept(ctx, p) {
    return describeKept(await ctx.transport(), p.to, {
      become: ctx.host.become,
      host: ctx.host.name,
      signal: ctx.signal,
    });
  },
});

// `backup.write_labels`: keep backup_label and tablespace_map exactly as PostgreSQL returned them,
// next to the backup, with a manifest — and never inside a live data directory.
import { createHash } from 'node:crypto';
import { Type } from '@sinclair/typebox';
import { pairingLines } from '../../connections/pg-identity.js';
import { StepFailure } from '../../errors.js';
import { quote } from '../../util/shell.js';
import { defineStep, type Operation } from '../define.js';
import { parseLabel } from '../pg/backup-sql.js';
import { remoteSha256, run, writeRemoteFile } from '../remote-files.js';
import { checkIdentity, claimsOf, tookSomething } from './identity.js';
import { liveDataDirectory } from './live-datadir.js';
import { describeKept } from './manifest.js';

const StopOutputs = Type.Object(
  {
    lsn: Type.String(),
    labelfile: Type.String({ minLength: 1 }),
    spcmapfile: Type.String(),
    system_identifier: Type.Optional(Type.String()),
    data_directory: Type.Optional(Type.String()),
    postmaster_start_time: Type.Optional(Type.String()),
    version_num: Type.Optional(Type.Integer()),
    timeline: Type.Optional(Type.Integer()),
    stop_wal_file: Type.Optional(Type.String()),
    stopped_at: Type.Optional(Type.String()),
    seconds_in_backup: Type.Optional(Type.Number()),
    archived: Type.Optional(Type.Boolean()),
  },
  { description: 'the registered outputs of pg.backup_stop, e.g. "{{ stop }}"' },
);

const Params = Type.Object(
  {
    to: Type.String({ pattern: '^/', description: "the backup's own directory on the host (absolute)" }),
    from: StopOutputs,
    snapshots: Type.Optional(
      Type.Array(Type.Record(Type.String(), Type.Unknown()), {
        description:
          'what fs.snapshot or gcp.snapshot registered, e.g. ["{{ snap }}"]; skipped ones are left out',
      }),
    ),
    backup_id: Type.Optional(Type.String({ minLength: 1, description: 'default: the backup label' })),
  },
  { additionalProperties: false },
);

const Outputs = Type.Object({
  dir: Type.String(),
  manifest: Type.String({ description: 'path of manifest.json' }),
  backup_id: Type.String(),
  backup_label_sha256: Type.String(),
  tablespace_map_sha256: Type.Optional(Type.String()),
});

const sha256 = (s: string) => createHash('sha256').update(s, 'utf8').digest('hex');

/** The manifest a restore reads: enough to find, check and trust every piece of the backup. */
function manifest(
  p: { to: string; from: Record<string, unknown>; snapshots?: unknown[]; backup_id?: string },
  status: 'complete' | 'void',
  extra: Record<string, unknown> = {},
) {
  const labelfile = String(p.from.labelfile);
  const spcmap = String(p.from.spcmapfile ?? '');
  const info = parseLabel(labelfile);
  return {
    format: 'pgrunbook-backup/1',
    status,
    backup_id: p.backup_id ?? info.label ?? 'backup',
    label: info.label,
    pg_version_num: p.from.version_num,
    system_identifier: p.from.system_identifier,
    timeline: p.from.timeline ?? info.startTimeline,
    start_lsn: info.startLsn,
    start_wal_file: info.startWalFile,
    checkpoint_lsn: info.checkpointLsn,
    backup_from: info.backupFrom,
    stop_lsn: p.from.lsn,
    stop_wal_file: p.from.stop_wal_file,
    started_at: info.startTime,
    stopped_at: p.from.stopped_at,
    seconds_in_backup: p.from.seconds_in_backup,
    // Whether the WAL from start to stop was confirmed archived (PostgreSQL waited, or archive_dir had it).
    wal_archived: p.from.archived === true,
    // A provider step skipped by `when` (the playbook offers copy, btrfs and gcp) took nothing.
    snapshots: (p.snapshots ?? []).filter((x) => (x as { skipped?: unknown }).skipped !== true),
    files: {
      backup_label: { sha256: sha256(labelfile), bytes: Buffer.byteLength(labelfile) },
      ...(spcmap ? { tablespace_map: { sha256: sha256(spcmap), bytes: Buffer.byteLength(spcmap) } } : {}),
    },
    ...extra,
  };
}

export default defineStep({
  type: 'backup.write_labels',
  summary:
    'Write backup_label, tablespace_map and manifest.json byte for byte into the backup directory; refuses a live data directory.',
  params: Params,
  outputs: Outputs,
  mutating: true,
  marksChanges: true,
  undoSummary:
    'none: once its manifest says complete, the backup is kept whatever fails later, with the snapshot it names (their undo is taken off the stack); a failed run’s summary says where it is and how to delete it',
  // A few small files, written through become like the snapshot beside them.
  needs: (_ctx, p) => ({ writable: [{ path: p.to, param: 'to' }] }),
  plan(ctx, p) {
    const files = ['backup_label', ...(p.from.spcmapfile ? ['tablespace_map'] : []), 'manifest.json'];
    const ops: Operation[] = [
      {
        kind: 'note',
        text: `refuse if ${p.to} is the data directory of a running PostgreSQL (postmaster.pid, data_directory)`,
      },
      {
        kind: 'note',
        text: "refuse unless what the snapshots took (and the inventory's pgdata) is the labels' server: its data_directory (symlinks resolved) and its system identifier in global/pg_control",
      },
      { kind: 'command', line: `mkdir -p -m 700 ${quote(p.to)}` },
      ...files.map(
        (f): Operation => ({
          kind: 'note',
          text: `write ${p.to}/${f}${f === 'manifest.json' ? '' : ' exactly as PostgreSQL returned it'} (atomic rename)`,
        }),
      ),
      {
        kind: 'command',
        line: `sha256sum -- ${files
          .filter((f) => f !== 'manifest.json')
          .map((f) => quote(`${p.to}/${f}`))
          .join(' ')}`,
      },
    ];
    ops.push({
      kind: 'note',
      text: 'from here the backup is complete: kept whatever fails later, with its snapshot (not undone)',
    });
    void ctx;
    return { action: `keep the labels with the backup in ${p.to}`, ops };
  },
  async apply(ctx, p) {
    const t = await ctx.transport();
    const become = ctx.host.become;
    const pg = ctx.host.pg ? await ctx.pg().catch(() => undefined) : undefined;
    const live = await liveDataDirectory(t, p.to, pg, become);
    if (live)
      throw new StepFailure(
        `refusing to write backup_label: ${live}. Labels belong next to the backup, never in a live data directory.`,
      );
    // The labels describe the server pg.backup_stop ran on: refused for a copy of any other's
    // directory, before anything is written, so no manifest can call such a backup complete.
    const sysid = p.from.system_identifier;
    const dataDirectory = p.from.data_directory;
    if (!sysid || !dataDirectory)
      throw new StepFailure(
        'refusing to write backup_label: `from` does not say which server the labels describe (system_identifier, data_directory): pass what pg.backup_stop registered',
      );
    if (!tookSomething(p.snapshots))
      throw new StepFailure(
        'refusing to write backup_label: nothing ties the labels to copied data; pass what fs.snapshot or gcp.snapshot registered in `snapshots`',
      );
    const id = { system_identifier: sysid, data_directory: dataDirectory };
    const pairing = await checkIdentity(ctx, id, claimsOf(ctx.host, dataDirectory, p.snapshots));
    if (pairing.problems.length)
      throw new StepFailure(
        `refusing to write backup_label: the labels describe another server than what was copied:\n  - ${pairing.problems.join('\n  - ')}`,
      );
    for (const l of pairingLines(id, pairing)) ctx.log(`identity: ${l}`);
    const labelfile = p.from.labelfile;
    const spcmap = p.from.spcmapfile;
    ctx.changing();
    await run(
      t,
      `mkdir -p -m 700 ${quote(p.to)}\nif [ -e ${quote(`${p.to}/backup_label`)} ]; then echo "${p.to}/backup_label exists: another backup lives here" >&2; exit 17; fi`,
      `preparing ${p.to}`,
      { become, signal: ctx.signal },
    );
    await writeRemoteFile(t, `${p.to}/backup_label`, labelfile, { become, signal: ctx.signal });
    if (spcmap) await writeRemoteFile(t, `${p.to}/tablespace_map`, spcmap, { become, signal: ctx.signal });
    // Read back what is on disk: the files must be byte for byte what PostgreSQL returned.
    const sums = await remoteSha256(
      t,
      [`${p.to}/backup_label`, ...(spcmap ? [`${p.to}/tablespace_map`] : [])],
      become,
      ctx.signal,
    );
    if (sums.get(`${p.to}/backup_label`) !== sha256(labelfile))
      throw new StepFailure(`${p.to}/backup_label on disk differs from what PostgreSQL returned`);
    if (spcmap && sums.get(`${p.to}/tablespace_map`) !== sha256(spcmap))
      throw new StepFailure(`${p.to}/tablespace_map on disk differs from what PostgreSQL returned`);
    const m = manifest(p, 'complete', {
      written_at: new Date().toISOString(),
      // What was checked to be the labels' server before they were written.
      identity: {
        system_identifier: sysid,
        data_directory: dataDirectory,
        data_directory_realpath: pairing.data_directory_realpath,
        postmaster_start_time: p.from.postmaster_start_time,
        checked: pairing.claims.map((c) => ({
          what: c.what,
          dir: c.dir,
          realpath: c.realpath,
          pg_control: c.control,
          system_identifier: c.system_identifier,
        })),
      },
    });
    await writeRemoteFile(t, `${p.to}/manifest.json`, `${JSON.stringify(m, null, 2)}\n`, {
      become,
      signal: ctx.signal,
    });
    // Complete: a failure from here (its proof, a later step) keeps it, and the snapshot it names.
    ctx.keep(
      (p.snapshots ?? []).filter((x) => (x as { skipped?: unknown }).skipped !== true),
      `backup ${m.backup_id} is complete (labels and manifest in ${p.to})`,
    );
    ctx.log(`backup ${m.backup_id}: labels and manifest in ${p.to}`);
    return {
      dir: p.to,
      manifest: `${p.to}/manifest.json`,
      backup_id: m.backup_id,
      backup_label_sha256: sha256(labelfile),
      ...(spcmap ? { tablespace_map_sha256: sha256(spcmap) } : {}),
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

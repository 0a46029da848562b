// `backup.verify` and `backup.restore`: prove a backup restores. Materialise the snapshot in a
// scratch directory, put the stored labels in place (sha256 checked), recover from the archive to
// the first consistent point, run the checks, stop and clean up (verify) or leave it up (restore).
// A proof that fails keeps the backup: its manifest says `verify_failed`, with the reason.
import { createHash } from 'node:crypto';
import { Type } from '@sinclair/typebox';
import type { Transport } from '../../connections/transport.js';
import { StepFailure } from '../../errors.js';
import { done, notYet, poll } from '../../util/poll.js';
import { quote } from '../../util/shell.js';
import { type ApplyContext, defineStep, type Operation } from '../define.js';
import { becomeTransport } from '../remote-files.js';
import { type Manifest, readCheckedManifest, recordVerify } from './manifest.js';
import { placeTablespaces, tablespaceCopies } from './tablespaces.js';

const Params = Type.Object(
  {
    from: Type.String({
      pattern: '^/',
      description: 'the backup directory (manifest.json, backup_label, …)',
    }),
    scratch: Type.String({
      pattern: '^/',
      description: 'where to materialise the copy (must not exist; on the same btrfs for btrfs)',
    }),
    archive_dir: Type.Optional(
      Type.String({
        pattern: '^/',
        description:
          'WAL archive the restore_command copies from (required, except for a pg_basebackup backup: it carries its WAL)',
      }),
    ),
    data: Type.Optional(
      Type.String({ pattern: '^/', description: "the snapshot's data (default: from the manifest)" }),
    ),
    bin_dir: Type.Optional(
      Type.String({
        pattern: '^/',
        description: 'PostgreSQL binaries (default: host var pg_bin_dir, else /usr/lib/postgresql/MAJOR/bin)',
      }),
    ),
    run_as: Type.Optional(
      Type.String({
        minLength: 1,
        description: 'OS user the server runs as (default: host var pg_os_user, else postgres)',
      }),
    ),
    recovery_target: Type.Optional(
      Type.Union([Type.Literal('immediate'), Type.Literal('latest')], {
        description: 'immediate: stop at the end of the backup (default); latest: replay all archived WAL',
      }),
    ),
    db_user: Type.Optional(
      Type.String({ minLength: 1, description: 'database role for the checks (default postgres)' }),
    ),
    checks: Type.Optional(
      Type.Record(Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$' }), Type.String({ minLength: 1 }), {
        description: 'name → a SELECT run on the restored copy; rows are registered under checks.NAME',
      }),
    ),
    timeout: Type.Optional(
      Type.Number({ minimum: 1, description: 'seconds to reach consistency (default 120)' }),
    ),
    keep: Type.Optional(
      Type.Boolean({ description: 'verify: keep the scratch copy afterwards (default false)' }),
    ),
  },
  { additionalProperties: false },
);

const Outputs = Type.Object({
  backup_id: Type.String(),
  consistent_lsn: Type.String({ description: 'where recovery reached a consistent state' }),
  replay_lsn: Type.String(),
  checks: Type.Record(Type.String(), Type.Array(Type.Unknown())),
  seconds: Type.Number(),
  scratch: Type.String(),
});

type P = {
  from: string;
  scratch: string;
  archive_dir?: string;
  data?: string;
  bin_dir?: string;
  run_as?: string;
  db_user?: string;
  checks?: Record<string, string>;
  timeout?: number;
  keep?: boolean;
  recovery_target?: 'immediate' | 'latest';
};

// A socket path must stay under ~107 bytes: a short, private directory named after the scratch.
const sock = (p: P) => `/tmp/.pgrb-${createHash('sha1').update(p.scratch).digest('hex').slice(0, 12)}`;
/** Where the scratch copy's tablespaces live: beside it, never at the source's locations. */
const tblspc = (p: P) => `${p.scratch}.tblspc`;

/** A value for postgresql.conf: single-quoted, with ' and \\ escaped. */
const confValue = (v: string) => `'${v.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;

/** Binaries: the param, else the host var pg_bin_dir (the lab sets it), else Debian's layout. */
const binDir = (ctx: ApplyContext, p: P, major: number) =>
  p.bin_dir ??
  (typeof ctx.host.vars.pg_bin_dir === 'string'
    ? ctx.host.vars.pg_bin_dir
    : `/usr/lib/postgresql/${major}/bin`);

/** The server's OS user: the param, else the host var pg_os_user, else postgres. */
const runAs = (ctx: ApplyContext, p: P) =>
  p.run_as ?? (typeof ctx.host.vars.pg_os_user === 'string' ? ctx.host.vars.pg_os_user : 'postgres');
const log = (p: P) => `${p.scratch}.log`;

/** Runs a line as the server's OS user: runuser as root, sudo -n otherwise (unless already them). */
async function asUserFn(t: Transport, user: string): Promise<(line: string) => string> {
  const me = (await t.exec('id -un; id -u')).stdout.trim().split('\n');
  if (me[0] === user) return (line) => line;
  if (me[1] === '0') return (line) => `runuser -u ${quote(user)} -- sh -c ${quote(line)}`;
  return (line) => `sudo -n -u ${quote(user)} -- sh -c ${quote(line)}`;
}

async function sh(ctx: ApplyContext, t: Transport, script: string, what: string): Promise<string> {
  const r = await t.exec(script, { signal: ctx.signal });
  if (r.exitCode !== 0)
    throw new StepFailure(
      `${what} failed (exit ${r.exitCode ?? r.signal}): ${r.stderr.trim().split('\n').slice(-10).join('\n')}`,
    );
  return r.stdout;
}

/** How the backup's data is materialised: a copy, a btrfs snapshot, or pg_basebackup's output. */
type Provider = 'copy' | 'btrfs' | 'basebackup-plain' | 'basebackup-tar';

function materialise(provider: Provider, data: string, S: string): string[] {
  switch (provider) {
    case 'btrfs':
      return [
        `btrfs subvolume snapshot ${quote(data)} ${S} >/dev/null`,
        `rm -rf ${S}/pg_wal && mkdir -p ${S}/pg_wal/archive_status`,
      ];
    case 'basebackup-tar':
      // The WAL pg_basebackup streamed is part of the backup: it goes back into pg_wal.
      return [
        `mkdir -p -m 700 ${S} && tar -xf ${quote(`${data}/base.tar`)} -C ${S}`,
        `rm -rf ${S}/pg_wal && mkdir -p ${S}/pg_wal/archive_status`,
        `tar -xf ${quote(`${data}/pg_wal.tar`)} -C ${S}/pg_wal`,
      ];
    case 'basebackup-plain':
      return [
        `mkdir -p -m 700 ${S} && cp -a ${quote(`${data}/.`)} ${S}/`,
        `mkdir -p ${S}/pg_wal/archive_status && rm -f ${S}/pg_wal/archive_status/*`,
      ];
    default:
      return [
        `mkdir -p -m 700 ${S} && cp -a ${quote(`${data}/.`)} ${S}/`,
        `rm -rf ${S}/pg_wal && mkdir -p ${S}/pg_wal/archive_status`,
      ];
  }
}

function prepareScript(p: P, m: Manifest, data: string, provider: Provider): string {
  const S = quote(p.scratch);
  const spaces = tablespaceCopies(m);
  // Without an archive (a pg_basebackup backup, which carries its WAL), recovery reads pg_wal
  // alone: a restore_command that finds nothing makes it fall back there.
  const restore = p.archive_dir ? `cp ${quote(p.archive_dir)}/%f "%p"` : 'false';
  const settings = [
    'port = 5432',
    "listen_addresses = ''",
    `unix_socket_directories = ${confValue(sock(p))}`,
    `hba_file = ${confValue(`${p.scratch}/pgrunbook_hba.conf`)}`,
    `restore_command = ${confValue(restore)}`,
    // Nothing the source configured may act from the copy: no archiving, no archive clean-up,
    // no replication to or from it, no recovery-end hook.
    "archive_command = ''",
    "archive_cleanup_command = ''",
    "recovery_end_command = ''",
    "primary_conninfo = ''",
    "primary_slot_name = ''",
    ...((m.pg_version_num ?? 0) >= 150000 ? ["archive_library = ''"] : []),
    ...(p.recovery_target === 'latest'
      ? ["recovery_target_timeline = 'latest'"]
      : ["recovery_target = 'immediate'", "recovery_target_action = 'pause'"]),
    "archive_mode = 'off'",
    "hot_standby = 'on'",
    "logging_collector = 'off'",
    "shared_preload_libraries = ''",
    "cluster_name = 'pgrunbook-verify'",
  ];
  return [
    'set -e',
    `if [ -e ${S} ]; then echo ${quote(`${p.scratch} exists already`)} >&2; exit 17; fi`,
    ...materialise(provider, data, S),
    `rm -f ${S}/postmaster.pid ${S}/postmaster.opts ${S}/recovery.signal ${S}/standby.signal ${S}/backup_label ${S}/tablespace_map`,
    `rm -rf ${S}/pg_replslot/* ${S}/pg_stat_tmp/*`,
    // The stored labels, byte for byte, then checked against the manifest.
    `cp ${quote(`${p.from}/backup_label`)} ${S}/backup_label`,
    // Tablespaces: copy each from the backup and point a remapped tablespace_map at the copies.
    // The stored tablespace_map names the SOURCE's directories: used as is, recovery would write
    // into a live server's tablespaces. The stored file stays untouched (its sha256 was checked).
    ...placeTablespaces(
      p.scratch,
      spaces.map((t) => ({ oid: t.oid, copy: t.path, dest: `${tblspc(p)}/${t.oid}` })),
    ),
    `sha256sum ${S}/backup_label`,
    `[ -f ${S}/postgresql.conf ] || : > ${S}/postgresql.conf`,
    `printf 'local all all trust\\n' > ${S}/pgrunbook_hba.conf`,
    `printf '%s\\n' ${settings.map(quote).join(' ')} >> ${S}/postgresql.auto.conf`,
    `touch ${S}/recovery.signal`,
    `mkdir -p -m 700 ${quote(sock(p))}`,
  ].join('\n');
}

/** Settings a hot standby needs at least as high as the primary had, read from pg_control. */
function controlSettings(controldata: string): string[] {
  const map: Record<string, string> = {
    'max_connections setting': 'max_connections',
    'max_worker_processes setting': 'max_worker_processes',
    'max_wal_senders setting': 'max_wal_senders',
    'max_prepared_xacts setting': 'max_prepared_transactions',
    'max_locks_per_xact setting': 'max_locks_per_transaction',
  };
  const out: string[] = [];
  for (const [k, name] of Object.entries(map)) {
    const m = controldata.match(new RegExp(`^${k}:\\s+(\\d+)$`, 'm'));
    if (m) out.push(`${name} = ${m[1]}`);
  }
  return out;
}

async function materialiseAndStart(
  ctx: ApplyContext,
  p: P,
  st: StartState,
): Promise<{ m: Manifest; asUser: (l: string) => string; bin: string; started: number }> {
  const t = await becomeTransport(ctx);
  const started = Date.now();
  const m = await readCheckedManifest(t, p.from, ctx.signal, { unproven: true });
  st.manifest = m;
  const snap = m.snapshots?.[0] ?? {};
  const basebackup = snap.provider === 'pg_basebackup';
  if (basebackup && snap.tablespaces_in_copy?.length)
    throw new StepFailure(
      `the pg_basebackup backup in ${p.from} holds tablespaces (${snap.tablespaces_in_copy.join(', ')}): backup.verify does not restore those yet (their links would point the restored copy at the backup's own files)`,
    );
  tablespaceCopies(m);
  if (!p.archive_dir && !(basebackup && m.wal_included))
    throw new StepFailure(
      'archive_dir is needed: the WAL this backup recovers from is in the archive (only a pg_basebackup backup carries its own)',
    );
  const data = p.data ?? snap.data;
  if (!data)
    throw new StepFailure(
      snap.provider === 'gcp'
        ? 'no snapshot data: this backup is GCP disk snapshots; prove it with playbooks/gcp-restore-verify.yml (a disk from its snapshot, mounted), or give data: the data directory of such a disk'
        : 'no snapshot data: the manifest names none; give data:',
    );
  const provider: Provider = basebackup
    ? snap.format === 'tar'
      ? 'basebackup-tar'
      : 'basebackup-plain'
    : snap.provider === 'btrfs'
      ? 'btrfs'
      : 'copy';
  const major = Math.floor((m.pg_version_num ?? 150000) / 10000);
  const bin = binDir(ctx, p, major);
  const user = runAs(ctx, p);
  const asUser = await asUserFn(t, user);
  // pg_basebackup's own manifest: every file's checksum and the WAL from start to stop, checked
  // by PostgreSQL's tool before the restore (plain format; the binary ships from 13 on), as the
  // server's user, whose the copy is.
  if (provider === 'basebackup-plain' && m.backup_manifest) {
    const tool = `${bin}/pg_verifybackup`;
    const r = await t.exec(
      `if [ ! -x ${quote(tool)} ]; then echo absent; exit 0; fi\n${asUser(`${quote(tool)} --wal-directory=${quote(`${data}/pg_wal`)} ${quote(data)} 2>&1`)}`,
      { signal: ctx.signal },
    );
    const said = r.stdout.trim().split('\n');
    if (r.exitCode !== 0)
      throw new StepFailure(
        `pg_verifybackup failed on the copy in ${data} (a file differs from its backup_manifest, or could not be read):\n${said.slice(-10).join('\n')}`,
      );
    ctx.log(
      said[0] === 'absent'
        ? `${tool} is not installed: the copy was not checked against its backup_manifest`
        : `pg_verifybackup ${data}: ${said.pop()}`,
    );
  }
  // Someone else's directory is never ours to clean up.
  const exists = await t.exec(`test -e ${quote(p.scratch)} || test -e ${quote(tblspc(p))}`);
  if (exists.exitCode === 0)
    throw new StepFailure(`${p.scratch} (or ${tblspc(p)}) exists already: choose another scratch`);
  Object.assign(st, { created: true, btrfs: provider === 'btrfs', bin, asUser });
  const out = await sh(ctx, t, prepareScript(p, m, data, provider), `materialising ${data} in ${p.scratch}`);
  if (!out.startsWith(m.files.backup_label.sha256))
    throw new StepFailure(`backup_label in ${p.scratch} differs from the stored one`);
  // Not every build ships pg_controldata (embedded ones do not): then the defaults stand.
  const cd = (
    await t.exec(`${quote(`${bin}/pg_controldata`)} ${quote(p.scratch)} 2>/dev/null`, { signal: ctx.signal })
  ).stdout;
  const extra = controlSettings(cd);
  await sh(
    ctx,
    t,
    [
      extra.length
        ? `printf '%s\\n' ${extra.map(quote).join(' ')} >> ${quote(`${p.scratch}/postgresql.auto.conf`)}`
        : ':',
      `if [ "$(id -u)" = 0 ]; then chown -R ${quote(user)}: ${quote(p.scratch)} ${quote(sock(p))}; [ ! -d ${quote(tblspc(p))} ] || chown -R ${quote(user)}: ${quote(tblspc(p))}; touch ${quote(log(p))}; chown ${quote(user)}: ${quote(log(p))}; fi`,
      `chmod 700 ${quote(p.scratch)}`,
    ].join('\n'),
    'handing the copy to the server user',
  );
  const timeout = p.timeout ?? 120;
  const start = await t.exec(
    asUser(
      `${quote(`${bin}/pg_ctl`)} -D ${quote(p.scratch)} -l ${quote(log(p))} -w -t ${Math.ceil(timeout)} start`,
    ),
    { signal: ctx.signal },
  );
  if (start.exitCode !== 0) {
    const tail = (await t.exec(`tail -n 25 ${quote(log(p))}`)).stdout;
    // pg_ctl's own complaint (it could not run the server at all) is on its stderr, not in the log.
    const said = [start.stderr.trim(), tail.trim()].filter(Boolean).join('\n');
    throw new StepFailure(
      `the restored copy did not start or reach consistency within ${timeout}s (pg_ctl exit ${start.exitCode ?? start.signal}):\n${said}`,
    );
  }
  return { m, asUser, bin, started };
}

async function psqlJson(
  ctx: ApplyContext,
  t: Transport,
  p: P,
  bin: string,
  asUser: (l: string) => string,
  sql: string,
): Promise<unknown[]> {
  const wrapped = `select coalesce(json_agg(t), '[]'::json) from (${sql.trim().replace(/;\s*$/, '')}) t`;
  if (t.kind === 'local') {
    // Same machine: talk to the socket directly (no psql needed, e.g. with embedded binaries).
    const { default: driver } = await import('pg');
    const c = new driver.Client({
      host: sock(p),
      port: 5432,
      user: p.db_user ?? 'postgres',
      database: 'postgres',
    });
    c.on('error', () => {});
    try {
      await c.connect();
      const r = await c.query(wrapped);
      return (r.rows[0] as { coalesce: unknown[] }).coalesce;
    } catch (err) {
      throw new StepFailure(`check failed on the restored copy: ${(err as Error).message}`);
    } finally {
      await c.end().catch(() => {});
    }
  }
  const line = asUser(
    `${quote(`${bin}/psql`)} -h ${quote(sock(p))} -p 5432 -U ${quote(p.db_user ?? 'postgres')} -d postgres -AtX -v ON_ERROR_STOP=1 -c ${quote(wrapped)}`,
  );
  const r = await t.exec(line, { signal: ctx.signal });
  if (r.exitCode !== 0) throw new StepFailure(`check failed on the restored copy: ${r.stderr.trim()}`);
  return JSON.parse(r.stdout.trim()) as unknown[];
}

/** Stops the restored server (always) and removes the copy (unless kept). */
function cleanupScript(
  p: P,
  bin: string,
  asUser: (l: string) => string,
  btrfs: boolean,
  removeFiles = true,
): string {
  const stop = `${asUser(`${quote(`${bin}/pg_ctl`)} -D ${quote(p.scratch)} -m fast -w stop`)} >/dev/null 2>&1 || true`;
  if (!removeFiles) return stop;
  return [
    stop,
    btrfs
      ? `btrfs subvolume delete ${quote(p.scratch)} >/dev/null 2>&1 || rm -rf -- ${quote(p.scratch)}`
      : `rm -rf -- ${quote(p.scratch)}`,
    `rm -rf -- ${quote(tblspc(p))} ${quote(sock(p))} ${quote(log(p))}`,
  ].join('\n');
}

/** What materialiseAndStart got as far as, so a failure cleans up exactly what it made. */
interface StartState {
  /** the backup's manifest, once read and checked: from then on a failure is a failed proof */
  manifest?: Manifest;
  created: boolean;
  btrfs: boolean;
  bin?: string;
  asUser?: (l: string) => string;
}

async function verifyApply(ctx: ApplyContext, p: P, keepRunning: boolean) {
  const t = await becomeTransport(ctx);
  const st: StartState = { created: false, btrfs: false };
  try {
    const { m, asUser, bin, started } = await materialiseAndStart(ctx, p, st);
    // Recovery pauses at the target (the first consistent point): wait for that, then read where.
    const v = m.pg_version_num ?? 150000;
    const paused = v >= 140000 ? "pg_get_wal_replay_pause_state() = 'paused'" : 'pg_is_wal_replay_paused()';
    const latest = p.recovery_target === 'latest';
    // On a promoted copy the pause functions fail: after promotion only pg_is_in_recovery counts.
    const q = latest
      ? 'select pg_is_in_recovery() as rec, pg_last_wal_replay_lsn()::text as replay'
      : `select pg_is_in_recovery() as rec, ${paused} as paused, pg_last_wal_replay_lsn()::text as replay`;
    // No signal: this wait has never been abortable between attempts (kept as it was).
    const state = await poll(
      async () => {
        const row = (await psqlJson(ctx, t, p, bin, asUser, q))[0] as Record<string, unknown>;
        // immediate: recovery pauses at the target; latest: it ends (promotes) after the last WAL.
        return (latest ? row.rec === false : row.paused === true) ? done(row) : notYet(row);
      },
      {
        timeoutMs: (p.timeout ?? 120) * 1000,
        intervalMs: 200,
        onTimeout: (last) =>
          new StepFailure(
            `recovery did not reach its target within ${p.timeout ?? 120}s (replayed to ${last?.replay})`,
          ),
      },
    );
    const logText = (await t.exec(`cat ${quote(log(p))}`)).stdout;
    const consistent =
      logText.match(/consistent recovery state reached at ([0-9A-F]+\/[0-9A-F]+)/)?.[1] ??
      String(state.replay);
    const checks: Record<string, unknown[]> = {};
    for (const [name, sql] of Object.entries(p.checks ?? {}))
      checks[name] = await psqlJson(ctx, t, p, bin, asUser, sql);
    ctx.log(
      `backup ${m.backup_id} restored: consistent at ${consistent}, ${Object.keys(checks).length} check(s) run`,
    );
    if (!keepRunning) await t.exec(cleanupScript(p, bin, asUser, st.btrfs, !p.keep)).catch(() => {});
    // A backup kept unproven by an earlier proof is trusted again once one succeeds.
    if (!keepRunning && m.status === 'verify_failed') {
      await recordVerify(
        await ctx.transport(),
        p.from,
        { status: 'ok', at: new Date().toISOString(), consistent_lsn: consistent },
        { become: ctx.host.become, signal: ctx.signal },
      );
      ctx.log(`backup ${m.backup_id} proven: ${p.from}/manifest.json says complete again`);
    }
    return {
      backup_id: m.backup_id,
      consistent_lsn: consistent,
      replay_lsn: String(state.replay),
      checks,
      seconds: (Date.now() - started) / 1000,
      scratch: p.scratch,
    };
  } catch (err) {
    const tail = (await t.exec(`tail -n 15 ${quote(log(p))} 2>/dev/null`).catch(() => ({ stdout: '' })))
      .stdout;
    // Whatever failed, a server we started is stopped; the files go unless keep: true.
    if (st.created && st.bin && st.asUser) {
      await t.exec(cleanupScript(p, st.bin, st.asUser, st.btrfs, !p.keep)).catch(() => {});
    }
    const reason =
      err instanceof StepFailure && tail
        ? `${err.message}\nlast lines of the restored server's log:\n${tail}`
        : (err as Error).message;
    // The proof failed, not the backup necessarily (a port in use, a missing binary): it is kept,
    // marked so that nothing restores it unproven. An interrupted proof proved nothing either way.
    if (!keepRunning && st.manifest && !ctx.signal.aborted) {
      const marked = await recordVerify(
        await ctx.transport(),
        p.from,
        { status: 'failed', at: new Date().toISOString(), reason },
        { become: ctx.host.become },
      ).then(
        () => `the backup is kept, marked verify_failed in ${p.from}/manifest.json`,
        (e: unknown) => `marking ${p.from}/manifest.json verify_failed failed too: ${(e as Error).message}`,
      );
      throw new StepFailure(`${reason}\n${marked}`);
    }
    if (err instanceof StepFailure && tail) throw new StepFailure(reason);
    throw err;
  }
}

function planOps(p: P, keepRunning: boolean): Operation[] {
  return [
    { kind: 'command', line: `cat ${quote(`${p.from}/manifest.json`)}` },
    {
      kind: 'note',
      text: `check ${p.from}/backup_label (and tablespace_map) against the manifest's sha256; refuse a void backup`,
    },
    {
      kind: 'note',
      text: 'if the manifest says pg_basebackup (plain format): pg_verifybackup (when installed) checks the copy against its backup_manifest first, as the server user',
    },
    {
      kind: 'note',
      text: `materialise the snapshot in ${p.scratch} (cp -a, a writable btrfs snapshot, or pg_basebackup's tar files extracted); drop postmaster.pid, and pg_wal unless the backup carries its WAL; put the stored labels in place`,
    },
    {
      kind: 'note',
      text: `recovery.signal with ${p.archive_dir ? `restore_command = 'cp ${p.archive_dir}/%f "%p"'` : 'the WAL a pg_basebackup backup carries (no archive)'}, ${p.recovery_target === 'latest' ? 'replaying all archived WAL' : "recovery_target = 'immediate'"}, archive_mode = off; no TCP (socket in ${sock(p)})`,
    },
    {
      kind: 'command',
      line: `pg_ctl -D ${quote(p.scratch)} -l ${quote(log(p))} -w -t ${Math.ceil(p.timeout ?? 120)} start   (as ${p.run_as ?? 'postgres'})`,
    },
    ...Object.entries(p.checks ?? {}).map(
      ([n, sql]): Operation => ({ kind: 'sql', sql: `-- check ${n} on the restored copy\n${sql}` }),
    ),
    ...(keepRunning
      ? []
      : [
          {
            kind: 'note' as const,
            text: `if the proof fails: the backup is kept, ${p.from}/manifest.json marked "verify_failed" with the reason; one that succeeds marks a verify_failed backup complete again`,
          },
        ]),
    {
      kind: 'note',
      text: keepRunning
        ? 'leave the restored copy running'
        : p.keep
          ? 'stop it, keep the scratch copy'
          : 'stop it and remove the scratch copy',
    },
  ];
}

/** backup.verify */
export const verifyStep = defineStep({
  type: 'backup.verify',
  summary:
    'Restore a backup into a scratch directory, recover to consistency from the archive, run checks, then stop and clean up; a failed proof keeps the backup and marks its manifest verify_failed (with the reason).',
  params: Params,
  outputs: Outputs,
  mutating: false,
  undoSummary: 'none: it cleans up after itself',
  plan(_ctx, p) {
    return { action: `verify the backup in ${p.from} restores`, ops: planOps(p, false) };
  },
  apply: (ctx, p) => verifyApply(ctx, p, false),
});

/** backup.restore */
export const restoreStep = defineStep({
  type: 'backup.restore',
  summary:
    'Restore a backup into a scratch directory and leave it running (paused at consistency) for inspection.',
  params: Params,
  outputs: Outputs,
  mutating: true,
  undoSummary: 'stops the restored server and removes the scratch copy',
  plan(_ctx, p) {
    return {
      action: `restore the backup in ${p.from} to ${p.scratch}`,
      ops: planOps(p, true),
      undo: {
        action: 'stop the restored copy and remove it',
        ops: [{ kind: 'note', text: `pg_ctl stop -D ${p.scratch}; rm -rf ${p.scratch}` }],
      },
    };
  },
  apply: (ctx, p) => verifyApply(ctx, p, true),
  async undo(ctx, p) {
    const t = await becomeTransport(ctx);
    const m = JSON.parse(
      (await t.exec(`cat ${quote(`${p.from}/manifest.json`)}`)).stdout || '{}',
    ) as Manifest;
    const major = Math.floor((m.pg_version_num ?? 150000) / 10000);
    const asUser = await asUserFn(t, runAs(ctx, p));
    await t.exec(cleanupScript(p, binDir(ctx, p, major), asUser, m.snapshots?.[0]?.provider === 'btrfs'));
  },
});

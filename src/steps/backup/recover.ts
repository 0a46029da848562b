// `backup.recover`: put a backup back as a server's data directory, in place — the rollback of a
// major upgrade. The snapshot is copied into `data_dir` (which must not exist: the playbook moves
// the damaged directory aside first), the stored labels go in byte for byte, and the server is
// started once with recovery settings given on the command line only (nothing is written into
// its configuration): WAL from the archive (and from `wal_dirs`, e.g. the old pg_wal that still
// holds the last, never archived segment), promoted at the end, no TCP, then stopped cleanly on
// its new timeline, ready for Patroni or the service to start it. Tablespaces go back to the
// locations the backup's tablespace_map names (see tablespaces.ts).
import { Type } from '@sinclair/typebox';
import { asUser, serverUser } from '../../connections/run-as.js';
import { commandLine, type Transport } from '../../connections/transport.js';
import { StepFailure } from '../../errors.js';
import { quote } from '../../util/shell.js';
import { type ApplyContext, defineStep, type PlanContext } from '../define.js';
import { type Manifest, readCheckedManifest } from './manifest.js';
import {
  chownPlaced,
  parseTablespaceMap,
  placeTablespaces,
  refuseOccupied,
  type TablespacePlacement,
  tablespaceCopies,
} from './tablespaces.js';

const Params = Type.Object(
  {
    from: Type.String({
      pattern: '^/',
      description: 'the backup directory (manifest.json, backup_label, …)',
    }),
    data_dir: Type.String({ pattern: '^/', description: 'where the server will run from (must not exist)' }),
    bin_dir: Type.String({ pattern: '^/', description: "binaries of the backup's major version" }),
    archive_dir: Type.String({ pattern: '^/', description: 'the WAL archive' }),
    wal_dirs: Type.Optional(
      Type.Array(Type.String({ pattern: '^/' }), {
        description:
          'directories searched for WAL before the archive (the old pg_wal: its last segment was never archived)',
      }),
    ),
    target: Type.Optional(
      Type.Union([Type.Literal('latest'), Type.Literal('immediate')], {
        description:
          "latest (default): replay every WAL record found on the backup's timeline (WAL of another system ends the replay); immediate: stop where the backup became consistent",
      }),
    ),
    data: Type.Optional(
      Type.Union([Type.String({ pattern: '^/' }), Type.Literal('')], {
        description: "the snapshot's data (default, or empty: from the manifest)",
      }),
    ),
    reach_lsn: Type.Optional(
      Type.String({
        pattern: '^([0-9A-Fa-f]+/[0-9A-Fa-f]+)?$',
        description:
          "the source's last checkpoint (e.g. the old leader's shutdown checkpoint): recovery must have replayed past it, else the step fails (empty: no check)",
      }),
    ),
    timeout: Type.Optional(Type.Integer({ minimum: 1, description: 'seconds for recovery (default 600)' })),
    run_as: Type.Optional(
      Type.String({ minLength: 1, description: 'OS user (default: host var pg_os_user, else postgres)' }),
    ),
  },
  { additionalProperties: false },
);

const Outputs = Type.Object({
  backup_id: Type.String(),
  data_dir: Type.String(),
  seconds: Type.Number(),
  timeline: Type.Integer({ description: 'the timeline after promotion' }),
  checkpoint_lsn: Type.String({ description: 'its shutdown checkpoint' }),
  pause_dropped: Type.Boolean({
    description: "the snapshot's patroni.dynamic.json held a saved pause, which was removed",
  }),
  tablespaces: Type.Array(Type.Object({ oid: Type.String(), location: Type.String() }), {
    description: 'each tablespace restored, at the location its tablespace_map names',
  }),
});

type P = typeof Params.static;

function restoreCommand(p: P): string {
  const tries = [...(p.wal_dirs ?? []), p.archive_dir].map((d) => `cp ${quote(`${d}`)}/%f "%p" 2>/dev/null`);
  return tries.join(' || ');
}

const log = (p: P) => `${p.data_dir}.recover.log`;

/**
 * pg_ctl -o: pg_ctl hands this string to /bin/sh, so each `-c name=value` is one sh-quoted word
 * (values on the command line need no configuration-file quoting).
 */
function options(p: P): string {
  const o = [
    `restore_command=${restoreCommand(p)}`,
    // The backup's own timeline only: a shared archive may hold the new major's history files
    // (same numbering, another system), which `latest` would follow.
    'recovery_target_timeline=current',
    ...(p.target === 'immediate' ? ['recovery_target=immediate'] : []),
    'recovery_target_action=promote',
    // pg_ctl -w then returns only once recovery has ended and the server promoted.
    'hot_standby=off',
    'archive_mode=off',
    'listen_addresses=',
    `unix_socket_directories=${p.data_dir}`,
  ];
  return o.map((x) => `-c ${quote(x)}`).join(' ');
}

/**
 * Copies the snapshot in, as the login (through become): the server user may not read it. Each
 * tablespace goes back to the location the stored tablespace_map names (where the source had it),
 * and the data directory gets a tablespace_map naming them: recovery makes pg_tblspc's links.
 * Nothing is written unless the data directory and what each tablespace copy holds (its PG_*
 * version directory) are absent from their destinations.
 */
function copyScript(p: P, data: string, user: string, spaces: TablespacePlacement[]): string {
  const D = quote(p.data_dir);
  return [
    'set -e',
    `if [ -e ${D} ]; then echo 'pgrunbook: ${p.data_dir.replace(/'/g, '')} exists: move it aside first' >&2; exit 17; fi`,
    ...refuseOccupied(spaces),
    `mkdir -p -m 700 ${D}`,
    `cp -a ${quote(`${data}/.`)} ${D}/`,
    `rm -f ${D}/postmaster.pid ${D}/postmaster.opts ${D}/recovery.signal ${D}/standby.signal ${D}/backup_label ${D}/tablespace_map`,
    `rm -rf ${D}/pg_wal && mkdir -p ${D}/pg_wal/archive_status`,
    `rm -rf ${D}/pg_replslot/* ${D}/pg_stat_tmp/*`,
    `cp ${quote(`${p.from}/backup_label`)} ${D}/backup_label`,
    ...placeTablespaces(p.data_dir, spaces),
    `touch ${D}/recovery.signal`,
    `if [ "$(id -u)" = 0 ]; then chown -R ${quote(user)}: ${D}; : > ${quote(log(p))}; chown ${quote(user)}: ${quote(log(p))}; fi`,
    ...(spaces.length ? [`if [ "$(id -u)" = 0 ]; then`, ...chownPlaced(spaces, user), 'fi'] : []),
    `sha256sum ${D}/backup_label`,
  ].join('\n');
}

function recoverScript(p: P): string {
  const ctl = quote(`${p.bin_dir}/pg_ctl`);
  const D = quote(p.data_dir);
  const L = quote(log(p));
  const limit = (p.timeout ?? 600) * 10;
  return [
    `${ctl} start -D ${D} -w -t ${p.timeout ?? 600} -l ${L} -o ${quote(options(p))} || { tail -n 30 ${L} >&2; exit 1; }`,
    // pg_ctl -w also returns for a server still in recovery ("standby" in postmaster.pid): the end
    // of recovery is when recovery.signal is gone and the postmaster says "ready". Stopping any
    // earlier would leave a copy that never replayed the last WAL.
    `i=0; while [ -e ${D}/recovery.signal ] || [ "$(sed -n 8p ${D}/postmaster.pid 2>/dev/null | tr -d ' ')" != ready ]; do`,
    `  [ -f ${D}/postmaster.pid ] || { echo 'the server exited during recovery' >&2; tail -n 30 ${L} >&2; exit 1; }`,
    `  i=$((i+1)); if [ $i -gt ${limit} ]; then echo 'recovery did not end in time' >&2; tail -n 30 ${L} >&2; ${ctl} stop -D ${D} -m fast -w >/dev/null 2>&1; exit 1; fi`,
    '  sleep 0.1',
    'done',
    `${ctl} stop -D ${D} -m fast -w || exit 1`,
    `LC_ALL=C ${quote(`${p.bin_dir}/pg_controldata`)} -D ${D}`,
  ].join('\n');
}

const as = (ctx: PlanContext, p: P, s: string) => asUser(ctx.host, serverUser(ctx.host, p.run_as), s);

/**
 * Patroni saves its dynamic configuration in the data directory, pause included. A snapshot taken
 * while the cluster was paused (as every backup in a maintenance window is) would start the
 * restored cluster paused: Patroni reads the file when the DCS is empty, and a paused Patroni
 * never starts PostgreSQL. The restored copy keeps everything else in it.
 */
const dynamicJson = (p: P) => `${p.data_dir}/patroni.dynamic.json`;
const readDynamicLine = (ctx: PlanContext, p: P) =>
  as(ctx, p, `f=${quote(dynamicJson(p))}; [ -e "$f" ] || exit 3; cat -- "$f"`);
const writeDynamicLine = (ctx: PlanContext, p: P) =>
  as(
    ctx,
    p,
    `set -e\n(umask 077 && cat > ${quote(`${dynamicJson(p)}.pgrunbook-tmp`)})\nmv -f -- ${quote(`${dynamicJson(p)}.pgrunbook-tmp`)} ${quote(dynamicJson(p))}`,
  );

/** The file without a saved pause, or undefined when it holds none. */
export function withoutSavedPause(text: string): string | undefined {
  let conf: unknown;
  try {
    conf = JSON.parse(text);
  } catch {
    throw new StepFailure('patroni.dynamic.json in the restored copy is not JSON');
  }
  if (!conf || typeof conf !== 'object' || Array.isArray(conf) || !('pause' in conf)) return undefined;
  const { pause: _, ...rest } = conf as Record<string, unknown>;
  return `${JSON.stringify(rest)}\n`;
}

export default defineStep({
  type: 'backup.recover',
  summary:
    "Restore a backup in place as a server's data directory: copy, labels, recover from the archive, promote, stop cleanly.",
  params: Params,
  outputs: Outputs,
  mutating: true,
  undoSummary:
    'none: the restored directory stays (it is what a rollback wants); rerun after moving it aside',
  plan(ctx, p) {
    return {
      action: `restore the backup in ${p.from} as ${p.data_dir}, recovering to ${p.target ?? 'latest'}${p.reach_lsn ? ` (refused unless it replays past ${p.reach_lsn})` : ''}`,
      ops: [
        { kind: 'note', text: `check ${p.from}/manifest.json is complete and the labels' sha256` },
        {
          kind: 'command',
          line: commandLine(
            {
              script: copyScript(
                p,
                '(the snapshot named in the manifest)',
                serverUser(ctx.host, p.run_as),
                [],
              ),
            },
            ctx.host.become,
          ),
        },
        {
          kind: 'note',
          text: `with tablespaces: each copy goes back to the location the stored tablespace_map names (refused before anything is written if its PG_* directory is there: move it aside first), and ${p.data_dir}/tablespace_map names them`,
        },
        { kind: 'command', line: as(ctx, p, recoverScript(p)) },
        {
          kind: 'note',
          text: `then drop a saved pause from ${dynamicJson(p)} if it holds one (a snapshot taken while Patroni was paused would start the restored cluster paused)`,
        },
        { kind: 'command', line: readDynamicLine(ctx, p) },
      ],
    };
  },
  async apply(ctx: ApplyContext, p) {
    const t = await ctx.transport();
    const become = {
      exec: (line: string, o: { signal?: AbortSignal }) =>
        t.exec(commandLine({ script: line }, ctx.host.become), o),
    };
    const m = await readCheckedManifest(
      { ...t, exec: become.exec, kind: t.kind, close: t.close },
      p.from,
      ctx.signal,
    );
    const spaces = await placements(m, p, become, ctx.signal);
    const data = p.data || m.snapshots?.[0]?.data;
    if (!data) throw new StepFailure(`no snapshot data: the manifest in ${p.from} names none; give data:`);
    const started = Date.now();
    const copy = await become.exec(copyScript(p, data, serverUser(ctx.host, p.run_as), spaces), {
      signal: ctx.signal,
    });
    if (copy.exitCode !== 0)
      throw new StepFailure(
        copy.exitCode === 17
          ? copy.stderr.trim().replace(/^pgrunbook: /, '')
          : `copying ${data} into ${p.data_dir} failed: ${copy.stderr.trim().slice(-800)}`,
      );
    if (!copy.stdout.trim().startsWith(m.files.backup_label.sha256))
      throw new StepFailure(`backup_label in ${p.data_dir} differs from the stored one`);
    ctx.log(
      `copied ${data} into ${p.data_dir}${spaces.length ? ` and ${spaces.length} tablespace(s) to ${spaces.map((s) => s.dest).join(', ')}` : ''}; recovering`,
    );
    const r = await t.exec(as(ctx, p, recoverScript(p)), { signal: ctx.signal });
    if (r.exitCode !== 0)
      throw new StepFailure(`recovery of ${p.data_dir} failed:\n${r.stderr.trim().slice(-2000)}`);
    const f = Object.fromEntries(
      r.stdout.split('\n').flatMap((l) => {
        const i = l.indexOf(':');
        return i > 0 ? [[l.slice(0, i).trim(), l.slice(i + 1).trim()]] : [];
      }),
    );
    const seconds = (Date.now() - started) / 1000;
    const timeline = Number(f["Latest checkpoint's TimeLineID"]);
    const redo = f["Latest checkpoint's REDO location"] ?? '';
    // After promotion and a clean stop, the last checkpoint starts where recovery ended: short of
    // the source's last checkpoint means WAL was missing and writes are not in this copy.
    if (p.reach_lsn && !(lsnValue(redo) > lsnValue(p.reach_lsn)))
      throw new StepFailure(
        `recovery of ${p.data_dir} ended at ${redo}, not past ${p.reach_lsn} (the source's last checkpoint): WAL is missing from the archive and ${(p.wal_dirs ?? []).join(', ') || 'the WAL directories'}; the restored copy lacks the last writes and is left stopped`,
      );
    const pauseDropped = await dropSavedPause(ctx, p, t);
    ctx.log(
      `recovered and promoted in ${seconds.toFixed(1)} s: timeline ${timeline}, stopped cleanly (${f['Database cluster state']})`,
    );
    return {
      backup_id: m.backup_id,
      data_dir: p.data_dir,
      seconds,
      timeline,
      checkpoint_lsn: f['Latest checkpoint location'] ?? '',
      pause_dropped: pauseDropped,
      tablespaces: spaces.map((s) => ({ oid: s.oid, location: s.dest })),
    };
  },
});

/**
 * Where each tablespace copy goes: the location the stored tablespace_map names (sha256-checked
 * with the manifest), i.e. where the source had it — what an in-place rollback restores.
 */
async function placements(
  m: Manifest,
  p: P,
  t: { exec: (line: string, o: { signal?: AbortSignal }) => ReturnType<Transport['exec']> },
  signal: AbortSignal,
): Promise<TablespacePlacement[]> {
  if (!m.files.tablespace_map) {
    if ((m.snapshots?.[0]?.tablespaces ?? []).length > 0)
      throw new StepFailure(
        `the backup in ${p.from} holds tablespace copies but no tablespace_map naming their locations: refusing`,
      );
    return [];
  }
  const r = await t.exec(`cat ${quote(`${p.from}/tablespace_map`)}`, { signal });
  if (r.exitCode !== 0)
    throw new StepFailure(`reading ${p.from}/tablespace_map failed: ${r.stderr.trim().slice(-300)}`);
  const map = parseTablespaceMap(r.stdout);
  const data = p.data_dir.replace(/\/+$/, '');
  return tablespaceCopies(m, map).map((c) => {
    const dest = map.get(c.oid)!;
    if (dest === data || dest.startsWith(`${data}/`))
      throw new StepFailure(
        `tablespace ${c.oid}'s location ${dest} is inside ${p.data_dir}: restore it by hand`,
      );
    return { oid: c.oid, copy: c.path, dest };
  });
}

async function dropSavedPause(
  ctx: ApplyContext,
  p: P,
  t: Awaited<ReturnType<ApplyContext['transport']>>,
): Promise<boolean> {
  const r = await t.exec(readDynamicLine(ctx, p), { signal: ctx.signal });
  if (r.exitCode === 3) return false;
  if (r.exitCode !== 0)
    throw new StepFailure(`reading ${dynamicJson(p)} failed: ${r.stderr.trim().slice(-300)}`);
  const text = withoutSavedPause(r.stdout);
  if (text === undefined) return false;
  const w = await t.exec(writeDynamicLine(ctx, p), { signal: ctx.signal, stdin: text });
  if (w.exitCode !== 0)
    throw new StepFailure(`writing ${dynamicJson(p)} failed: ${w.stderr.trim().slice(-300)}`);
  ctx.log(`${dynamicJson(p)}: the saved pause was dropped (the restored cluster starts unpaused)`);
  return true;
}

/** An LSN (`16/B374D848`) as a number to compare; NaN for anything else. */
export function lsnValue(lsn: string): bigint | number {
  const m = lsn.match(/^([0-9A-Fa-f]+)\/([0-9A-Fa-f]+)$/);
  return m ? (BigInt(`0x${m[1]}`) << 32n) + BigInt(`0x${m[2]}`) : Number.NaN;
}

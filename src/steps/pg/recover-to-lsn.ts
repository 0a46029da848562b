// `pg.recover_to_lsn`: a physical copy (pg.basebackup's) started as a standby of its source,
// streaming until an exact WAL position, promoted there, and stopped cleanly: the copy then holds
// every transaction that committed before that position and none after. A blue-green upgrade
// recovers its target to a logical slot's consistent point: what the slot decodes is exactly what
// the copy lacks. Recovery stops *before* the first record at or after the position
// (recovery_target_inclusive = off), the complement of the slot, which decodes the commits whose
// record starts at or after its consistent point.
//
// The copy carries its source's configuration (the same archive_command, maybe its TLS files and
// ports): for this recovery the copy archives nothing, listens on no TCP port and has its socket
// in a private directory; its postgresql.auto.conf is put back as it was afterwards, and what it
// wrote after promotion is marked archived, so no later start pushes its new timeline into the
// source's archive. The password of the replication connection is in a passfile in that private
// directory (PGPASSFILE), never in a configuration file.
import { Type } from '@sinclair/typebox';
import { asUser, serverUser } from '../../connections/run-as.js';
import { StepFailure } from '../../errors.js';
import { quote } from '../../util/shell.js';
import { type ApplyContext, defineStep, type PlanContext } from '../define.js';
import { pgBinary } from './binaries.js';
import { Name, openOn, sourceHost } from './logical.js';
import { PASSFILE_LINES, passfileText, replicationConninfo, replicationLogin } from './replication.js';

const LSN = '^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$';

const Params = Type.Object(
  {
    data_dir: Type.String({ pattern: '^/', description: "the copy (pg.basebackup's `to`), not running" }),
    bin_dir: Type.String({ pattern: '^/', description: "the source's major's binaries on this host" }),
    source: Type.String({
      minLength: 1,
      description: 'the inventory host the copy streams from (pg.replication_user logs in)',
    }),
    lsn: Type.String({
      pattern: LSN,
      description: "where to stop and promote (e.g. a logical slot's consistent_lsn)",
    }),
    slot: Type.Optional(Name('the physical slot on the source that kept the WAL since the copy')),
    connect_host: Type.Optional(Type.String({ minLength: 1 })),
    connect_port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
    timeout: Type.Optional(
      Type.Integer({ minimum: 1, description: 'seconds to reach the position and promote (default 600)' }),
    ),
    run_as: Type.Optional(
      Type.String({ minLength: 1, description: 'OS user (default: host var pg_os_user, else postgres)' }),
    ),
  },
  { additionalProperties: false },
);

const Outputs = Type.Object({
  data_dir: Type.String(),
  timeline: Type.Integer({ description: 'the new timeline the copy was promoted on' }),
  stop_lsn: Type.String({ description: 'the first record not replayed (at or after lsn)' }),
  switch_lsn: Type.String({ description: 'where the new timeline branches off' }),
  checkpoint_lsn: Type.String({ description: 'its shutdown checkpoint after promotion' }),
  seconds: Type.Number(),
});

type P = typeof Params.static;

/** A postgresql.conf string value: backslashes and quotes escaped. */
const confValue = (v: string) => `'${v.replace(/\\/g, '\\\\').replace(/'/g, "''")}'`;

/** Settings for this recovery only, appended to a copy of postgresql.auto.conf. */
function recoverySettings(ctx: PlanContext, p: P): string[] {
  const src = sourceHost(ctx, p.source);
  const settings: [string, string][] = [
    ['listen_addresses', ''],
    ['ssl', 'off'],
    ['archive_mode', 'off'],
    ['hot_standby', 'off'],
    ['logging_collector', 'off'],
    ['lc_messages', 'C'],
    ['cluster_name', 'pgrunbook-recover'],
    ['restore_command', ''],
    ['primary_conninfo', replicationConninfo(src, { host: p.connect_host, port: p.connect_port })],
    ['primary_slot_name', p.slot ?? ''],
    ['recovery_target_lsn', p.lsn],
    ['recovery_target_inclusive', 'off'],
    ['recovery_target_timeline', 'current'],
    ['recovery_target_action', 'promote'],
  ];
  return settings.map(([k, v]) => `${k} = ${confValue(v)}`);
}

function script(ctx: PlanContext, p: P): string {
  const D = quote(p.data_dir);
  const bin = (name: string) => quote(`${p.bin_dir}/${name}`);
  const auto = quote(`${p.data_dir}/postgresql.auto.conf`);
  const timeout = p.timeout ?? 600;
  const lines = [
    ...PASSFILE_LINES,
    `D=${D}`,
    `[ -f "$D/PG_VERSION" ] || { echo 'pgrunbook: no PG_VERSION: not a data directory' >&2; exit 3; }`,
    `[ ! -e "$D/postmaster.pid" ] || { echo 'pgrunbook: postmaster.pid there: a server runs (or crashed) in the copy' >&2; exit 3; }`,
    `if [ -f ${auto} ]; then cp -p ${auto} "$tmp/auto.conf"; else : > "$tmp/auto.conf"; fi`,
    'ls "$D"/pg_wal/*.history > "$tmp/history.before" 2>/dev/null || :',
    // Whatever happens from here, the copy is stopped and its configuration put back.
    'restore() {',
    `  if [ -f "$D/postmaster.pid" ]; then ${bin('pg_ctl')} -D "$D" -m fast -w -t 120 stop >/dev/null 2>&1 || ${bin('pg_ctl')} -D "$D" -m immediate -w stop >/dev/null 2>&1; fi`,
    `  cat "$tmp/auto.conf" > ${auto}`,
    '  rm -f "$D/standby.signal" "$D/recovery.signal"',
    '}',
    'cleanup_extra=restore',
    `{ cat "$tmp/auto.conf"; echo '# pgrunbook pg.recover_to_lsn: for this recovery only'; printf '%s\\n' ${recoverySettings(ctx, p).map(quote).join(' ')}; printf "unix_socket_directories = '%s'\\n" "$tmp"; } > ${auto}`,
    'touch "$D/standby.signal"',
    `PGPASSFILE="$tmp/pgpass" ${bin('pg_ctl')} -D "$D" -l "$tmp/log" -W start >/dev/null || { cat "$tmp/log" >&2; exit 6; }`,
    // pg_ctl -W returns before the postmaster has written its pid file.
    'i=0; while [ ! -f "$D/postmaster.pid" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done',
    'echo started',
    `deadline=$(( $(date +%s) + ${timeout} ))`,
    'while :; do',
    '  new=$(ls "$D"/pg_wal/*.history 2>/dev/null | grep -vxF -f "$tmp/history.before" | sort | tail -n 1)',
    `  state=$(LC_ALL=C ${bin('pg_controldata')} -D "$D" | sed -n 's/^Database cluster state: *//p')`,
    '  [ -n "$new" ] && [ "$state" = "in production" ] && break',
    `  if ! ${bin('pg_ctl')} -D "$D" status >/dev/null 2>&1; then echo 'pgrunbook: the copy stopped before it was promoted:' >&2; tail -n 15 "$tmp/log" >&2; exit 6; fi`,
    `  if [ "$(date +%s)" -ge "$deadline" ]; then echo 'pgrunbook: not promoted within ${timeout} s; its log ends:' >&2; tail -n 15 "$tmp/log" >&2; exit 5; fi`,
    '  sleep 0.2',
    'done',
    'echo "history-file $new"; while IFS= read -r line; do echo "history $line"; done < "$new"',
    `${bin('pg_ctl')} -D "$D" -m fast -w -t 300 stop >/dev/null || { echo 'pgrunbook: the copy did not stop cleanly' >&2; tail -n 15 "$tmp/log" >&2; exit 7; }`,
    // Never archived from here: its new timeline is no part of the source's archive.
    // biome-ignore lint/suspicious/noTemplateCurlyInString: sh parameter expansion, not a JS template.
    'for f in "$D"/pg_wal/archive_status/*.ready; do [ -e "$f" ] || continue; mv -f "$f" "${f%.ready}.done"; done',
    `LC_ALL=C ${bin('pg_controldata')} -D "$D" | sed -n -e 's/^Latest checkpoint location: */checkpoint /p' -e "s/^Latest checkpoint's TimeLineID: */timeline /p" -e 's/^Database cluster state: */state /p'`,
  ];
  return asUser(ctx.host, serverUser(ctx.host, p.run_as), lines.join('\n'));
}

const NUDGE_SQL = "select pg_logical_emit_message(false, 'pgrunbook', 'recovery target')";

/**
 * Recovery stops at the first record at or after the position: on a source that writes nothing,
 * none comes. A non-transactional logical message (ignored by subscribers) is that record.
 */
async function nudgeWhileRunning(ctx: ApplyContext, p: P, done: Promise<unknown>): Promise<void> {
  let finished = false;
  void done.finally(() => {
    finished = true;
  });
  let warned = false;
  while (!finished) {
    await Promise.race([done, new Promise((r) => setTimeout(r, 2000))]).catch(() => {});
    if (finished) return;
    try {
      const s = await openOn(sourceHost(ctx, p.source));
      try {
        await s.query(NUDGE_SQL);
      } finally {
        await s.close();
      }
    } catch (err) {
      if (!warned)
        ctx.log(
          `could not write a WAL record on ${p.source} (${(err as Error).message}): recovery waits for the source's own next write`,
        );
      warned = true;
    }
  }
}

function lsnValue(lsn: string): bigint {
  const [hi, lo] = lsn.split('/').map((x) => BigInt(`0x${x}`)) as [bigint, bigint];
  return (hi << 32n) | lo;
}

export default defineStep({
  type: 'pg.recover_to_lsn',
  summary:
    'Stream a physical copy from its source up to an exact LSN, promote it there and stop it (its configuration put back, its new timeline never archived).',
  params: Params,
  outputs: Outputs,
  peerParams: ['source'],
  mutating: true,
  marksChanges: true,
  undoSummary: "nothing of its own: the promoted copy goes with pg.basebackup's undo",
  needs: (_ctx, p) => ({
    binaries: [pgBinary(p.bin_dir, 'pg_ctl', 'bin_dir'), pgBinary(p.bin_dir, 'pg_controldata', 'bin_dir')],
  }),
  plan(ctx, p) {
    const login = replicationLogin(sourceHost(ctx, p.source));
    return {
      action: `recover ${p.data_dir} from ${p.source} up to ${p.lsn}, promote it there, stop it`,
      ops: [
        ...(login.hasPassword
          ? [
              {
                kind: 'note' as const,
                text: `${login.user}'s password goes on stdin into a private passfile`,
              },
            ]
          : []),
        { kind: 'command', line: script(ctx, p) },
        {
          kind: 'note',
          text: `every 2 s until promoted, on ${p.source}: ${NUDGE_SQL} (a record past the position when nothing else writes)`,
        },
        { kind: 'wait', what: `promoted at ${p.lsn}`, timeoutSeconds: p.timeout ?? 600 },
      ],
      undo: { action: "nothing of its own: the copy goes with pg.basebackup's undo", ops: [] },
    };
  },
  async apply(ctx, p) {
    const started = Date.now();
    const stdin = passfileText(replicationLogin(sourceHost(ctx, p.source)));
    const t = await ctx.transport();
    ctx.changing();
    const run = t.exec(script(ctx, p), { signal: ctx.signal, stdin });
    const [r] = await Promise.all([run, nudgeWhileRunning(ctx, p, run)]);
    const why = (r.stderr || r.stdout).trim().split('\n').slice(-12).join('\n');
    if (r.exitCode === 3) throw new StepFailure(why);
    if (r.exitCode !== 0)
      throw new StepFailure(`recovery of ${p.data_dir} failed (exit ${r.exitCode}):\n${why}`);
    // The new timeline's history line: "PARENT_TLI<tab>SWITCH_LSN<tab>before LSN X/Y".
    const hist = [...r.stdout.matchAll(/^history\s+\d+\s+([0-9A-F]+\/[0-9A-F]+)\s+(.*)$/gm)].pop();
    const checkpoint = /^checkpoint ([0-9A-F]+\/[0-9A-F]+)$/m.exec(r.stdout)?.[1];
    const timeline = Number(/^timeline (\d+)$/m.exec(r.stdout)?.[1]);
    const state = /^state (.*)$/m.exec(r.stdout)?.[1];
    if (!hist || !checkpoint || !timeline)
      throw new StepFailure(
        `cannot read the promoted copy's timeline history or checkpoint:\n${r.stdout.trim()}`,
      );
    const reason = hist[2]!.trim();
    const stop = /^before LSN ([0-9A-F]+\/[0-9A-F]+)$/.exec(reason)?.[1];
    if (!stop || lsnValue(stop) < lsnValue(p.lsn))
      throw new StepFailure(
        `the copy ended recovery for another reason than the position ${p.lsn}: "${reason}"`,
      );
    if (state !== 'shut down')
      throw new StepFailure(
        `the copy was not shut down cleanly after promotion (${state ?? 'unknown state'})`,
      );
    const out = {
      data_dir: p.data_dir,
      timeline,
      stop_lsn: stop,
      switch_lsn: hist[1]!,
      checkpoint_lsn: checkpoint,
      seconds: Math.round((Date.now() - started) / 100) / 10,
    };
    ctx.log(
      `${p.data_dir} recovered up to ${p.lsn} (stopped before ${stop}), promoted to timeline ${timeline}, shut down at ${checkpoint} in ${out.seconds} s`,
    );
    return out;
  },
  // Nothing to put back here: what this step changed is the copy itself, which the pg.basebackup
  // step that made it removes next (its undo comes right after this one).
  async undo(ctx, p) {
    ctx.log(`${p.data_dir}: removed with the copy by pg.basebackup's undo`);
  },
});

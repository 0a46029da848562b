// `pg.basebackup`: pg_basebackup run on this host from another inventory host's PostgreSQL (a
// leader, or a replica for a chained backup), streaming its WAL, into a new directory here. Before
// anything is made it checks what pg_basebackup would otherwise fail on half-way, or never: the
// role may replicate, a pg_hba.conf `replication` line lets this host in (asked of the server
// itself, with a replication connection from here), WAL senders and slots are free, the room at the
// destination, a mapping for every tablespace. A permanent physical slot (`slot`) keeps the WAL
// after the backup for a copy that goes on streaming from its source (a blue-green target).
import { Type } from '@sinclair/typebox';
import { asUser, serverUser } from '../../connections/run-as.js';
import { StepFailure } from '../../errors.js';
import { joinArgv, quote } from '../../util/shell.js';
import { type ApplyContext, defineStep, type Operation, type PlanContext } from '../define.js';
import { pgBinary } from './binaries.js';
import { Name, openOn, sourceHost } from './logical.js';
import { PASSFILE_LINES, passfileText, replicationConninfo, replicationLogin } from './replication.js';

const LSN = '^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$';

const Params = Type.Object(
  {
    from: Type.String({
      minLength: 1,
      description:
        'the inventory host to back up (a leader, or a replica): its pg settings make the connection, as pg.replication_user',
    }),
    to: Type.String({
      pattern: '^/',
      description: 'the new directory on this host (must not exist, or be empty)',
    }),
    bin_dir: Type.String({ pattern: '^/', description: 'where pg_basebackup and psql are on this host' }),
    format: Type.Optional(
      Type.Union([Type.Literal('plain'), Type.Literal('tar')], {
        description: 'plain (default): a data directory; tar: base.tar, one tar per tablespace, pg_wal.tar',
      }),
    ),
    checkpoint: Type.Optional(
      Type.Union([Type.Literal('fast'), Type.Literal('spread')], {
        description: 'fast (default): an immediate checkpoint; spread: waits for the next one',
      }),
    ),
    slot: Type.Optional(
      Name(
        'a permanent physical slot created for the backup and kept after it, so a copy can go on streaming from the source; dropped by the undo',
      ),
    ),
    tablespace_mapping: Type.Optional(
      Type.Array(
        Type.Object(
          { from: Type.String({ pattern: '^/' }), to: Type.String({ pattern: '^/' }) },
          { additionalProperties: false },
        ),
        { description: 'plain format: where each tablespace of the source goes on this host' },
      ),
    ),
    max_rate: Type.Optional(
      Type.String({
        pattern: '^([1-9][0-9]*[kM]?)?$',
        description: 'pg_basebackup --max-rate, e.g. 100M (empty: no limit)',
      }),
    ),
    label: Type.Optional(
      Type.String({ pattern: '^[A-Za-z0-9 ._:-]{1,100}$', description: 'backup label (default pgrunbook)' }),
    ),
    connect_host: Type.Optional(
      Type.String({ minLength: 1, description: 'the source as this host reaches it (default: its pg host)' }),
    ),
    connect_port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535 })),
    run_as: Type.Optional(
      Type.String({ minLength: 1, description: 'OS user (default: host var pg_os_user, else postgres)' }),
    ),
  },
  { additionalProperties: false },
);

const Outputs = Type.Object({
  to: Type.String(),
  format: Type.String(),
  from: Type.String(),
  system_identifier: Type.String(),
  timeline: Type.Integer(),
  start_lsn: Type.String({ pattern: LSN }),
  stop_lsn: Type.String({ pattern: LSN }),
  slot: Type.String({ description: 'the permanent slot made for it, or empty' }),
  history_file: Type.String({
    description:
      'the backup history file (e.g. 000000010000000000000005.00000028.backup) the source archives when archiving is on; empty from a standby (it writes none) or with archiving off',
  }),
  backup_from: Type.Union([Type.Literal('primary'), Type.Literal('standby')], {
    description: 'standby: a chained backup, taken from a replica',
  }),
  version_num: Type.Integer({ description: "the source's server_version_num" }),
  started_at: Type.String({ description: 'when pg_basebackup started (ISO 8601)' }),
  stopped_at: Type.String({ description: 'when it finished (ISO 8601)' }),
  bytes: Type.Number(),
  seconds: Type.Number({ description: 'the whole step: its checks, pg_basebackup, measuring the copy' }),
  copy_seconds: Type.Number({
    description: 'pg_basebackup alone: the time the source spent in backup mode for it',
  }),
  dir_existed: Type.Boolean({ description: 'the destination existed (empty): the undo empties it' }),
});

type P = typeof Params.static;

const as = (ctx: PlanContext, p: P, script: string) =>
  asUser(ctx.host, serverUser(ctx.host, p.run_as), script);

const conninfoOf = (ctx: PlanContext, p: P) =>
  replicationConninfo(sourceHost(ctx, p.from, 'from'), { host: p.connect_host, port: p.connect_port });

/**
 * Read-only: a replication connection from here (pg_hba and the role, in the server's words:
 * exit 4), the destination (exit 3 unless absent or empty) and the room at its nearest existing
 * directory (`avail KB` printed; exit 5 below `needKb`).
 */
function probeScript(ctx: PlanContext, p: P, needKb: number | undefined): string {
  const T = quote(p.to);
  return as(
    ctx,
    p,
    [
      ...PASSFILE_LINES,
      `if ! PGPASSFILE="$tmp/pgpass" ${quote(`${p.bin_dir}/psql`)} -X -A -t -w -d ${quote(`${conninfoOf(ctx, p)} replication=true`)} -c IDENTIFY_SYSTEM; then exit 4; fi`,
      `if [ -e ${T} ] && [ -n "$(ls -A ${T} 2>/dev/null)" ]; then echo 'pgrunbook: the destination exists and is not empty' >&2; exit 3; fi`,
      `if [ -e ${T} ]; then echo 'existed yes'; else echo 'existed no'; fi`,
      `d=${T}; while [ ! -d "$d" ]; do d=$(dirname "$d"); done`,
      `avail=$(df -Pk "$d" | awk 'NR==2 {print $4}'); echo "avail $avail"`,
      ...(needKb !== undefined ? [`[ "$avail" -ge ${needKb} ] || exit 5`] : []),
    ].join('\n'),
  );
}

function argv(p: P): string[] {
  return [
    `${p.bin_dir}/pg_basebackup`,
    '-D',
    p.to,
    `--format=${p.format ?? 'plain'}`,
    '--wal-method=stream',
    `--checkpoint=${p.checkpoint ?? 'fast'}`,
    `--label=${p.label ?? 'pgrunbook'}`,
    '--verbose',
    '--no-password',
    ...(p.slot ? ['--create-slot', `--slot=${p.slot}`] : []),
    ...(p.max_rate ? [`--max-rate=${p.max_rate}`] : []),
    ...(p.tablespace_mapping ?? []).map((m) => `--tablespace-mapping=${m.from}=${m.to}`),
  ];
}

function backupScript(ctx: PlanContext, p: P): string {
  return as(
    ctx,
    p,
    [
      ...PASSFILE_LINES,
      `mkdir -p -m 0700 ${quote(p.to)} || exit 1`,
      `PGPASSFILE="$tmp/pgpass" ${joinArgv(argv(p))} -d ${quote(conninfoOf(ctx, p))} 2>&1 || exit $?`,
    ].join('\n'),
  );
}

/**
 * Removes what the backup made: the directory, or only its contents when it existed (empty)
 * before, and the tablespace directories it filled. Refused while a server runs there.
 */
function removeScript(ctx: PlanContext, p: P, existed: boolean): string {
  const T = quote(p.to);
  const spaces = (p.tablespace_mapping ?? []).map((m) => quote(m.to));
  return as(
    ctx,
    p,
    [
      `if [ -e ${quote(`${p.to}/postmaster.pid`)} ]; then echo 'pgrunbook: postmaster.pid there (a server runs or crashed): not removing it' >&2; exit 1; fi`,
      existed ? `[ ! -d ${T} ] || find ${T} -mindepth 1 -delete` : `rm -rf -- ${T}`,
      ...spaces.map((s) => `[ ! -d ${s} ] || find ${s} -mindepth 1 -delete`),
      existed
        ? `[ -z "$(ls -A ${T} 2>/dev/null)" ] || { echo '${p.to.replace(/'/g, '')} still has files' >&2; exit 1; }`
        : `[ ! -e ${T} ] || { echo '${p.to.replace(/'/g, '')} is still there' >&2; exit 1; }`,
    ].join('\n'),
  );
}

const DROP_SLOT_SQL =
  'select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name = $1 and slot_type = $2 and not active';

/** The source's facts the checks need, read over an ordinary session. */
const FACTS_SQL = `select
  (select rolsuper or rolreplication from pg_roles where rolname = $1) as may_replicate,
  current_setting('max_wal_senders')::int
    - (select count(*) from pg_stat_activity where backend_type = 'walsender')::int as free_senders,
  current_setting('max_replication_slots')::int - (select count(*) from pg_replication_slots)::int as free_slots,
  exists (select 1 from pg_replication_slots where slot_name = $2) as slot_exists,
  (select coalesce(sum(pg_database_size(oid)), 0) from pg_database)::bigint as bytes,
  current_setting('wal_segment_size') as segsize,
  current_setting('archive_mode') as archive_mode,
  pg_is_in_recovery() as in_recovery,
  current_setting('server_version_num')::int as version_num,
  coalesce((select json_agg(pg_tablespace_location(oid)) from pg_tablespace
            where spcname not in ('pg_default', 'pg_global')), '[]') as tablespaces`;

/** 16MB, 1GB… as bytes (wal_segment_size's text form). */
function sizeBytes(text: string): number {
  const m = /^(\d+)\s*(B|kB|MB|GB)?$/.exec(text.trim());
  if (!m) throw new StepFailure(`cannot read wal_segment_size "${text}"`);
  const unit = { B: 1, kB: 1024, MB: 1024 ** 2, GB: 1024 ** 3 }[m[2] ?? 'B'] ?? 1;
  return Number(m[1]) * unit;
}

/** The name of the backup history file PostgreSQL archives for a backup starting at `lsn`. */
export function historyFileName(timeline: number, lsn: string, segBytes: number): string {
  const [hi, lo] = lsn.split('/').map((x) => BigInt(`0x${x}`)) as [bigint, bigint];
  const pos = (hi << 32n) | lo;
  const seg = BigInt(segBytes);
  const segno = pos / seg;
  const perId = 0x100000000n / seg;
  const hex = (n: bigint | number) => n.toString(16).toUpperCase().padStart(8, '0');
  return `${hex(timeline)}${hex(segno / perId)}${hex(segno % perId)}.${hex(pos % seg)}.backup`;
}

/** What the server said when the replication connection from here was refused, explained. */
function refusal(p: P, user: string, text: string): string {
  const said = text.trim().split('\n').slice(-3).join(' ');
  if (
    /no pg_hba\.conf entry for replication connection|pg_hba\.conf rejects replication connection/i.test(text)
  )
    return `${p.from}'s pg_hba.conf has no replication line for user ${user} from this host: add one (e.g. "host replication ${user} ADDRESS/32 scram-sha-256") and reload; the server said: ${said}`;
  if (/must be superuser or replication role|permission denied to start WAL sender/i.test(text))
    return `role ${user} on ${p.from} may not replicate: ALTER ROLE ${user} REPLICATION (or use pg.replication_user); the server said: ${said}`;
  return `cannot open a replication connection to ${p.from} as ${user}: ${said}`;
}

async function checkSource(ctx: ApplyContext, p: P) {
  const src = sourceHost(ctx, p.from, 'from');
  const user = replicationLogin(src).user;
  const s = await openOn(src);
  let f: Record<string, unknown>;
  try {
    f = (await s.query(FACTS_SQL, [user, p.slot ?? ''])).rows[0]!;
  } finally {
    await s.close();
  }
  if (f.may_replicate === null)
    throw new StepFailure(`role ${user} does not exist on ${p.from} (pg.replication_user)`);
  if (f.may_replicate !== true)
    throw new StepFailure(
      `role ${user} on ${p.from} has neither REPLICATION nor superuser: ALTER ROLE ${user} REPLICATION, or name another role in pg.replication_user`,
    );
  // One WAL sender copies the files, a second streams the WAL alongside.
  if (Number(f.free_senders) < 2)
    throw new StepFailure(
      `${p.from} has ${f.free_senders} free WAL sender(s) (max_wal_senders minus those in use); a streamed backup needs 2`,
    );
  // Without slot, pg_basebackup makes a temporary one to keep its WAL.
  if (Number(f.free_slots) < 1)
    throw new StepFailure(`${p.from} has no free replication slot (max_replication_slots)`);
  if (p.slot && f.slot_exists === true)
    throw new StepFailure(
      `a replication slot named ${p.slot} already exists on ${p.from}: drop it or choose another`,
    );
  const spaces = (f.tablespaces as string[]) ?? [];
  const mapped = new Set((p.tablespace_mapping ?? []).map((m) => m.from));
  const unmapped = spaces.filter((l) => !mapped.has(l));
  if ((p.format ?? 'plain') === 'plain' && unmapped.length)
    throw new StepFailure(
      `${p.from} has tablespaces ${unmapped.join(', ')} without a tablespace_mapping: a plain backup would write into those paths on this host`,
    );
  return {
    user,
    bytes: Number(f.bytes),
    segBytes: sizeBytes(String(f.segsize)),
    archiving: f.archive_mode !== 'off',
    standby: f.in_recovery === true,
    versionNum: Number(f.version_num),
  };
}

export default defineStep({
  type: 'pg.basebackup',
  summary:
    "Copy another host's PostgreSQL here with pg_basebackup (WAL streamed), after checking the role, pg_hba, WAL senders, slots, room and tablespaces.",
  params: Params,
  outputs: Outputs,
  peerParams: ['from'],
  mutating: true,
  marksChanges: true,
  undoSummary: 'removes the copy (refused while a server runs in it) and drops the slot it made',
  needs: (ctx, p) => ({
    binaries: [pgBinary(p.bin_dir, 'pg_basebackup', 'bin_dir'), pgBinary(p.bin_dir, 'psql', 'bin_dir')],
    writable: [{ path: p.to, user: serverUser(ctx.host, p.run_as), param: 'to' }],
  }),
  plan(ctx, p) {
    const src = sourceHost(ctx, p.from, 'from');
    const login = replicationLogin(src);
    const ops: Operation[] = [
      {
        kind: 'note',
        text: `on ${p.from}: role ${login.user} has REPLICATION or superuser, 2 WAL senders and a slot free${p.slot ? `, no slot ${p.slot} yet` : ''}, every tablespace mapped; here: room for its databases`,
      },
      ...(login.hasPassword
        ? [{ kind: 'note' as const, text: `${login.user}'s password goes on stdin into a private passfile` }]
        : []),
      { kind: 'command', line: probeScript(ctx, p, undefined) },
      { kind: 'command', line: backupScript(ctx, p) },
    ];
    return {
      action: `pg_basebackup of ${p.from} into ${p.to} (${p.format ?? 'plain'}, WAL streamed${p.slot ? `, keeping slot ${p.slot}` : ''})`,
      ops,
      undo: {
        action: `remove ${p.to}${p.slot ? ` and drop slot ${p.slot} on ${p.from}` : ''}`,
        ops: [
          { kind: 'command', line: removeScript(ctx, p, false) },
          ...(p.slot ? [{ kind: 'sql' as const, sql: DROP_SLOT_SQL, params: [p.slot, 'physical'] }] : []),
        ],
      },
    };
  },
  async apply(ctx, p) {
    const started = Date.now();
    const facts = await checkSource(ctx, p);
    const src = sourceHost(ctx, p.from, 'from');
    const login = replicationLogin(src);
    const stdin = passfileText(login);
    const t = await ctx.transport();
    const needKb = Math.ceil(facts.bytes / 1024);
    const probe = await t.exec(probeScript(ctx, p, needKb), { signal: ctx.signal, stdin });
    if (probe.exitCode === 4) throw new StepFailure(refusal(p, login.user, probe.stderr || probe.stdout));
    if (probe.exitCode === 3)
      throw new StepFailure(`${p.to} exists and is not empty: remove it, or choose another destination`);
    const avail = /^avail (\d+)$/m.exec(probe.stdout)?.[1];
    if (probe.exitCode === 5)
      throw new StepFailure(`${p.to}: ${avail ?? '?'} kB free, and ${p.from}'s databases take ${needKb} kB`);
    if (probe.exitCode !== 0)
      throw new StepFailure(
        `checking before the backup failed (exit ${probe.exitCode}): ${probe.stderr.trim()}`,
      );
    const ident =
      probe.stdout
        .split('\n')
        .find((l) => /^\d+\|\d+\|/.test(l))
        ?.split('|') ?? [];
    const existed = /^existed yes$/m.test(probe.stdout);
    ctx.artifact({ paths: [p.to], remove: removeScript(ctx, p, existed) });
    ctx.changing();
    const startedAt = new Date().toISOString();
    const copyStart = Date.now();
    const r = await t.exec(backupScript(ctx, p), {
      signal: ctx.signal,
      stdin,
      onOutput: (stream, chunk) => ctx.output(stream, chunk),
    });
    const copySeconds = Math.round((Date.now() - copyStart) / 100) / 10;
    const stoppedAt = new Date().toISOString();
    const start = /write-ahead log start point: ([0-9A-F]+\/[0-9A-F]+) on timeline (\d+)/.exec(r.stdout);
    const stop = /write-ahead log end point: ([0-9A-F]+\/[0-9A-F]+)/.exec(r.stdout);
    if (r.exitCode !== 0 || !start || !stop) {
      if (p.slot) await dropSlot(ctx, p).catch(() => {});
      throw new StepFailure(
        `pg_basebackup failed (exit ${r.exitCode}): ${(r.stderr || r.stdout).trim().split('\n').slice(-6).join('\n')}`,
      );
    }
    const timeline = Number(start[2]);
    const out = {
      to: p.to,
      format: p.format ?? 'plain',
      from: p.from,
      system_identifier: ident[0] ?? '',
      timeline,
      start_lsn: start[1]!,
      stop_lsn: stop[1]!,
      slot: p.slot ?? '',
      // A standby writes no backup history file (its backup has no end-of-backup record).
      history_file:
        facts.archiving && !facts.standby ? historyFileName(timeline, start[1]!, facts.segBytes) : '',
      backup_from: facts.standby ? ('standby' as const) : ('primary' as const),
      version_num: facts.versionNum,
      started_at: startedAt,
      stopped_at: stoppedAt,
      bytes: await copyBytes(ctx, p),
      seconds: Math.round((Date.now() - started) / 100) / 10,
      copy_seconds: copySeconds,
      dir_existed: existed,
    };
    ctx.log(
      `backup of ${p.from}${facts.standby ? ' (a standby: chained)' : ''} (system ${out.system_identifier}, timeline ${timeline}) from ${out.start_lsn} to ${out.stop_lsn} in ${p.to}: ${out.bytes} bytes in ${out.seconds} s${p.slot ? `; slot ${p.slot} kept on ${p.from}` : ''}`,
    );
    return out;
  },
  async undo(ctx, p, out) {
    const t = await ctx.transport();
    const r = await t.exec(removeScript(ctx, p, out.dir_existed), { signal: ctx.signal });
    if (r.exitCode !== 0) throw new StepFailure(`removing ${out.to} failed: ${r.stderr.trim()}`);
    if (out.slot) await dropSlot(ctx, p);
  },
});

/** The copy's size on disk, in bytes (0 when it cannot be read). */
async function copyBytes(ctx: ApplyContext, p: P): Promise<number> {
  const t = await ctx.transport();
  const r = await t.exec(as(ctx, p, `du -sb ${quote(p.to)} | cut -f1`), { signal: ctx.signal });
  return Number(r.stdout.trim()) || 0;
}

async function dropSlot(ctx: ApplyContext, p: P): Promise<void> {
  const s = await openOn(sourceHost(ctx, p.from, 'from'));
  try {
    await s.query(DROP_SLOT_SQL, [p.slot, 'physical']);
  } finally {
    await s.close();
  }
}

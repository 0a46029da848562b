// `pg.initdb`: a fresh data directory for the new major of an upgrade, made like the old one
// (encoding, locale, checksums, WAL segment size, install user): pg_upgrade refuses any difference.
import { Type } from '@sinclair/typebox';
import { asUser, serverUser } from '../../connections/run-as.js';
import { StepFailure } from '../../errors.js';
import { joinArgv, quote } from '../../util/shell.js';
import { type ApplyContext, defineStep, type PlanContext } from '../define.js';
import { pgBinary } from './binaries.js';

const Params = Type.Object(
  {
    bin_dir: Type.String({ pattern: '^/', description: "the new major's binaries (initdb)" }),
    data_dir: Type.String({
      pattern: '^/',
      description: 'the new data directory (must not exist or be empty)',
    }),
    username: Type.String({
      minLength: 1,
      description: "the bootstrap superuser: the old cluster's install user (pg_upgrade requires the same)",
    }),
    encoding: Type.String({ minLength: 1, description: 'e.g. UTF8' }),
    lc_collate: Type.String({ minLength: 1 }),
    lc_ctype: Type.String({ minLength: 1 }),
    checksums: Type.Boolean({ description: 'data page checksums (must match the old cluster)' }),
    wal_segsize_mb: Type.Optional(
      Type.Integer({ minimum: 1, description: 'WAL segment size in MB (default 16)' }),
    ),
    options: Type.Optional(
      Type.Array(Type.String(), { description: 'more initdb arguments, each one word' }),
    ),
    run_as: Type.Optional(
      Type.String({ minLength: 1, description: 'OS user (default: host var pg_os_user, else postgres)' }),
    ),
  },
  { additionalProperties: false },
);

const Outputs = Type.Object({
  data_dir: Type.String(),
  pg_version: Type.String({ description: 'the new PG_VERSION' }),
});

type P = typeof Params.static;

function argv(p: P, checksumsUnknown = false): string[] {
  return [
    `${p.bin_dir}/initdb`,
    '-D',
    p.data_dir,
    '-U',
    p.username,
    `--encoding=${p.encoding}`,
    `--lc-collate=${p.lc_collate}`,
    `--lc-ctype=${p.lc_ctype}`,
    // Known only when the run has read the old cluster's pg_control: the plan says so.
    ...(checksumsUnknown
      ? ['[--data-checksums if the old cluster has them]']
      : p.checksums
        ? ['--data-checksums']
        : []),
    ...(p.wal_segsize_mb ? [`--wal-segsize=${p.wal_segsize_mb}`] : []),
    ...(p.options ?? []),
  ];
}

function script(ctx: PlanContext, p: P): string {
  const D = quote(p.data_dir);
  return asUser(
    ctx.host,
    serverUser(ctx.host, p.run_as),
    [
      `if [ -n "$(ls -A ${D} 2>/dev/null)" ]; then echo 'pgrunbook: ${p.data_dir.replace(/'/g, '')} exists and is not empty' >&2; exit 3; fi`,
      `mkdir -p -m 0700 ${D} || exit 1`,
      joinArgv(argv(p, ctx.unknown.has('checksums'))),
      `cat ${quote(`${p.data_dir}/PG_VERSION`)}`,
    ].join('\n'),
  );
}

/**
 * Removes the directory only if it still is what initdb made: a PG_VERSION, no postmaster.pid (a
 * server never ran there or has stopped), and not the host's live pgdata.
 */
function removeScript(ctx: PlanContext, p: P): string {
  const D = quote(p.data_dir);
  return asUser(
    ctx.host,
    serverUser(ctx.host, p.run_as),
    [
      `[ -d ${D} ] || exit 0`,
      `[ -f ${quote(`${p.data_dir}/PG_VERSION`)} ] || { echo 'pgrunbook: no PG_VERSION there: not removing it' >&2; exit 1; }`,
      `[ ! -e ${quote(`${p.data_dir}/postmaster.pid`)} ] || { echo 'pgrunbook: postmaster.pid there (a server runs or crashed): not removing it' >&2; exit 1; }`,
      `rm -rf -- ${D}`,
    ].join('\n'),
  );
}

function notLive(ctx: PlanContext, p: P): void {
  if (ctx.host.vars.pgdata === p.data_dir)
    throw new StepFailure(
      `pg.initdb: ${p.data_dir} is the host's pgdata (the running cluster's data directory)`,
    );
}

export default defineStep({
  type: 'pg.initdb',
  summary:
    "Create a new data directory with initdb, matching the old cluster's encoding, locale and checksums.",
  params: Params,
  outputs: Outputs,
  mutating: true,
  marksChanges: true,
  undoSummary: 'removes the data directory it created (refused if a server runs there)',
  // initdb creates the data directory as the server user: its parent (or it, empty) writable.
  needs: (ctx, p) => ({
    binaries: [pgBinary(p.bin_dir, 'initdb', 'bin_dir')],
    writable: [{ path: p.data_dir, user: serverUser(ctx.host, p.run_as), param: 'data_dir' }],
  }),
  plan(ctx, p) {
    notLive(ctx, p);
    return {
      action: `initdb ${p.data_dir}`,
      ops: [{ kind: 'command', line: script(ctx, p) }],
      undo: { action: `remove ${p.data_dir}`, ops: [{ kind: 'command', line: removeScript(ctx, p) }] },
    };
  },
  async apply(ctx, p) {
    notLive(ctx, p);
    const t = await ctx.transport();
    ctx.changing();
    const r = await t.exec(script(ctx, p), { signal: ctx.signal });
    if (r.exitCode !== 0)
      throw new StepFailure(
        r.exitCode === 3
          ? `${p.data_dir} exists and is not empty: remove it, or choose another new data directory`
          : `initdb failed (exit ${r.exitCode}): ${(r.stderr || r.stdout).trim().split('\n').slice(-6).join('\n')}`,
      );
    const version = r.stdout.trim().split('\n').pop() ?? '';
    ctx.log(`initialised PostgreSQL ${version} in ${p.data_dir}`);
    return { data_dir: p.data_dir, pg_version: version };
  },
  async undo(ctx: ApplyContext, p) {
    const t = await ctx.transport();
    const r = await t.exec(removeScript(ctx, p), { signal: ctx.signal });
    if (r.exitCode !== 0) throw new StepFailure(`removing ${p.data_dir} failed: ${r.stderr.trim()}`);
  },
});

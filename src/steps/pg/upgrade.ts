// `pg.upgrade`: pg_upgrade from the old major's data directory into a new one made by pg.initdb,
// as the server OS user. `check: true` only compares (and may run against the live old server);
// otherwise both servers must be stopped. With --link the new cluster shares the old one's files:
// until the new one first starts, renaming the old global/pg_control.old back restores the old
// cluster, which is this step's undo (and what it does itself when pg_upgrade fails half-way).
import { dirname } from 'node:path';
import { Type } from '@sinclair/typebox';
import { asUser, serverUser } from '../../connections/run-as.js';
import { StepFailure } from '../../errors.js';
import { joinArgv, quote } from '../../util/shell.js';
import { type ApplyContext, defineStep, type PlanContext } from '../define.js';
import { pgBinary } from './binaries.js';

const Params = Type.Object(
  {
    old_bin_dir: Type.String({ pattern: '^/' }),
    new_bin_dir: Type.String({ pattern: '^/' }),
    old_data_dir: Type.String({ pattern: '^/' }),
    new_data_dir: Type.String({ pattern: '^/' }),
    username: Type.String({
      minLength: 1,
      description: 'the install user (bootstrap superuser) of both clusters',
    }),
    mode: Type.Optional(
      Type.Union([Type.Literal('link'), Type.Literal('copy'), Type.Literal('clone')], {
        description:
          'link (default): hard links, minutes for terabytes, the old cluster unusable once the new one starts',
      }),
    ),
    check: Type.Optional(Type.Boolean({ description: 'pg_upgrade --check: compare only, change nothing' })),
    jobs: Type.Optional(Type.Integer({ minimum: 1, description: 'pg_upgrade --jobs (default 1)' })),
    old_port: Type.Optional(
      Type.Integer({ minimum: 1, maximum: 65535, description: 'default: the host pg port, else 5432' }),
    ),
    new_port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535, description: 'default 50432' })),
    socket_dir: Type.Optional(
      Type.String({
        pattern: '^/',
        description:
          'socket directory (default: host var pg_socket_dir, else /var/run/postgresql); a live --check reaches the old server there',
      }),
    ),
    old_options: Type.Optional(Type.String({ description: 'pg_upgrade -o: options for the old server' })),
    new_options: Type.Optional(Type.String({ description: 'pg_upgrade -O: options for the new server' })),
    work_dir: Type.Optional(
      Type.String({
        pattern: '^/',
        description:
          "where pg_upgrade runs (its scripts land there; default: the new data directory's parent)",
      }),
    ),
    old_is_copy: Type.Optional(
      Type.Boolean({
        description:
          'the old data directory is a disposable copy (a blue-green target made by pg.basebackup, whose undo removes it): no undo of its own',
      }),
    ),
    run_as: Type.Optional(
      Type.String({ minLength: 1, description: 'OS user (default: host var pg_os_user, else postgres)' }),
    ),
  },
  { additionalProperties: false },
);

const Outputs = Type.Object({
  check: Type.Boolean(),
  mode: Type.String(),
  seconds: Type.Number(),
  old_data_dir: Type.String(),
  new_data_dir: Type.String(),
  new_checkpoint_lsn: Type.String({
    description:
      "the new cluster's latest checkpoint right after pg_upgrade: the undo refuses once it moved (the new cluster has run)",
  }),
  output: Type.String({ description: 'the last lines pg_upgrade printed' }),
});

type P = typeof Params.static;
type Out = typeof Outputs.static;

const socketDir = (ctx: PlanContext, p: P) =>
  p.socket_dir ??
  (typeof ctx.host.vars.pg_socket_dir === 'string' ? ctx.host.vars.pg_socket_dir : '/var/run/postgresql');

function argv(ctx: PlanContext, p: P): string[] {
  const mode = p.mode ?? 'link';
  return [
    `${p.new_bin_dir}/pg_upgrade`,
    `--old-bindir=${p.old_bin_dir}`,
    `--new-bindir=${p.new_bin_dir}`,
    `--old-datadir=${p.old_data_dir}`,
    `--new-datadir=${p.new_data_dir}`,
    `--username=${p.username}`,
    `--old-port=${p.old_port ?? ctx.host.pg?.port ?? 5432}`,
    `--new-port=${p.new_port ?? 50432}`,
    `--socketdir=${socketDir(ctx, p)}`,
    `--jobs=${p.jobs ?? 1}`,
    ...(mode === 'link' ? ['--link'] : mode === 'clone' ? ['--clone'] : []),
    ...(p.check ? ['--check'] : []),
    ...(p.old_options ? [`--old-options=${p.old_options}`] : []),
    ...(p.new_options ? [`--new-options=${p.new_options}`] : []),
  ];
}

const as = (ctx: PlanContext, p: P, script: string) =>
  asUser(ctx.host, serverUser(ctx.host, p.run_as), script);

function script(ctx: PlanContext, p: P): string {
  return as(
    ctx,
    p,
    `cd ${quote(p.work_dir ?? dirname(p.new_data_dir))} || exit 1\n${joinArgv(argv(ctx, p))}`,
  );
}

/** Prints the newest pg_upgrade log directory and the tail of its logs (PostgreSQL 15+ layout). */
function logsScript(ctx: PlanContext, p: P): string {
  const out = quote(`${p.new_data_dir}/pg_upgrade_output.d`);
  return as(
    ctx,
    p,
    `d=$(ls -dt ${out}/*/ 2>/dev/null | head -n1); [ -n "$d" ] || exit 0; echo "log directory: \${d}log"; for f in "\${d}"log/*.log; do echo "--- $f"; tail -n 15 "$f"; done`,
  );
}

const pgControl = (p: P) => `${p.old_data_dir}/global/pg_control`;

/** Latest checkpoint of the new cluster, from its pg_control. */
function newCheckpointScript(ctx: PlanContext, p: P): string {
  return as(
    ctx,
    p,
    `LC_ALL=C ${quote(`${p.new_bin_dir}/pg_controldata`)} -D ${quote(p.new_data_dir)} | sed -n 's/^Latest checkpoint location: *//p'`,
  );
}

/**
 * Puts the old cluster back: global/pg_control.old → pg_control. Refused when the new cluster has
 * run since pg_upgrade (its checkpoint moved, or it has a postmaster.pid): the linked files have
 * changed under the old cluster, and only the snapshot brings it back.
 */
function restoreScript(ctx: PlanContext, p: P, expectLsn?: string): string {
  const ctl = quote(pgControl(p));
  const old = quote(`${pgControl(p)}.old`);
  const lines = [
    `if [ -e ${quote(`${p.new_data_dir}/postmaster.pid`)} ]; then echo 'pgrunbook: the new cluster runs (or crashed): the old one cannot be used any more; restore from the snapshot' >&2; exit 1; fi`,
  ];
  if (expectLsn)
    lines.push(
      `now=$(LC_ALL=C ${quote(`${p.new_bin_dir}/pg_controldata`)} -D ${quote(p.new_data_dir)} 2>/dev/null | sed -n 's/^Latest checkpoint location: *//p')`,
      `if [ -n "$now" ] && [ "$now" != ${quote(expectLsn)} ]; then echo "pgrunbook: the new cluster has run since pg_upgrade (checkpoint ${expectLsn} → $now): the old one cannot be used any more; restore from the snapshot" >&2; exit 1; fi`,
    );
  lines.push(
    `if [ -f ${old} ] && [ ! -e ${ctl} ]; then mv -- ${old} ${ctl} && echo 'pgrunbook: renamed pg_control.old back'; fi`,
  );
  return as(ctx, p, lines.join('\n'));
}

const tail = (s: string, n: number) => s.trim().split('\n').slice(-n).join('\n');

/**
 * After a failed or interrupted pg_upgrade: the servers it starts through pg_ctl run in their own
 * session and outlive it. Stops the new one, and the old one unless this was a live --check (then
 * the old one is the production server).
 */
function leftoversScript(ctx: PlanContext, p: P): string {
  const pairs = [[p.new_data_dir, p.new_bin_dir], ...(p.check ? [] : [[p.old_data_dir, p.old_bin_dir]])];
  return as(
    ctx,
    p,
    pairs
      .map(
        ([d, b]) =>
          `if [ -f ${quote(`${d}/postmaster.pid`)} ]; then ${quote(`${b}/pg_ctl`)} -D ${quote(d!)} stop -m fast -w -t 60 >/dev/null 2>&1 && echo ${quote(`stopped a server pg_upgrade left running in ${d}`)}; fi`,
      )
      .join('\n'),
  );
}

// No abort signal here: this is the clean-up of an interrupted step, and must run to its end.
async function putBack(ctx: ApplyContext, p: P, expectLsn?: string): Promise<string> {
  const t = await ctx.transport();
  const r = await t.exec(restoreScript(ctx, p, expectLsn));
  if (r.exitCode !== 0)
    throw new StepFailure(`restoring the old cluster's pg_control failed: ${r.stderr.trim()}`);
  return r.stdout.trim();
}

export default defineStep({
  type: 'pg.upgrade',
  summary:
    'Run pg_upgrade (--link by default, or --check only) from the old data directory into the new one.',
  params: Params,
  outputs: Outputs,
  mutating: (p) => !p.check,
  undoSummary:
    "link mode: renames the old cluster's global/pg_control.old back, refused once the new cluster has run (none with old_is_copy)",
  // pg_upgrade of the new major runs the old major's server and tools from old_bin_dir, and
  // writes its scripts and logs in its working directory, as the server user.
  needs: (ctx, p) => ({
    binaries: [
      pgBinary(p.new_bin_dir, 'pg_upgrade', 'new_bin_dir'),
      pgBinary(p.old_bin_dir, 'pg_ctl', 'old_bin_dir'),
    ],
    writable: [
      {
        path: p.work_dir ?? dirname(p.new_data_dir),
        user: serverUser(ctx.host, p.run_as),
        param: p.work_dir ? 'work_dir' : 'new_data_dir',
      },
    ],
  }),
  plan(ctx, p) {
    const ops = [{ kind: 'command' as const, line: script(ctx, p) }];
    if (p.check) return { action: 'pg_upgrade --check (changes nothing)', ops };
    return {
      action: `pg_upgrade ${p.mode ?? 'link'} ${p.old_data_dir} → ${p.new_data_dir}`,
      ops,
      undo: p.old_is_copy
        ? { action: 'none of its own: the old data directory is a copy, removed by its own undo', ops: [] }
        : (p.mode ?? 'link') === 'link'
          ? {
              action:
                'put the old cluster back (global/pg_control.old → pg_control) unless the new one has run',
              ops: [{ kind: 'command', line: restoreScript(ctx, p, '(the checkpoint after pg_upgrade)') }],
            }
          : undefined,
    };
  },
  async apply(ctx, p): Promise<Out> {
    const t = await ctx.transport();
    const started = Date.now();
    const r = await t.exec(script(ctx, p), { signal: ctx.signal, onOutput: (s, c) => ctx.output(s, c) });
    const seconds = (Date.now() - started) / 1000;
    if (r.exitCode !== 0) {
      const logs = await t.exec(logsScript(ctx, p)).catch(() => undefined);
      const left = await t.exec(leftoversScript(ctx, p)).catch(() => undefined);
      let note = left?.stdout.trim() ? `\n${left.stdout.trim()}` : '';
      if (!p.check && (p.mode ?? 'link') === 'link') {
        // pg_upgrade renames pg_control before it links: without this the old cluster cannot start.
        const back = await putBack(ctx, p).catch(
          (e) => `could not put pg_control back: ${(e as Error).message}`,
        );
        if (back) note += `\n${back}`;
      }
      throw new StepFailure(
        `pg_upgrade${p.check ? ' --check' : ''} failed (exit ${r.exitCode}):\n${tail(r.stdout, 12)}${r.stderr.trim() ? `\n${tail(r.stderr, 5)}` : ''}${note}`,
        logs?.stdout,
      );
    }
    const lsn = p.check
      ? ''
      : (await t.exec(newCheckpointScript(ctx, p), { signal: ctx.signal })).stdout.trim();
    ctx.log(
      p.check
        ? `clusters are compatible (${seconds.toFixed(1)} s)`
        : `upgraded in ${seconds.toFixed(1)} s; new cluster at checkpoint ${lsn}`,
    );
    return {
      check: p.check === true,
      mode: p.mode ?? 'link',
      seconds,
      old_data_dir: p.old_data_dir,
      new_data_dir: p.new_data_dir,
      new_checkpoint_lsn: lsn,
      output: tail(r.stdout, 20),
    };
  },
  undoPlan(ctx, p, out) {
    if (p.old_is_copy)
      return {
        action: 'none of its own: the old data directory is a copy, removed by its own undo',
        ops: [],
      };
    if (out.check || out.mode !== 'link')
      return { action: 'nothing: the old cluster was not touched', ops: [] };
    return {
      action: 'put the old cluster back (global/pg_control.old → pg_control) unless the new one has run',
      ops: [{ kind: 'command', line: restoreScript(ctx, p, out.new_checkpoint_lsn) }],
    };
  },
  async undo(ctx, p, out) {
    if (p.old_is_copy || out.check || out.mode !== 'link') return;
    const said = await putBack(ctx, p, out.new_checkpoint_lsn || undefined);
    if (said) ctx.log(said);
  },
});

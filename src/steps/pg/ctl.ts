// `pg.ctl`: start or stop a PostgreSQL server with pg_ctl, as the server's OS user. An upgrade
// stops every node by hand (Patroni paused and stopped leaves PostgreSQL running), and on the
// way back starts them again: stop ↔ start are each other's undo, done only if this step acted.
import { basename, dirname } from 'node:path';
import { Type } from '@sinclair/typebox';
import { asUser, serverUser } from '../../connections/run-as.js';
import { StepFailure } from '../../errors.js';
import { quote } from '../../util/shell.js';
import { type ApplyContext, defineStep, type PlanContext } from '../define.js';
import { knownBinDir, pgBinary } from './binaries.js';

const Params = Type.Object(
  {
    action: Type.Union([Type.Literal('stop'), Type.Literal('start')]),
    data_dir: Type.Optional(
      Type.String({ pattern: '^/', description: 'the data directory (default: host var pgdata)' }),
    ),
    bin_dir: Type.Optional(
      Type.String({
        pattern: '^/',
        description:
          "where pg_ctl is (default: host var pg_bin_dir, else Debian's /usr/lib/postgresql/MAJOR/bin from PG_VERSION)",
      }),
    ),
    mode: Type.Optional(
      Type.Union([Type.Literal('smart'), Type.Literal('fast'), Type.Literal('immediate')], {
        description: 'shutdown mode (default fast: sessions are ended, a shutdown checkpoint is written)',
      }),
    ),
    timeout: Type.Optional(Type.Integer({ minimum: 1, description: 'seconds pg_ctl waits (default 300)' })),
    log_file: Type.Optional(
      Type.String({
        pattern: '^/',
        description: 'start: server log (default DATA_PARENT/pg_ctl-DATA_NAME.log)',
      }),
    ),
    options: Type.Optional(
      Type.String({ description: 'start: options for the server (pg_ctl -o), e.g. "-c config_file=/etc/…"' }),
    ),
    run_as: Type.Optional(
      Type.String({ minLength: 1, description: 'OS user (default: host var pg_os_user, else postgres)' }),
    ),
  },
  { additionalProperties: false },
);

const Outputs = Type.Object({
  action: Type.String(),
  data_dir: Type.String(),
  changed: Type.Boolean({ description: 'false when it already was in the wanted state' }),
  at: Type.String({ description: "when the command was sent (ISO time, this machine's clock)" }),
  at_ms: Type.Number({ description: 'the same, in milliseconds since the epoch (for durations)' }),
  seconds: Type.Number({ description: 'how long pg_ctl took' }),
});

type P = typeof Params.static;
type Out = typeof Outputs.static;

const dataDirOf = (ctx: PlanContext, p: P): string => {
  const d = p.data_dir ?? ctx.host.vars.pgdata;
  if (typeof d !== 'string' || !d.startsWith('/'))
    throw new StepFailure(`pg.ctl: data_dir not given and host var pgdata not set for ${ctx.host.name}`);
  return d;
};

function pgCtl(ctx: PlanContext, p: P, data: string): string {
  const bin =
    p.bin_dir ?? (typeof ctx.host.vars.pg_bin_dir === 'string' ? ctx.host.vars.pg_bin_dir : undefined);
  return bin
    ? quote(`${bin}/pg_ctl`)
    : `"/usr/lib/postgresql/$(cat ${quote(`${data}/PG_VERSION`)})/bin/pg_ctl"`;
}

/**
 * One script: ask pg_ctl status first (0 running, 3 stopped), act only if needed, and say which.
 * A data directory pg_ctl does not know (4) is an error, not "stopped".
 */
function script(ctx: PlanContext, p: P, action: 'stop' | 'start'): string {
  const data = dataDirOf(ctx, p);
  const ctl = pgCtl(ctx, p, data);
  const t = p.timeout ?? 300;
  const D = quote(data);
  const act =
    action === 'stop'
      ? `${ctl} stop -D ${D} -m ${p.mode ?? 'fast'} -w -t ${t}`
      : `${ctl} start -D ${D} -w -t ${t} -l ${quote(p.log_file ?? `${dirname(data)}/pg_ctl-${basename(data)}.log`)}${p.options ? ` -o ${quote(p.options)}` : ''}`;
  const already = action === 'stop' ? 3 : 0;
  const lines = [
    // For a stop, no data directory (status 4) is as stopped as it gets.
    ...(action === 'stop'
      ? [
          `if [ ! -e ${quote(`${data}/PG_VERSION`)} ]; then echo 'pgrunbook: already stopped (no data directory)'; exit 0; fi`,
        ]
      : []),
    `${ctl} status -D ${D} >/dev/null; s=$?`,
    `if [ $s = ${already} ]; then echo 'pgrunbook: already ${action === 'stop' ? 'stopped' : 'running'}'; exit 0; fi`,
    `if [ $s != ${action === 'stop' ? 0 : 3} ]; then echo "pgrunbook: pg_ctl status says $s for ${data.replace(/["$`\\]/g, '')}" >&2; exit 1; fi`,
    act,
  ];
  return asUser(ctx.host, serverUser(ctx.host, p.run_as), lines.join('\n'));
}

const opposite = (a: 'stop' | 'start') => (a === 'stop' ? 'start' : 'stop');

async function act(ctx: ApplyContext, p: P, action: 'stop' | 'start'): Promise<Out> {
  const t = await ctx.transport();
  ctx.changing();
  const atMs = Date.now();
  const r = await t.exec(script(ctx, p, action), {
    signal: ctx.signal,
    onOutput: (s, c) => ctx.output(s, c),
  });
  const seconds = (Date.now() - atMs) / 1000;
  if (r.exitCode !== 0)
    throw new StepFailure(
      `pg_ctl ${action} failed (exit ${r.exitCode}): ${(r.stderr || r.stdout).trim().split('\n').slice(-5).join('\n')}`,
    );
  const changed = !r.stdout.includes('pgrunbook: already');
  ctx.log(
    changed
      ? `${action === 'stop' ? 'stopped' : 'started'} in ${seconds.toFixed(1)} s`
      : `already ${action === 'stop' ? 'stopped' : 'running'}`,
  );
  return {
    action,
    data_dir: dataDirOf(ctx, p),
    changed,
    at: new Date(atMs).toISOString(),
    at_ms: atMs,
    seconds,
  };
}

export default defineStep({
  type: 'pg.ctl',
  summary: 'Stop or start a PostgreSQL server with pg_ctl (waits), as the server OS user.',
  params: Params,
  outputs: Outputs,
  mutating: true,
  marksChanges: true,
  undoSummary: 'the opposite action (start after a stop, stop after a start), only if this step acted',
  needs(ctx, p) {
    // Without bin_dir or pg_bin_dir, the directory follows the data directory's PG_VERSION.
    const bin = knownBinDir(p, ctx.host.vars);
    return bin ? { binaries: [pgBinary(bin.dir, 'pg_ctl', bin.param)] } : {};
  },
  plan(ctx, p) {
    return {
      action: `${p.action} PostgreSQL in ${dataDirOf(ctx, p)}`,
      ops: [{ kind: 'command', line: script(ctx, p, p.action) }],
      undo: {
        action: `${opposite(p.action)} it again (if this step ${p.action === 'stop' ? 'stopped' : 'started'} it)`,
        ops: [{ kind: 'command', line: script(ctx, { ...p, mode: 'fast' }, opposite(p.action)) }],
      },
    };
  },
  apply: (ctx, p) => act(ctx, p, p.action),
  undoPlan(ctx, p, out) {
    if (!out.changed)
      return { action: `nothing: it was already ${p.action === 'stop' ? 'stopped' : 'running'}`, ops: [] };
    return {
      action: `${opposite(p.action)} PostgreSQL in ${out.data_dir} again`,
      ops: [{ kind: 'command', line: script(ctx, { ...p, mode: 'fast' }, opposite(p.action)) }],
    };
  },
  async undo(ctx, p, out) {
    if (!out.changed) return;
    await act(ctx, { ...p, mode: 'fast' }, opposite(p.action));
  },
});

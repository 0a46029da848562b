// `pg.carry_config`: after pg_upgrade, the new data directory still has initdb's access rules
// and none of the old cluster's ALTER SYSTEM settings or Patroni's saved dynamic configuration.
// PostgreSQL's procedure says to restore them; with Patroni, patroni.dynamic.json is what a
// fresh DCS (after remove_cluster) is seeded from — without it synchronous_mode, slots and
// DCS-held parameters would silently revert to patroni.yml's bootstrap section. Parameters the
// new major removed or renamed are rewritten; a saved pause is dropped (a paused new cluster
// would never start PostgreSQL). Contents are never logged: they may hold secrets.
import { Type } from '@sinclair/typebox';
import { asUser, serverUser } from '../../connections/run-as.js';
import { StepFailure } from '../../errors.js';
import { quote } from '../../util/shell.js';
import { defineStep, type PlanContext } from '../define.js';
import { changesFor } from './parameter-changes.js';

const FILES = ['pg_hba.conf', 'pg_ident.conf', 'postgresql.auto.conf', 'patroni.dynamic.json'] as const;

const Params = Type.Object(
  {
    from: Type.String({ pattern: '^/', description: 'the old data directory' }),
    to: Type.String({ pattern: '^/', description: 'the new data directory' }),
    for_major: Type.Integer({
      minimum: 10,
      description: 'the new major (parameters it removed or renamed are rewritten)',
    }),
    wal_segment_size_mb: Type.Optional(
      Type.Integer({ minimum: 1, description: 'for wal_keep_segments → wal_keep_size (default 16)' }),
    ),
    files: Type.Optional(
      Type.Array(Type.Union(FILES.map((f) => Type.Literal(f))), {
        description: `which files (default all: ${FILES.join(', ')}); a file the old directory lacks is skipped`,
      }),
    ),
    run_as: Type.Optional(
      Type.String({ minLength: 1, description: 'OS user (default: host var pg_os_user, else postgres)' }),
    ),
  },
  { additionalProperties: false },
);

const Outputs = Type.Object({
  carried: Type.Array(Type.String()),
  changes: Type.Array(Type.String(), { description: 'parameters rewritten or dropped, per file' }),
});

type P = typeof Params.static;

/** postgresql.auto.conf: `name = 'value'` lines; removed parameters dropped, renamed ones renamed. */
export function carryAutoConf(
  text: string,
  major: number,
  segMb: number,
): { text: string; changes: string[] } {
  const changes: string[] = [];
  const out = text.split('\n').flatMap((line) => {
    const m = line.match(/^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*=?\s*(.*)$/);
    const c = m ? changesFor(major).find((x) => x.name === m[1]!.toLowerCase()) : undefined;
    if (!m || !c) return [line];
    if (c.to === null) {
      changes.push(`postgresql.auto.conf: ${c.name} dropped (not a parameter in PostgreSQL ${c.major}+)`);
      return [];
    }
    const raw = m[2]!.trim().replace(/^'(.*)'$/, '$1');
    const [name, value] = c.to(raw, segMb);
    changes.push(`postgresql.auto.conf: ${c.name} → ${name} = '${value}'`);
    return [`${name} = '${value}'`];
  });
  return { text: out.join('\n'), changes };
}

/** patroni.dynamic.json: no pause, parameters rewritten. */
export function carryDynamicJson(
  text: string,
  major: number,
  segMb: number,
): { text: string; changes: string[] } {
  let conf: Record<string, unknown>;
  try {
    conf = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new StepFailure('patroni.dynamic.json in the old data directory is not JSON');
  }
  const changes: string[] = [];
  if ('pause' in conf) {
    delete conf.pause;
    changes.push('patroni.dynamic.json: pause dropped (the new cluster starts unpaused)');
  }
  const pg = conf.postgresql as Record<string, unknown> | undefined;
  const params = pg?.parameters as Record<string, unknown> | undefined;
  for (const c of changesFor(major)) {
    if (!params || !(c.name in params)) continue;
    const v = String(params[c.name]);
    delete params[c.name];
    if (c.to === null) {
      changes.push(`patroni.dynamic.json: ${c.name} dropped (not a parameter in PostgreSQL ${c.major}+)`);
      continue;
    }
    const [name, value] = c.to(v, segMb);
    if (!(name in params)) params[name] = value;
    changes.push(`patroni.dynamic.json: ${c.name} → ${name}: ${value}`);
  }
  return { text: `${JSON.stringify(conf)}\n`, changes };
}

const files = (p: P) => p.files ?? [...FILES];
const as = (ctx: PlanContext, p: P, s: string) => asUser(ctx.host, serverUser(ctx.host, p.run_as), s);
const readLine = (ctx: PlanContext, p: P, f: string) =>
  as(ctx, p, `f=${quote(`${p.from}/${f}`)}; [ -e "$f" ] || exit 3; cat -- "$f"`);
const writeLine = (ctx: PlanContext, p: P, f: string) =>
  as(
    ctx,
    p,
    `set -e\n(umask 077 && cat > ${quote(`${p.to}/${f}.pgrunbook-tmp`)})\nmv -f -- ${quote(`${p.to}/${f}.pgrunbook-tmp`)} ${quote(`${p.to}/${f}`)}`,
  );
const removeLine = (ctx: PlanContext, p: P) =>
  as(
    ctx,
    p,
    `rm -f -- ${files(p)
      .map((f) => quote(`${p.to}/${f}`))
      .join(' ')}`,
  );

export default defineStep({
  type: 'pg.carry_config',
  summary:
    "Carry the old data directory's pg_hba.conf, pg_ident.conf, ALTER SYSTEM settings and patroni.dynamic.json into the upgraded one.",
  params: Params,
  outputs: Outputs,
  mutating: true,
  marksChanges: true,
  undoSummary:
    'removes the carried files from the new data directory (its own undo, pg.initdb, removes the rest)',
  plan(ctx, p) {
    return {
      action: `carry ${files(p).join(', ')} from ${p.from} to ${p.to} (PostgreSQL ${p.for_major})`,
      ops: [
        ...files(p).map((f) => ({ kind: 'command' as const, line: readLine(ctx, p, f) })),
        {
          kind: 'note',
          text: `parameters PostgreSQL ${p.for_major} removed or renamed are rewritten; a saved pause is dropped; each file is written with the next command, fed on stdin (contents not shown)`,
        },
        ...files(p).map((f) => ({ kind: 'command' as const, line: writeLine(ctx, p, f) })),
      ],
      undo: {
        action: `remove the carried files from ${p.to}`,
        ops: [{ kind: 'command', line: removeLine(ctx, p) }],
      },
    };
  },
  async apply(ctx, p) {
    const t = await ctx.transport();
    const seg = p.wal_segment_size_mb ?? 16;
    const carried: string[] = [];
    const changes: string[] = [];
    for (const f of files(p)) {
      const r = await t.exec(readLine(ctx, p, f), { signal: ctx.signal });
      if (r.exitCode === 3) {
        ctx.log(`${f}: not in ${p.from}, skipped`);
        continue;
      }
      if (r.exitCode !== 0)
        throw new StepFailure(`reading ${p.from}/${f} failed: ${r.stderr.trim().slice(-300)}`);
      const done =
        f === 'postgresql.auto.conf'
          ? carryAutoConf(r.stdout, p.for_major, seg)
          : f === 'patroni.dynamic.json'
            ? carryDynamicJson(r.stdout, p.for_major, seg)
            : { text: r.stdout, changes: [] };
      ctx.changing();
      const w = await t.exec(writeLine(ctx, p, f), { signal: ctx.signal, stdin: done.text });
      if (w.exitCode !== 0)
        throw new StepFailure(`writing ${p.to}/${f} failed: ${w.stderr.trim().slice(-300)}`);
      carried.push(f);
      changes.push(...done.changes);
    }
    ctx.log(`carried ${carried.join(', ') || 'nothing'} into ${p.to}`);
    for (const c of changes) ctx.log(c);
    return { carried, changes };
  },
  async undo(ctx, p) {
    const t = await ctx.transport();
    const r = await t.exec(removeLine(ctx, p), { signal: ctx.signal });
    if (r.exitCode !== 0) throw new StepFailure(`removing the carried files failed: ${r.stderr.trim()}`);
  },
});

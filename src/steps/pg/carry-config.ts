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
// One command reads every file and one writes them all: this step runs inside the upgrade's
// window, where each round trip to the host is time without writes. A line per file: its name,
// then "-" when the old directory lacks it, else "+" and its bytes in base64 (contents may be any
// bytes; the transport hands back text).
const readLine = (ctx: PlanContext, p: P) =>
  as(
    ctx,
    p,
    `cd ${quote(p.from)} || exit 1\nfor f in ${files(p).join(' ')}; do if [ -e "$f" ]; then printf '%s +' "$f"; base64 -w0 -- "$f" || exit 1; echo; else echo "$f -"; fi; done`,
  );
// The names are the FILES allowlist again on the host's side: the input decides no path.
const writeLine = (ctx: PlanContext, p: P) =>
  as(
    ctx,
    p,
    [
      'set -e',
      'umask 077',
      `cd ${quote(p.to)}`,
      'while read -r f b; do',
      `  case "$f" in ${FILES.join('|')}) ;; *) echo "not a carried file: $f" >&2; exit 2 ;; esac`,
      `  printf '%s' "$b" | base64 -d > "$f.pgrunbook-tmp"`,
      '  mv -f -- "$f.pgrunbook-tmp" "$f"',
      'done',
    ].join('\n'),
  );

/** The read command's output: each file's bytes in base64, or null when the old directory lacks it. */
export function parseCarried(stdout: string): Map<string, string | null> {
  const out = new Map<string, string | null>();
  for (const line of stdout.split('\n')) {
    const m = line.match(/^(\S+) (?:-|\+([A-Za-z0-9+/=]*))$/);
    if (m) out.set(m[1]!, m[2] ?? null);
  }
  return out;
}

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
        { kind: 'command', line: readLine(ctx, p) },
        {
          kind: 'note',
          text: `parameters PostgreSQL ${p.for_major} removed or renamed are rewritten; a saved pause is dropped; the files are written with the next command, fed on stdin (contents not shown)`,
        },
        { kind: 'command', line: writeLine(ctx, p) },
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
    const r = await t.exec(readLine(ctx, p), { signal: ctx.signal });
    if (r.exitCode !== 0)
      throw new StepFailure(`reading the files in ${p.from} failed: ${r.stderr.trim().slice(-300)}`);
    const found = parseCarried(r.stdout);
    const input: string[] = [];
    for (const f of files(p)) {
      if (!found.has(f)) throw new StepFailure(`reading ${p.from}/${f} gave no answer`);
      const b64 = found.get(f);
      if (b64 === null || b64 === undefined) {
        ctx.log(`${f}: not in ${p.from}, skipped`);
        continue;
      }
      // Access rules go over byte for byte; the two files with parameters are rewritten as text.
      const text = () => Buffer.from(b64, 'base64').toString('utf8');
      const done =
        f === 'postgresql.auto.conf'
          ? carryAutoConf(text(), p.for_major, seg)
          : f === 'patroni.dynamic.json'
            ? carryDynamicJson(text(), p.for_major, seg)
            : undefined;
      input.push(`${f} ${done ? Buffer.from(done.text, 'utf8').toString('base64') : b64}`);
      if (done) changes.push(...done.changes);
      carried.push(f);
    }
    if (input.length > 0) {
      ctx.changing();
      const w = await t.exec(writeLine(ctx, p), { signal: ctx.signal, stdin: `${input.join('\n')}\n` });
      if (w.exitCode !== 0)
        throw new StepFailure(`writing the files into ${p.to} failed: ${w.stderr.trim().slice(-300)}`);
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

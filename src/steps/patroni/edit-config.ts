// `patroni.edit_config`: point a member's patroni.yml at the new major (bin_dir, data_dir) and
// carry its PostgreSQL parameters over settings the new major removed or renamed — both in
// `postgresql.parameters` and in `bootstrap.dcs` (which a fresh DCS, after remove_cluster, is
// seeded from). Edits keep comments and layout (yaml's Document API). The original is kept next
// to it (`backup`), the undo puts it back, and the rollback playbook uses that copy. The file
// holds passwords: its content is never logged, planned or journaled, only the keys changed.
import { Type } from '@sinclair/typebox';
import { type Document, isMap, isScalar, parseDocument } from 'yaml';
import { commandLine } from '../../connections/transport.js';
import { StepFailure } from '../../errors.js';
import { quote } from '../../util/shell.js';
import { type ApplyContext, defineStep, type PlanContext } from '../define.js';
import { PARAMETER_CHANGES } from '../pg/parameter-changes.js';

const Params = Type.Object(
  {
    path: Type.Optional(
      Type.String({ pattern: '^/', description: "patroni.yml (default: the host's patroni.config)" }),
    ),
    backup: Type.String({ pattern: '^/', description: 'where the original is kept (must not exist yet)' }),
    set: Type.Optional(
      Type.Record(
        Type.String({ pattern: '^[A-Za-z0-9_]+(\\.[A-Za-z0-9_]+)*$' }),
        Type.Union([Type.String(), Type.Number(), Type.Boolean()]),
        {
          description: 'dotted key → value, e.g. postgresql.bin_dir: /usr/lib/postgresql/15/bin',
        },
      ),
    ),
    parameters_for: Type.Optional(
      Type.Integer({
        minimum: 10,
        description: 'rewrite PostgreSQL parameters this major removed or renamed',
      }),
    ),
    wal_segment_size_mb: Type.Optional(
      Type.Integer({ minimum: 1, description: 'for wal_keep_segments → wal_keep_size (default 16)' }),
    ),
  },
  { additionalProperties: false },
);

const Outputs = Type.Object({
  path: Type.String(),
  backup: Type.String(),
  changes: Type.Array(Type.String(), {
    description: 'one line per key changed, values of secrets never shown',
  }),
});

type P = typeof Params.static;

const PARAMETER_MAPS = [
  ['postgresql', 'parameters'],
  ['bootstrap', 'dcs', 'postgresql', 'parameters'],
];

/** Applies the edits to the YAML text; returns the new text and what changed. */
export function editPatroniYaml(
  text: string,
  p: Pick<P, 'set' | 'parameters_for' | 'wal_segment_size_mb'>,
): { text: string; changes: string[] } {
  const doc: Document = parse(text);
  const changes: string[] = [];
  // Paths this edit may change; everything else must read back the same.
  const touched: string[][] = [];
  for (const [key, value] of Object.entries(p.set ?? {})) {
    const path = key.split('.');
    touched.push(path);
    const before = doc.getIn(path);
    if (before === value) continue;
    // setIn through a missing map makes the map but drops the value (yaml 2): make them first.
    for (let i = 1; i < path.length; i++)
      if (doc.getIn(path.slice(0, i)) === undefined) doc.setIn(path.slice(0, i), doc.createNode({}));
    doc.setIn(path, value);
    changes.push(`${key}: ${shown(key, before)} → ${shown(key, value)}`);
  }
  if (p.parameters_for !== undefined) {
    for (const where of PARAMETER_MAPS) {
      const map = doc.getIn(where, true);
      if (!isMap(map)) continue;
      for (const c of PARAMETER_CHANGES) {
        if (c.major > p.parameters_for || !map.has(c.name)) continue;
        const node = map.get(c.name, true);
        const v = String(isScalar(node) ? node.value : node);
        map.delete(c.name);
        touched.push([...where, c.name]);
        const at = `${where.join('.')}.${c.name}`;
        if (c.to === null) {
          changes.push(`${at}: removed (not a parameter in PostgreSQL ${c.major}+)`);
          continue;
        }
        const [name, nv] = c.to(v, p.wal_segment_size_mb ?? 16);
        touched.push([...where, name]);
        if (map.has(name)) changes.push(`${at}: removed (${where.join('.')}.${name} is already set)`);
        else {
          map.set(name, nv);
          changes.push(`${at}: ${v} → ${where.join('.')}.${name}: ${nv}`);
        }
      }
    }
  }
  const out = doc.toString();
  // Written back, nothing else may read differently to Patroni (an octal 0700 turned 700 would
  // stop PostgreSQL from starting after the point of no return).
  const after = parse(out).toJS() as Record<string, unknown>;
  const expected = parse(text).toJS() as Record<string, unknown>;
  for (const path of touched) putAt(expected, path, getAt(after, path));
  if (JSON.stringify(expected) !== JSON.stringify(after))
    throw new StepFailure(
      'patroni.yml would read differently after the edit beyond the keys changed: not writing it',
    );
  return { text: out, changes };
}

/**
 * Patroni reads its file with PyYAML, which speaks YAML 1.1 (0700 is octal, `on` is true). Parse
 * errors quote the offending line, which may hold a password: only where it is gets reported.
 */
function parse(text: string): Document {
  const doc = parseDocument(text, { version: '1.1', prettyErrors: false });
  const e = doc.errors[0];
  if (e) {
    const line = text.slice(0, e.pos[0]).split('\n').length;
    throw new StepFailure(`patroni.yml does not parse as YAML (${e.code} at line ${line})`);
  }
  return doc;
}

const SECRET_KEY = /pass|secret|token|key/i;
const shown = (key: string, v: unknown) =>
  SECRET_KEY.test(key) ? '***' : v === undefined ? '(unset)' : JSON.stringify(v);

const pathOf = (ctx: PlanContext, p: P): string => {
  const path = p.path ?? ctx.host.patroni?.config;
  if (!path)
    throw new StepFailure(
      `patroni.edit_config: no path, and no patroni.config for ${ctx.host.name} in the inventory`,
    );
  return path;
};

const readLine = (ctx: PlanContext, p: P) =>
  commandLine({ script: `cat -- ${quote(pathOf(ctx, p))}` }, ctx.host.become);

/** Keeps the original (owner and mode too), then replaces the file atomically with the same owner/mode. */
function writeLine(ctx: PlanContext, p: P): string {
  const f = quote(pathOf(ctx, p));
  const tmp = quote(`${pathOf(ctx, p)}.pgrunbook-tmp`);
  const b = quote(p.backup);
  return commandLine(
    {
      script: [
        'set -e',
        `if [ -e ${b} ]; then echo 'pgrunbook: ${p.backup.replace(/'/g, '')} exists: an earlier edit kept its original there; move it away first' >&2; exit 3; fi`,
        `cp -p -- ${f} ${b}`,
        `(umask 077 && cat > ${tmp})`,
        `chown --reference=${f} ${tmp}`,
        `chmod --reference=${f} ${tmp}`,
        `mv -f -- ${tmp} ${f}`,
        `sync -- ${f}`,
      ].join('\n'),
    },
    ctx.host.become,
  );
}

const restoreLine = (ctx: PlanContext, p: P) =>
  commandLine(
    {
      script: `set -e\n[ -e ${quote(p.backup)} ] || exit 0\nmv -f -- ${quote(p.backup)} ${quote(pathOf(ctx, p))}`,
    },
    ctx.host.become,
  );

export default defineStep({
  type: 'patroni.edit_config',
  summary:
    "Edit a member's patroni.yml (bin_dir, data_dir, parameters the new major renamed), keeping the original.",
  params: Params,
  outputs: Outputs,
  mutating: true,
  marksChanges: true,
  undoSummary: 'puts the original back from `backup`',
  plan(ctx, p) {
    const sets = Object.entries(p.set ?? {}).map(([k, v]) => `set ${k}: ${shown(k, v)}`);
    return {
      action: `edit ${pathOf(ctx, p)} (original kept as ${p.backup})`,
      ops: [
        { kind: 'command', line: readLine(ctx, p) },
        ...sets.map((text) => ({ kind: 'note' as const, text })),
        ...(p.parameters_for !== undefined
          ? [
              {
                kind: 'note' as const,
                text: `rewrite parameters PostgreSQL ${p.parameters_for} removed or renamed (postgresql.parameters, bootstrap.dcs)`,
              },
            ]
          : []),
        { kind: 'note', text: 'the edited file is fed on stdin (not shown: patroni.yml holds passwords)' },
        { kind: 'command', line: writeLine(ctx, p) },
      ],
      undo: {
        action: `put the original ${pathOf(ctx, p)} back`,
        ops: [{ kind: 'command', line: restoreLine(ctx, p) }],
      },
    };
  },
  async apply(ctx, p) {
    const t = await ctx.transport();
    const path = pathOf(ctx, p);
    const r = await t.exec(readLine(ctx, p), { signal: ctx.signal });
    if (r.exitCode !== 0) throw new StepFailure(`reading ${path} failed: ${r.stderr.trim()}`);
    const { text, changes } = editPatroniYaml(r.stdout, p);
    ctx.changing();
    const w = await t.exec(writeLine(ctx, p), { signal: ctx.signal, stdin: text });
    if (w.exitCode !== 0)
      throw new StepFailure(
        w.exitCode === 3
          ? w.stderr.trim().replace(/^pgrunbook: /, '')
          : `writing ${path} failed: ${w.stderr.trim()}`,
      );
    for (const c of changes) ctx.log(c);
    if (changes.length === 0) ctx.log('nothing to change');
    return { path, backup: p.backup, changes };
  },
  async undo(ctx: ApplyContext, p) {
    const t = await ctx.transport();
    const r = await t.exec(restoreLine(ctx, p), { signal: ctx.signal });
    if (r.exitCode !== 0) throw new StepFailure(`restoring ${pathOf(ctx, p)} failed: ${r.stderr.trim()}`);
  },
});

function getAt(obj: unknown, path: string[]): unknown {
  let at = obj;
  for (const k of path) at = at && typeof at === 'object' ? (at as Record<string, unknown>)[k] : undefined;
  return at;
}

/** Sets (or, for undefined, deletes) the value at `path`, making the maps on the way as setIn does. */
function putAt(obj: Record<string, unknown>, path: string[], value: unknown): void {
  let at = obj;
  for (const k of path.slice(0, -1)) {
    if (!at[k] || typeof at[k] !== 'object') {
      if (value === undefined) return;
      at[k] = {};
    }
    at = at[k] as Record<string, unknown>;
  }
  const leaf = path[path.length - 1]!;
  if (value === undefined) delete at[leaf];
  else at[leaf] = value;
}

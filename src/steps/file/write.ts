// `file.write`: put content at a path on the host, atomically, refusing to overwrite unless told.
import { Type } from '@sinclair/typebox';
import { commandLine } from '../../connections/transport.js';
import { StepFailure } from '../../errors.js';
import { quote } from '../../util/shell.js';
import { defineStep, type Operation } from '../define.js';

const Params = Type.Object(
  {
    path: Type.String({ minLength: 1, pattern: '^/', description: 'an absolute path' }),
    content: Type.String(),
    mode: Type.Optional(
      Type.String({ pattern: '^0?[0-7]{3}$', description: "an octal mode in quotes, like '0640'" }),
    ),
    force: Type.Optional(Type.Boolean({ description: 'overwrite an existing file (kept aside for undo)' })),
  },
  { additionalProperties: false },
);

const Outputs = Type.Object({
  created: Type.Boolean({ description: 'the file did not exist before' }),
  backup: Type.Optional(Type.String({ description: 'where the previous content was kept' })),
});

const EXISTS = 17;
/** A backup name of its own per write, so two forced writes of one file keep the original. */
const backupOf = (path: string, stamp: string) => `${path}.pgrunbook-undo-${stamp}`;
const PLAN_STAMP = 'STAMP';

/** Writes stdin to a temp file beside the target and renames it, so readers never see half a file. */
function writeScript(p: { path: string; mode?: string; force?: boolean }, stamp: string): string {
  const path = quote(p.path);
  const tmp = quote(`${p.path}.pgrunbook-tmp`);
  const backup = quote(backupOf(p.path, stamp));
  const keep = p.force
    ? `if [ -e ${backup} ]; then echo ${backup} exists >&2; exit 18; fi; cp -p ${path} ${backup} && echo existed`
    : `echo ${quote(`${p.path} exists; set force: true to overwrite it`)} >&2; exit ${EXISTS}`;
  return [
    'set -e',
    `if [ -e ${path} ]; then ${keep}; fi`,
    `(umask 077 && cat > ${tmp})`,
    `chmod ${p.mode ?? '0644'} ${tmp}`,
    `mv -f ${tmp} ${path}`,
  ].join('\n');
}

function undoScript(path: string, out: { created: boolean; backup?: string }): string {
  return out.created || !out.backup ? `rm -f ${quote(path)}` : `mv -f ${quote(out.backup)} ${quote(path)}`;
}

export default defineStep({
  type: 'file.write',
  summary: 'Write content to a file on the host (atomic rename); refuses to overwrite unless force: true.',
  params: Params,
  outputs: Outputs,
  mutating: true,
  marksChanges: true,
  undoSummary: 'removes the file it created, or puts back the previous content it kept aside',
  plan(ctx, p) {
    const ops: Operation[] = [
      {
        kind: 'command',
        line: commandLine({ script: writeScript(p, PLAN_STAMP) }, ctx.host.become),
        stdin: ctx.unknown.has('content') ? undefined : p.content,
      },
    ];
    return {
      action: `write ${p.path} (${ctx.unknown.has('content') ? 'size known after apply' : `${Buffer.byteLength(p.content)} bytes`}, mode ${p.mode ?? '0644'})`,
      ops,
      undo: {
        action: p.force
          ? 'remove the file, or restore the previous content if one existed'
          : 'remove the file',
        ops: p.force
          ? [
              {
                kind: 'note',
                text: `rm -f ${p.path}, or mv -f ${backupOf(p.path, PLAN_STAMP)} ${p.path} when it existed`,
              },
            ]
          : [
              {
                kind: 'command',
                line: commandLine({ script: undoScript(p.path, { created: true }) }, ctx.host.become),
              },
            ],
      },
    };
  },
  undoPlan(ctx, p, out) {
    return {
      action: out.created
        ? 'remove the file it created'
        : `put back the previous content kept in ${out.backup}`,
      ops: [{ kind: 'command', line: commandLine({ script: undoScript(p.path, out) }, ctx.host.become) }],
    };
  },
  async apply(ctx, p) {
    const t = await ctx.transport();
    // One script checks and writes: past the host's transport, it may have written.
    ctx.changing();
    const stamp = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
    const r = await t.exec(commandLine({ script: writeScript(p, stamp) }, ctx.host.become), {
      stdin: p.content,
      signal: ctx.signal,
    });
    if (r.exitCode === EXISTS) throw new StepFailure(r.stderr.trim());
    if (r.exitCode !== 0)
      throw new StepFailure(`writing ${p.path} failed (exit ${r.exitCode}): ${r.stderr.trim()}`);
    const existed = r.stdout.includes('existed');
    return existed ? { created: false, backup: backupOf(p.path, stamp) } : { created: true };
  },
  async undo(ctx, p, out) {
    const t = await ctx.transport();
    const r = await t.exec(commandLine({ script: undoScript(p.path, out) }, ctx.host.become), {
      signal: ctx.signal,
    });
    if (r.exitCode !== 0) throw new StepFailure(`undoing the write of ${p.path} failed: ${r.stderr.trim()}`);
  },
});

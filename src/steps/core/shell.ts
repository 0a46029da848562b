// `shell`: run a command (argv list or sh script) over the host's transport.
import { Type } from '@sinclair/typebox';
import { asUser } from '../../connections/run-as.js';
import { type CommandSpec, commandLine } from '../../connections/transport.js';
import { StepFailure } from '../../errors.js';
import type { InventoryHost } from '../../inventory/inventory.js';
import { quote } from '../../util/shell.js';
import { defineStep, type Operation } from '../define.js';

const Command = Type.Union(
  [
    Type.String({ minLength: 1, description: 'a sh script' }),
    Type.Array(Type.String(), { minItems: 1, description: 'an argv list' }),
  ],
  { description: 'a sh script (string) or an argv list (each element quoted)' },
);

const Params = Type.Object(
  {
    cmd: Command,
    chdir: Type.Optional(Type.String({ minLength: 1, description: 'directory to run in' })),
    env: Type.Optional(Type.Record(Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$' }), Type.String())),
    stdin: Type.Optional(Type.String({ description: 'text fed to standard input' })),
    revert: Type.Optional(Command),
    read_only: Type.Optional(
      Type.Boolean({
        description:
          'the command only reads (a check, a listing): a failure afterwards does not count it among the changes left behind',
      }),
    ),
    run_as: Type.Optional(
      Type.String({
        minLength: 1,
        description:
          'OS user to run as (e.g. the database server user for vacuumdb); sudo or runuser as the host allows',
      }),
    ),
  },
  { additionalProperties: false },
);

const Outputs = Type.Object({
  rc: Type.Integer({ description: 'exit code' }),
  stdout: Type.String(),
  stderr: Type.String(),
  stdout_lines: Type.Array(Type.String()),
});

function spec(cmd: string | string[]): CommandSpec {
  return typeof cmd === 'string' ? { script: cmd } : { argv: cmd };
}

/** The exact line sent to the host: chdir and env are prepended, then become wraps it all. */
function line(
  cmd: string | string[],
  p: { chdir?: string; env?: Record<string, string>; run_as?: string },
  host: InventoryHost,
): string {
  const prefix: string[] = [];
  if (p.chdir) prefix.push(`cd ${quote(p.chdir)} || exit 1`);
  for (const [k, v] of Object.entries(p.env ?? {})) prefix.push(`export ${k}=${quote(v)}`);
  const body = commandLine(spec(cmd));
  const script = prefix.length ? `${prefix.join('\n')}\n${body}` : body;
  return p.run_as ? asUser(host, p.run_as, script) : commandLine({ script }, host.become);
}

export default defineStep({
  type: 'shell',
  summary: 'Run a command or sh script on the host; fails on a non-zero exit code.',
  params: Params,
  outputs: Outputs,
  mutating: (p) => p.read_only !== true,
  shorthand: 'cmd',
  marksChanges: true,
  shellParams: ['cmd', 'revert'],
  shellInputs: { stdin: 'stdin', env: 'env' },
  undoSummary: 'runs `revert` when given; otherwise none (a command cannot be undone automatically)',
  plan(ctx, p) {
    // A read-only command is never undone: a revert beside it would silently never run.
    if (p.read_only && p.revert)
      throw new StepFailure('read_only and revert together: a command that only reads has nothing to revert');
    const ops: Operation[] = [{ kind: 'command', line: line(p.cmd, p, ctx.host), stdin: p.stdin }];
    const undo = p.revert
      ? {
          action: 'run the revert command',
          ops: [{ kind: 'command', line: line(p.revert, p, ctx.host) } as Operation],
        }
      : undefined;
    return { action: 'run command', ops, undo };
  },
  async apply(ctx, p) {
    const t = await ctx.transport();
    // From here the command runs: whatever it does may be done, even if it fails.
    ctx.changing();
    const r = await t.exec(line(p.cmd, p, ctx.host), {
      signal: ctx.signal,
      stdin: p.stdin,
      onOutput: (s, c) => ctx.output(s, c),
    });
    if (r.exitCode !== 0) {
      const how = r.exitCode === null ? `was killed by signal ${r.signal}` : `exited with code ${r.exitCode}`;
      const tail = r.stderr.trim().split('\n').slice(-5).join('\n');
      throw new StepFailure(`command ${how}${tail ? `: ${tail}` : ''}`, r.stderr);
    }
    return {
      rc: 0,
      stdout: r.stdout,
      stderr: r.stderr,
      stdout_lines: r.stdout.split('\n').filter((l, i, a) => l !== '' || i < a.length - 1),
    };
  },
  async undo(ctx, p) {
    if (!p.revert) return;
    const t = await ctx.transport();
    const r = await t.exec(line(p.revert, p, ctx.host), {
      signal: ctx.signal,
      onOutput: (s, c) => ctx.output(s, c),
    });
    if (r.exitCode !== 0)
      throw new StepFailure(`revert command exited with code ${r.exitCode}: ${r.stderr.trim()}`);
  },
});

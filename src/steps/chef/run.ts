// `chef.run`: converge the host with chef-client, output streamed into the log; Chef's summary
// and the resources it changed become outputs, a failure carries Chef's error block. `plan
// --check` previews it with --why-run. A Chef run is not undone: Chef has no reverse.
import { type Static, Type } from '@sinclair/typebox';
import { commandLine, type ExecResult, type Transport } from '../../connections/transport.js';
import { StepFailure } from '../../errors.js';
import { defineStep, type Operation } from '../define.js';
import { argvOf, Command } from './common.js';
import { type ChefRunReport, parseChefOutput } from './output.js';

const Params = Type.Object(
  {
    command: Type.Optional(
      Command('the chef-client executable, or an argv list to start it (default chef-client)'),
    ),
    once: Type.Optional(
      Type.Boolean({
        description: 'pass --once: one run, ignoring a configured interval and splay (default true)',
      }),
    ),
    override_runlist: Type.Optional(
      Type.String({
        minLength: 1,
        description:
          'pass -o: run these recipes/roles instead of the node run-list (e.g. "recipe[gitlab-patroni]")',
      }),
    ),
    json_attributes: Type.Optional(
      Type.String({ minLength: 1, description: 'pass -j: a JSON attributes file (path or URL) on the host' }),
    ),
    flags: Type.Optional(
      Type.Array(Type.String({ minLength: 1 }), {
        description:
          'more chef-client arguments, each quoted (--no-color is always passed, so that the output can be read)',
      }),
    ),
    timeout: Type.Optional(
      Type.Number({ minimum: 1, description: 'seconds before chef-client is stopped and the step fails' }),
    ),
  },
  { additionalProperties: false },
);

const Resource = Type.Object({
  resource: Type.String({ description: 'e.g. template[/etc/gitlab/gitlab.rb]' }),
  action: Type.String(),
  changes: Type.Array(Type.String(), { description: 'what Chef said it changed, in its words' }),
});

const Outputs = Type.Object({
  updated: Type.Union([Type.Integer(), Type.Null()], {
    description: 'resources updated (null when the output had no summary line)',
  }),
  total: Type.Union([Type.Integer(), Type.Null()], { description: 'resources in the run' }),
  duration: Type.Union([Type.String(), Type.Null()], {
    description: 'as Chef printed it, e.g. "04 seconds"',
  }),
  duration_seconds: Type.Union([Type.Number(), Type.Null()]),
  resources: Type.Array(Resource, { description: 'the resources Chef reported as changed' }),
  summary: Type.Union([Type.String(), Type.Null()], { description: "Chef's summary line" }),
});

type P = Static<typeof Params>;

const NO_UNDO =
  'none: a Chef run is not reversed automatically (re-run Chef with the previous run-list/attributes)';
const PREVIEW_DIFF_LINES = 40;
const FAILURE_TAIL_LINES = 15;

/** chef-client's argv: --no-color keeps the output parseable whatever the host's terminal says. */
export function chefArgv(p: P, whyRun = false): string[] {
  return [
    ...argvOf(p.command ?? 'chef-client'),
    ...(p.once === false ? [] : ['--once']),
    '--no-color',
    ...(whyRun ? ['--why-run'] : []),
    ...(p.override_runlist ? ['-o', p.override_runlist] : []),
    ...(p.json_attributes ? ['-j', p.json_attributes] : []),
    ...(p.flags ?? []),
  ];
}

/** Runs chef-client with the step's limit; the outcome and what Chef printed, parsed. */
async function runChef(
  ctx: { transport(): Promise<Transport>; signal: AbortSignal },
  line: string,
  p: P,
  onOutput?: (s: 'stdout' | 'stderr', c: string) => void,
): Promise<{ r: ExecResult; report: ChefRunReport; timedOut: boolean }> {
  const limit = p.timeout ? AbortSignal.timeout(p.timeout * 1000) : undefined;
  const signal = limit ? AbortSignal.any([ctx.signal, limit]) : ctx.signal;
  const t = await ctx.transport();
  const r = await t.exec(line, { signal, onOutput });
  const timedOut = limit?.aborted === true && !ctx.signal.aborted;
  return { r, report: parseChefOutput(`${r.stdout}\n${r.stderr}`), timedOut };
}

/** The step's failure: Chef's error block when it printed one, else the end of its output. */
function failure(what: string, r: ExecResult, report: ChefRunReport, timedOut: boolean, p: P): StepFailure {
  const how = timedOut
    ? `did not finish within ${p.timeout}s and was stopped`
    : r.exitCode === null
      ? `was killed by signal ${r.signal}`
      : `exited with code ${r.exitCode}`;
  const tail = `${r.stdout}\n${r.stderr}`
    .trim()
    .split('\n')
    .filter((l) => l.trim())
    .slice(-FAILURE_TAIL_LINES)
    .join('\n');
  const body = report.error ?? tail;
  return new StepFailure(`${what} ${how}${body ? `:\n${body}` : ''}`, tail);
}

export default defineStep({
  type: 'chef.run',
  summary:
    "Run chef-client on the host (output streamed); Chef's summary and changed resources become outputs. `plan --check` previews it with --why-run.",
  params: Params,
  outputs: Outputs,
  mutating: true,
  undoSummary: NO_UNDO,
  needs: (_ctx, p) => ({
    binaries: [
      {
        name: chefArgv(p)[0]!,
        package: "chef (or Chef Infra Client from Chef's own packages)",
        param: 'command',
      },
    ],
  }),
  plan(ctx, p) {
    const ops: Operation[] = [{ kind: 'command', line: commandLine({ argv: chefArgv(p) }, ctx.host.become) }];
    if (p.timeout)
      ops.push({
        kind: 'wait',
        what: 'chef-client finishes (stopped at the limit)',
        timeoutSeconds: p.timeout,
      });
    ops.push({
      kind: 'note',
      text: '`plan --check` asks the host first with the same command plus --why-run',
    });
    return {
      action: `converge with chef-client${p.override_runlist ? ` (run-list overridden: ${p.override_runlist})` : ''}`,
      ops,
      undo: { action: NO_UNDO, ops: [] },
    };
  },
  async preview(ctx, p) {
    const line = commandLine({ argv: chefArgv(p, true) }, ctx.host.become);
    const { r, report, timedOut } = await runChef(ctx, line, p);
    if (r.exitCode !== 0 || timedOut) throw failure('chef-client --why-run', r, report, timedOut, p);
    if (report.updated === null)
      return { summary: 'chef-client --why-run printed no summary line: nothing to report', lines: [] };
    const of = report.total === null ? '' : `/${report.total}`;
    const lines: string[] = [];
    for (const res of report.resources) {
      lines.push(`${res.resource} action ${res.action}`);
      for (const c of res.changes) lines.push(`  - would ${c.charAt(0).toLowerCase()}${c.slice(1)}`);
      const diff = res.diff.slice(0, PREVIEW_DIFF_LINES);
      lines.push(...diff.map((d) => `    ${d}`));
      if (res.diff.length > diff.length) lines.push(`    … ${res.diff.length - diff.length} more diff lines`);
    }
    return { summary: `${report.updated}${of} resources would be updated`, lines };
  },
  async apply(ctx, p) {
    const line = commandLine({ argv: chefArgv(p) }, ctx.host.become);
    const { r, report, timedOut } = await runChef(ctx, line, p, (s, c) => ctx.output(s, c));
    if (r.exitCode !== 0 || timedOut) throw failure('chef-client', r, report, timedOut, p);
    if (report.updated === null)
      ctx.log("no Chef summary line in the output (another formatter?): 'updated' and 'total' are null");
    for (const res of report.resources) ctx.log(`changed: ${res.resource} (${res.changes.join('; ')})`);
    return {
      updated: report.updated,
      total: report.total,
      duration: report.duration,
      duration_seconds: report.durationSeconds,
      resources: report.resources.map(({ resource, action, changes }) => ({ resource, action, changes })),
      summary: report.summary,
    };
  },
});

// `chef.disable`: stop scheduled chef-client runs for the maintenance (a regular run could revert
// what the maintenance sets up, e.g. Patroni's pause); undone by re-enabling, but only if this
// run disabled them: a disable found in place is someone else's and stays.
import { Type } from '@sinclair/typebox';
import { StepFailure } from '../../errors.js';
import { defineStep, type Operation, type PlanContext, type StepPlan } from '../define.js';
import {
  argvLine,
  Command,
  checkDisabled,
  disableLockScript,
  enableLockScript,
  exec,
  execChanging,
  failed,
  lockLines,
  MARK,
  type Mode,
  ModeParams,
  modeOf,
  runIdOf,
  scriptLine,
} from './common.js';

const Params = Type.Object(
  {
    reason: Type.Optional(
      Type.String({
        minLength: 1,
        description: 'why, for whoever finds chef-client disabled (default "pgrunbook run <run id>")',
      }),
    ),
    command: Type.Optional(
      Command(
        'command mode: disables scheduled chef-client runs, with the reason appended as its last argument (GitLab: chef-client-disable)',
      ),
    ),
    enable_command: Type.Optional(
      Command('command mode: enables them again; run by the undo (GitLab: chef-client-enable)'),
    ),
    ...ModeParams,
  },
  { additionalProperties: false },
);

const Outputs = Type.Object({
  disabled_by_run: Type.Boolean({
    description: 'false when chef-client was already disabled (then it is left disabled)',
  }),
  mode: Type.Union([Type.Literal('lock_file'), Type.Literal('command')]),
  lock_file: Type.Optional(Type.String()),
  existing: Type.String({ description: 'the lock file found in place (its content); empty otherwise' }),
  reason: Type.String(),
  run_id: Type.String(),
});

type P = typeof Params.static;

const reasonOf = (ctx: PlanContext, p: P) => p.reason ?? `pgrunbook run ${runIdOf(ctx)}`;

/** The undo as the plan shows it before anything ran: it depends on what apply will find. */
function undoPlan(ctx: PlanContext, mode: Mode, runId: string): NonNullable<StepPlan['undo']> {
  if (mode.kind === 'lock_file')
    return {
      action: `re-enable chef-client: remove ${mode.path}, only if this run created it`,
      ops: [{ kind: 'command', line: scriptLine(ctx, enableLockScript(mode.path, runId)) }],
    };
  const ops: Operation[] = [];
  if (mode.check)
    ops.push(
      { kind: 'command', line: argvLine(ctx, mode.check) },
      { kind: 'note', text: 'exit 1 (already enabled): nothing more to do' },
    );
  ops.push({ kind: 'command', line: argvLine(ctx, mode.enable) });
  return { action: 're-enable chef-client, only if this run disabled it', ops };
}

export default defineStep({
  type: 'chef.disable',
  summary:
    'Stop scheduled chef-client runs (a lock file, or the site\'s command such as chef-client-disable "<reason>"); a disable found in place is left as it is.',
  params: Params,
  outputs: Outputs,
  mutating: true,
  marksChanges: true,
  undoSummary:
    're-enables chef-client (removes the lock file it wrote, or runs enable_command) — only if this run disabled it',
  plan(ctx, p) {
    const mode = modeOf(p, true);
    const runId = runIdOf(ctx);
    const reason = reasonOf(ctx, p);
    if (mode.kind === 'lock_file') {
      const script = disableLockScript(mode.path, lockLines(reason, runId, ctx.host.name));
      return {
        action: `disable scheduled chef-client runs: create the lock file ${mode.path} (one already there is left as it is)`,
        ops: [{ kind: 'command', line: scriptLine(ctx, script) }],
        undo: undoPlan(ctx, mode, runId),
      };
    }
    const ops: Operation[] = [];
    if (mode.check)
      ops.push(
        { kind: 'command', line: argvLine(ctx, mode.check) },
        { kind: 'note', text: 'exit 0 (already disabled): left as it is, and nothing more runs' },
      );
    else
      ops.push({
        kind: 'note',
        text: 'no check_command: an existing disable cannot be told apart, so the undo will enable chef-client',
      });
    ops.push({ kind: 'command', line: argvLine(ctx, [...mode.disable!, reason]) });
    if (mode.check)
      ops.push(
        { kind: 'command', line: argvLine(ctx, mode.check) },
        { kind: 'note', text: 'must now exit 0 (disabled)' },
      );
    return {
      action: 'disable scheduled chef-client runs with the site command',
      ops,
      undo: undoPlan(ctx, mode, runId),
    };
  },
  undoPlan(ctx, p, out) {
    if (!out.disabled_by_run)
      return {
        action: 'none: chef-client was already disabled before this run, and stays disabled',
        ops: [],
      };
    return undoPlan(ctx, modeOf(p, true), out.run_id);
  },
  async apply(ctx, p) {
    const mode = modeOf(p, true);
    const runId = runIdOf(ctx);
    const reason = reasonOf(ctx, p);
    if (mode.kind === 'lock_file') {
      const script = disableLockScript(mode.path, lockLines(reason, runId, ctx.host.name));
      const r = await execChanging(ctx, scriptLine(ctx, script));
      if (r.exitCode !== 0) throw failed(`creating the lock file ${mode.path}`, r);
      const [mark, ...rest] = r.stdout.split('\n');
      const base = { mode: mode.kind, lock_file: mode.path, reason, run_id: runId };
      if (mark === MARK.already) {
        ctx.log(
          `chef-client was already disabled (${mode.path} exists): left as it is, and this run will not re-enable it`,
        );
        return { ...base, disabled_by_run: false, existing: rest.join('\n').trimEnd() };
      }
      if (mark !== MARK.created)
        throw new StepFailure(`unexpected output while creating ${mode.path}: ${r.stdout.slice(0, 200)}`);
      ctx.log(`chef-client disabled: ${mode.path} created`);
      return { ...base, disabled_by_run: true, existing: '' };
    }
    const base = { mode: mode.kind, reason, run_id: runId, existing: '' };
    if (mode.check && (await checkDisabled(ctx, mode.check))) {
      ctx.log('chef-client was already disabled: left as it is, and this run will not re-enable it');
      return { ...base, disabled_by_run: false };
    }
    const r = await execChanging(ctx, argvLine(ctx, [...mode.disable!, reason]));
    if (r.exitCode !== 0) throw failed(`the disable command (${mode.disable!.join(' ')})`, r);
    if (mode.check && !(await checkDisabled(ctx, mode.check)))
      throw new StepFailure(
        `the disable command (${mode.disable!.join(' ')}) succeeded, but check_command still reports chef-client enabled`,
      );
    if (!mode.check)
      ctx.log('no check_command: assuming chef-client was enabled before; the undo will enable it');
    ctx.log('chef-client disabled');
    return { ...base, disabled_by_run: true };
  },
  async undo(ctx, p, out) {
    if (!out.disabled_by_run) {
      ctx.log('chef-client was disabled before this run: left disabled');
      return;
    }
    const mode = modeOf(p, true);
    if (mode.kind === 'lock_file') {
      const r = await exec(ctx, scriptLine(ctx, enableLockScript(mode.path, out.run_id)));
      if (r.exitCode !== 0) throw failed(`removing the lock file ${mode.path}`, r);
      const mark = r.stdout.split('\n')[0];
      if (mark === MARK.removed) ctx.log(`chef-client re-enabled: ${mode.path} removed`);
      else if (mark === MARK.absent) ctx.log(`${mode.path} was already gone: chef-client is enabled`);
      else ctx.log(`${mode.path} now belongs to another run: left in place, so chef-client stays disabled`);
      return;
    }
    if (mode.check && !(await checkDisabled(ctx, mode.check))) {
      ctx.log('chef-client is already enabled');
      return;
    }
    const r = await exec(ctx, argvLine(ctx, mode.enable));
    if (r.exitCode !== 0) throw failed(`the enable command (${mode.enable.join(' ')})`, r);
    ctx.log('chef-client re-enabled');
  },
});

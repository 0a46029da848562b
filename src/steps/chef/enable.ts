// `chef.enable`: let scheduled chef-client runs happen again. With `disabled_by` it only undoes
// the given chef.disable, so a clean-up in `always` never re-enables someone else's disable.
import { Type } from '@sinclair/typebox';
import { StepFailure } from '../../errors.js';
import { defineStep, type Operation } from '../define.js';
import {
  argvLine,
  Command,
  checkDisabled,
  enableLockScript,
  execChanging,
  failed,
  MARK,
  ModeParams,
  modeOf,
  runIdOf,
  scriptLine,
} from './common.js';

const Params = Type.Object(
  {
    disabled_by: Type.Optional(
      Type.Record(Type.String(), Type.Unknown(), {
        description:
          'the outputs of the chef.disable step, e.g. "{{ disable }}": enable only if it disabled chef-client (and, with a lock file, only the lock that run wrote)',
      }),
    ),
    command: Type.Optional(
      Command('command mode: enables scheduled chef-client runs (GitLab: chef-client-enable)'),
    ),
    ...ModeParams,
  },
  { additionalProperties: false },
);

const Outputs = Type.Object({ enabled: Type.Boolean(), reason: Type.String() });

type P = typeof Params.static;

const modeFor = (p: P) =>
  modeOf(
    { lock_file: p.lock_file, enable_command: p.command, check_command: p.check_command },
    false,
    'command',
  );

/** Why the given chef.disable outputs forbid enabling, or undefined when they allow it. */
function refusal(by: Record<string, unknown>): string | undefined {
  if (by.skipped === true) return 'the chef.disable step did not run';
  if (by.failed === true) return 'the chef.disable step failed';
  if (by.disabled_by_run !== true) return 'chef-client was already disabled before this run';
  return undefined;
}

export default defineStep({
  type: 'chef.enable',
  summary:
    'Let scheduled chef-client runs happen again (remove the lock file, or run the site command such as chef-client-enable).',
  params: Params,
  outputs: Outputs,
  mutating: true,
  marksChanges: true,
  undoSummary: 'none (enabling is itself the clean-up)',
  plan(ctx, p) {
    const mode = modeFor(p);
    const gated = p.disabled_by !== undefined;
    if (mode.kind === 'lock_file') {
      // The chef.disable step's run id is this run's (a resumed run keeps its id).
      const runId = gated ? runIdOf(ctx) : undefined;
      return {
        action: gated
          ? `re-enable chef-client: remove ${mode.path}, only if the given chef.disable step created it`
          : `re-enable chef-client: remove ${mode.path}`,
        ops: [{ kind: 'command', line: scriptLine(ctx, enableLockScript(mode.path, runId)) }],
      };
    }
    const ops: Operation[] = [];
    if (gated) ops.push({ kind: 'note', text: 'only if the given chef.disable step disabled chef-client' });
    if (mode.check)
      ops.push(
        { kind: 'command', line: argvLine(ctx, mode.check) },
        { kind: 'note', text: 'exit 1 (already enabled): nothing more to do' },
      );
    ops.push({ kind: 'command', line: argvLine(ctx, mode.enable) });
    return { action: 're-enable chef-client with the site command', ops };
  },
  async apply(ctx, p) {
    const mode = modeFor(p);
    let runId: string | undefined;
    if (p.disabled_by) {
      const why = refusal(p.disabled_by);
      if (why) {
        ctx.log(`not enabling chef-client: ${why}`);
        return { enabled: false, reason: why };
      }
      const by = p.disabled_by;
      if (mode.kind === 'lock_file' && typeof by.lock_file === 'string' && by.lock_file !== mode.path)
        throw new StepFailure(
          `disabled_by created the lock file ${by.lock_file}, but this step would remove ${mode.path}: give the same lock_file to both steps`,
        );
      if (typeof by.mode === 'string' && mode.kind !== by.mode)
        throw new StepFailure(
          `disabled_by used ${String(by.mode)} mode, but this step is in ${mode.kind} mode: configure both steps alike`,
        );
      runId = typeof by.run_id === 'string' ? by.run_id : undefined;
    }
    if (mode.kind === 'lock_file') {
      const r = await execChanging(ctx, scriptLine(ctx, enableLockScript(mode.path, runId)));
      if (r.exitCode !== 0) throw failed(`removing the lock file ${mode.path}`, r);
      const mark = r.stdout.split('\n')[0];
      if (mark === MARK.removed) {
        ctx.log(`chef-client re-enabled: ${mode.path} removed`);
        return { enabled: true, reason: `removed ${mode.path}` };
      }
      if (mark === MARK.absent) return { enabled: false, reason: `${mode.path} does not exist` };
      ctx.log(`${mode.path} belongs to another run: left in place`);
      return { enabled: false, reason: `${mode.path} belongs to another run` };
    }
    if (mode.check && !(await checkDisabled(ctx, mode.check)))
      return { enabled: false, reason: 'chef-client is already enabled' };
    const r = await execChanging(ctx, argvLine(ctx, mode.enable));
    if (r.exitCode !== 0) throw failed(`the enable command (${mode.enable.join(' ')})`, r);
    ctx.log('chef-client re-enabled');
    return { enabled: true, reason: 'ran the enable command' };
  },
});

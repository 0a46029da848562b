// What chef.disable and chef.enable share: how scheduled chef-client runs are stopped on a host
// (a lock file, or the site's own commands) and the exact commands for each way.
import { type Static, Type } from '@sinclair/typebox';
import { commandLine, type ExecResult } from '../../connections/transport.js';
import { StepFailure } from '../../errors.js';
import { quote, sh } from '../../util/shell.js';
import type { ApplyContext } from '../define.js';

/** Where chef.disable puts its lock file unless told otherwise. */
export const DEFAULT_LOCK_FILE = '/etc/chef/pgrunbook.disabled';

/** A command param: one executable (no spaces), or an argv list; every element is quoted. */
export function Command(description: string) {
  return Type.Union(
    [
      Type.String({ pattern: '^\\S+$', description: 'an executable (name or path)' }),
      Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: 'an argv list' }),
    ],
    { description },
  );
}
export type CommandValue = Static<ReturnType<typeof Command>>;

/** The params both steps take to say how chef-client is stopped on the host. */
export const ModeParams = {
  lock_file: Type.Optional(
    Type.String({
      pattern: '^/',
      description: `lock-file mode (the default when no command is given): the file that stops scheduled runs, default ${DEFAULT_LOCK_FILE}; the host's scheduled chef-client job must skip its run while the file exists`,
    }),
  ),
  check_command: Type.Optional(
    Command(
      'command mode: exits 0 when chef-client is already disabled, 1 when it is enabled (any other exit fails the step); without it an existing disable cannot be told apart',
    ),
  ),
};

/** How chef-client is stopped on a host. */
export type Mode =
  /** a file the scheduled chef-client job honours; pgrunbook writes and removes it */
  | { kind: 'lock_file'; path: string }
  /** the site's commands (GitLab: chef-client-disable "<reason>" / chef-client-enable) */
  | { kind: 'command'; disable?: string[]; enable: string[]; check?: string[] };

/** A command param as an argv. */
export const argvOf = (c: CommandValue): string[] => (typeof c === 'string' ? [c] : c);

/** The mode the params select; throws when they mix the two or leave a command out. */
export function modeOf(
  p: {
    lock_file?: string;
    command?: CommandValue;
    enable_command?: CommandValue;
    check_command?: CommandValue;
  },
  needsDisable: boolean,
  enableName = 'enable_command',
): Mode {
  const commands = p.command ?? p.enable_command ?? p.check_command;
  if (commands === undefined) return { kind: 'lock_file', path: p.lock_file ?? DEFAULT_LOCK_FILE };
  if (p.lock_file !== undefined)
    throw new StepFailure('give either lock_file or the command-mode commands, not both');
  if (needsDisable && p.command === undefined)
    throw new StepFailure('command mode needs `command` (the command that disables chef-client)');
  if (p.enable_command === undefined)
    throw new StepFailure(
      `command mode needs \`${enableName}\` (how chef-client is enabled again, e.g. chef-client-enable)`,
    );
  return {
    kind: 'command',
    disable: p.command === undefined ? undefined : argvOf(p.command),
    enable: argvOf(p.enable_command),
    check: p.check_command === undefined ? undefined : argvOf(p.check_command),
  };
}

/** First line the lock-file scripts print: what they found or did. */
export const MARK = {
  created: 'pgrunbook-chef: disabled',
  already: 'pgrunbook-chef: already disabled',
  removed: 'pgrunbook-chef: enabled',
  absent: 'pgrunbook-chef: no lock file',
  foreign: 'pgrunbook-chef: lock file of another run',
} as const;

/** What a lock file holds: enough for someone who finds it to know why and whom to ask. */
export function lockLines(reason: string, runId: string, host: string): string[] {
  return ['chef-client disabled by pgrunbook', `reason: ${reason}`, `run: ${runId}`, `host: ${host}`];
}

/** Creates the lock file exclusively (noclobber), or reports the one already there, unchanged. */
export function disableLockScript(path: string, lines: string[]): string {
  return [
    sh`if [ -e ${path} ]; then echo ${MARK.already}; cat ${path}; exit 0; fi`,
    'set -C',
    `${sh`printf '%s\\n' ${lines}`} "at: $(date -u +%Y-%m-%dT%H:%M:%SZ)" > ${quote(path)}`,
    sh`echo ${MARK.created}`,
  ].join('\n');
}

/** Removes the lock file; with a run id, only the lock that run wrote (another run's stays). */
export function enableLockScript(path: string, runId?: string): string {
  if (runId === undefined)
    return sh`if [ -e ${path} ]; then rm -f -- ${path} && echo ${MARK.removed}; else echo ${MARK.absent}; fi`;
  return [
    sh`if [ ! -e ${path} ]; then echo ${MARK.absent}`,
    sh`elif grep -qxF ${`run: ${runId}`} ${path}; then rm -f -- ${path} && echo ${MARK.removed}`,
    sh`else echo ${MARK.foreign}; cat ${path}; fi`,
  ].join('\n');
}

/** The line sent to the host for an argv, through `sudo -n` when the host uses become. */
export const argvLine = (ctx: { host: { become?: 'sudo' } }, argv: string[]) =>
  commandLine({ argv }, ctx.host.become);

/** The line sent to the host for a script of ours. */
export const scriptLine = (ctx: { host: { become?: 'sudo' } }, script: string) =>
  commandLine({ script }, ctx.host.become);

/** Runs one line on the host, streaming its output into the log. */
export async function exec(ctx: ApplyContext, line: string): Promise<ExecResult> {
  const t = await ctx.transport();
  return t.exec(line, { signal: ctx.signal, onOutput: (s, c) => ctx.output(s, c) });
}

/** exec() of a command that changes the host: said to the runner once the transport is open. */
export async function execChanging(ctx: ApplyContext, line: string): Promise<ExecResult> {
  const t = await ctx.transport();
  ctx.changing();
  return t.exec(line, { signal: ctx.signal, onOutput: (s, c) => ctx.output(s, c) });
}

/** A failure message for a command that exited badly, with the end of what it said. */
export function failed(what: string, r: ExecResult): StepFailure {
  const how = r.exitCode === null ? `was killed by signal ${r.signal}` : `exited with code ${r.exitCode}`;
  const tail = (r.stderr.trim() || r.stdout.trim()).split('\n').slice(-5).join('\n');
  return new StepFailure(`${what} ${how}${tail ? `: ${tail}` : ''}`, r.stderr);
}

/** The command-mode check: true when chef-client is disabled, false when enabled. */
export async function checkDisabled(ctx: ApplyContext, check: string[]): Promise<boolean> {
  const r = await exec(ctx, argvLine(ctx, check));
  if (r.exitCode === 0) return true;
  if (r.exitCode === 1) return false;
  throw failed(`check_command (${check.join(' ')})`, r);
}

/** This run's id, as the lock file records it. */
export const runIdOf = (ctx: { evaluate(e: string): unknown }): string => String(ctx.evaluate('run.id'));

// The last line of a failed run's summary: the one command that is the operator's next move.
//
// The rule (docs/output.md, "The next command"):
// - every step succeeded: no next command;
// - an undo failed, or a guard could not finish (compensation_failed): `resume` refuses such a
//   run, so the next move is what is still in place (the manual remedy), by hand, then the
//   recovery (past a point of no return) or a fresh `run`;
// - past a point of no return that names its recovery: that recovery (e.g. the rollback with the
//   inventory's real path and every -e value), never `resume`: the author of the playbook said
//   what to do from there;
// - changes remain that the run did not undo (steps without undo, or kept by a point of no return
//   without a recovery): `resume RUN_ID`, which skips them and continues from the failed step;
// - nothing remains (the run failed before its first change, or everything was undone): a fresh
//   `run` with the same playbook, inventory, -e and --limit. `resume` would only replay read-only
//   steps' old outputs, and a new run asks the hosts again.
// Steps whose state is unknown, or partial artifacts left in place, come first: "check ... by
// hand, then".
import { quote } from '../util/shell.js';

/** The commands a run can be continued or started again with, as the operator types them. */
export interface RunCommands {
  /** `pgrunbook run PLAYBOOK -i INVENTORY -e … --limit …`: the same run from the start */
  rerun: string;
  /** `pgrunbook resume RUN_ID [-e NAME=… for values the journal masked]` */
  resume: string;
}

/** What the end of a failed run looks like, as far as the next move depends on it. */
export interface Ending {
  status: 'ok' | 'failed' | 'interrupted' | 'compensation_failed';
  /** the recovery the point of no return (or a later `recovery:`) named; undefined if none was crossed or named */
  recovery?: string;
  /** changes the run left in place on purpose (no undo, or kept past a point of no return) */
  remaining: number;
  /** mutating steps that failed after their first change: what they did is unknown */
  unknown: number;
  /** partial artifacts (paths) not removed */
  leftovers: number;
}

/** The next move: the summary's last line (`line`) and the bare command it ends with. */
export interface NextCommand {
  line: string;
  command: string;
}

/** The next command for this ending; undefined when the run succeeded. */
export function nextCommand(end: Ending, cmds: RunCommands): NextCommand | undefined {
  if (end.status === 'ok') return undefined;
  const checks: string[] = [];
  if (end.unknown) checks.push('the steps under "State unknown"');
  if (end.leftovers) checks.push('the partial artifacts listed above');
  const first = checks.length ? `check ${checks.join(' and ')} by hand, then` : '';
  const next = (why: string, command: string, note?: string) => ({
    line: `Next${note ? ` (${note})` : ''}, ${why}: ${command}`,
    command,
  });
  if (end.status === 'compensation_failed')
    return next(
      `fix by hand what the summary says is still in place (resume refuses a run whose undo failed), then`,
      end.recovery ?? cmds.rerun,
    );
  if (end.recovery) return next(first || 'past the point of no return', end.recovery);
  if (end.remaining > 0) return next(first || 'once the cause is fixed', cmds.resume);
  return next(first || 'once the cause is fixed', cmds.rerun, 'nothing is left to resume: start again');
}

/** What a run was started with, to print the commands that start it again or resume it. */
export interface RunBasis {
  runId: string;
  playbook: string;
  inventory: string;
  extraVars: Record<string, unknown>;
  /** -e names whose value holds a secret: printed `-e NAME=…`, the operator gives them again */
  masked?: readonly string[];
  limit?: string;
  /** `run --plan FILE`: a fresh run is that saved plan again */
  savedPlan?: string;
  /** the run was told to adopt a pause someone else set (`--adopt-pause`): so is the fresh one */
  adoptPause?: boolean;
}

/** The `run` and `resume` command lines for this run, each argument quoted for sh. */
export function runCommands(b: RunBasis): RunCommands {
  const masked = b.masked ?? [];
  const e = (names: string[]) =>
    names.map((k) =>
      masked.includes(k) ? ` -e ${k}=…` : ` -e ${quote(`${k}=${cliValue(b.extraVars[k])}`)}`,
    );
  const rerun = b.savedPlan
    ? `pgrunbook run --plan ${quote(b.savedPlan)} -i ${quote(b.inventory)}`
    : `pgrunbook run ${quote(b.playbook)} -i ${quote(b.inventory)}${e(Object.keys(b.extraVars)).join('')}${b.limit ? ` --limit ${quote(b.limit)}` : ''}`;
  return {
    rerun: `${rerun}${b.adoptPause ? ' --adopt-pause' : ''}`,
    resume: `pgrunbook resume ${b.runId}${masked.map((k) => ` -e ${k}=…`).join('')}`,
  };
}

/** An -e value as typed: bare where YAML reads it back as the same string, else JSON (a YAML subset). */
function cliValue(v: unknown): string {
  if (
    typeof v === 'string' &&
    /^[A-Za-z_/@%+,:-][A-Za-z0-9_@%+:,./-]*$/.test(v) &&
    !/^(true|false|null|~|[-+]?\.?(inf|nan))$/i.test(v) &&
    !/^[-+]?[0-9.]/.test(v) &&
    !/: |:$|^-$/.test(v)
  )
    return v;
  return JSON.stringify(v);
}

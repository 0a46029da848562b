// Values that reach a command other than as its arguments: the shell step's `stdin`, and its
// `env`, whose variables the script expands. Both are data only where the allowlist says so:
// `stdin` only into commands that read their input as data, `env` values only under names no
// program reads as code, and only where the script expands them as data arguments.
import { stdinIsCode } from './command-runners.js';
import { isTemplate, isWholeTemplate } from './expressions.js';
import type { PathSeg } from './load.js';
import { argvTemplateProblems, scanShellTemplate, shellCommands } from './shell-template.js';

/** Parameter names of a step that feed a command (the shell step: `stdin` and `env`). */
export interface ShellInputParams {
  /** sh scripts or argv lists the inputs reach */
  commands: readonly string[];
  stdin?: string;
  env?: string;
}

/** Environment names a value may take: lowercase ones, and libpq's connection settings. */
const DATA_ENV =
  /^(?:[a-z_][a-z0-9_]*|PG(?:HOST|HOSTADDR|PORT|DATABASE|USER|PASSWORD|APPNAME|SSLMODE|CONNECT_TIMEOUT|TARGETSESSIONATTRS|DATA))$/;

/** A located problem of one parameter path. */
export interface InputProblem {
  path: PathSeg[];
  message: string;
}

/** Why templated `stdin` or `env` values would run as code; empty when they cannot. */
export function shellInputProblems(spec: ShellInputParams, params: Record<string, unknown>): InputProblem[] {
  const out: InputProblem[] = [];
  const commands = spec.commands.filter((k) => params[k] !== undefined);
  const stdin = spec.stdin ? params[spec.stdin] : undefined;
  if (typeof stdin === 'string' && isTemplate(stdin)) {
    for (const k of commands) {
      const why = inputReader(params[k]);
      if (why)
        out.push({
          path: [spec.stdin!],
          message: `${spec.stdin} holds a template and ${k} ${why}: the value would run as code; pass it as an argument instead`,
        });
    }
  }
  const env = spec.env ? params[spec.env] : undefined;
  if (env && typeof env === 'object' && !Array.isArray(env)) {
    for (const [name, v] of Object.entries(env as Record<string, unknown>)) {
      if (typeof v !== 'string' || !isTemplate(v)) continue;
      if (!DATA_ENV.test(name)) {
        out.push({
          path: [spec.env!, name],
          message: `${spec.env}.${name} holds a template: programs read variables like ${name} (PATH, LD_PRELOAD, BASH_ENV, PGOPTIONS…) as settings or code; give the value a lowercase name (or one of libpq's PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE…) and use it as "$name"`,
        });
        continue;
      }
      for (const k of commands) {
        const where = expansionRefusal(params[k], name);
        if (where)
          out.push({
            path: [spec.env!, name],
            message: `${spec.env}.${name} holds a template and ${k} expands $${name} ${where}: the value would run as code; use "$${name}" only as a data argument`,
          });
      }
    }
  }
  return out;
}

/**
 * Values a script assigns to a variable (`x={{ v }}`, accepted as data) and then expands where a
 * template would be refused (`sh -c "$x"`, `eval $x`, `$x args`): the value would run as code.
 */
export function variableFlowProblems(script: string): { index: number; text: string; message: string }[] {
  const out: { index: number; text: string; message: string }[] = [];
  for (const site of scanShellTemplate(script)) {
    if (!site.assigns) continue;
    const where = expansionRefusal(script, site.assigns);
    if (where)
      out.push({
        index: site.index,
        text: site.text,
        message: `template ${site.text} is assigned to ${site.assigns}, and the script expands $${site.assigns} ${where}: the value would run as code; expand "$${site.assigns}" only as a data argument`,
      });
  }
  return out;
}

/** What in a command runs the step's input as code, or undefined when none does (or cannot tell). */
function inputReader(cmd: unknown): string | undefined {
  if (Array.isArray(cmd)) {
    const words = cmd.map((w) => (typeof w === 'string' ? w : ''));
    if (words.length === 0 || isTemplate(words[0]!))
      return 'is a command from a variable (cannot be proven not to run its input)';
    const why = stdinIsCode(words);
    return why ? `runs ${words[0]}, where ${why}` : undefined;
  }
  if (typeof cmd !== 'string') return undefined;
  if (isWholeTemplate(cmd)) return 'is a command from a variable (cannot be proven not to run its input)';
  const commands = shellCommands(cmd);
  if (!commands)
    return 'cannot be followed to its end (a heredoc or the like), so it cannot be proven not to run its input';
  for (const words of commands) {
    const why = stdinIsCode(words);
    if (why) return `runs ${words[0]}, where ${why}`;
  }
  return undefined;
}

/** Where a command expands `$name` as code (the place a template would be refused), if it does. */
function expansionRefusal(cmd: unknown, name: string): string | undefined {
  const ref = new RegExp(`\\$(?:\\{${name}(?:[:#%/^,@][^}]*)?\\}|${name}(?![A-Za-z0-9_]))`, 'g');
  const mark = '{{ __env__ }}';
  if (Array.isArray(cmd)) {
    const marked = cmd.map((w) => (typeof w === 'string' ? w.replace(ref, mark) : w));
    if (marked.every((w, i) => w === cmd[i])) return undefined;
    // Only a shell's script expands variables in an argv list: the allowlist places those.
    const bad = argvTemplateProblems(marked).find((p) => String(marked[p.element]).includes(mark));
    return bad ? `in element ${bad.element}, where a shell runs it` : undefined;
  }
  if (typeof cmd !== 'string' || !ref.test(cmd)) return undefined;
  ref.lastIndex = 0;
  // Existing templates stay (they are checked on their own); the expansions become markers.
  const site = scanShellTemplate(cmd.replace(ref, mark), { placeOnly: true }).find(
    (s) => s.text === mark && s.refusal !== undefined,
  );
  return site?.refusal;
}

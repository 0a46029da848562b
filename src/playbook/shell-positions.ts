// Where in a command a template value lands, decided by allowlist: a value is accepted only as a
// data argument of a known command that does not run it (see command-runners.ts), as the value of
// a lowercase shell variable, as a redirection target, or as the directory in front of a literal
// program name. Everything else is refused. Words are given as written; `\0` marks a value.

import { type RunnerSpec, runnerOf } from './command-runners.js';

/** What a value may be at one place in a command. */
export type Position =
  /** A data argument; `optionable` when the command could read a value starting with `-` as an option. */
  | { role: 'data'; optionable: boolean }
  /** Inside the command word: only a directory in front of a literal program name is accepted. */
  | { role: 'command' }
  /** Not a data argument: `why` says where it is, `hint` what to write instead. */
  | { role: 'refused'; why: string; hint: Hint };

/** What to suggest instead of a refused template. */
export type Hint = 'positional' | 'variable' | 'lowercase' | 'directory' | 'input';

const ASSIGN = /^([A-Za-z_][A-Za-z0-9_]*)\+?=/;
/** Shell variables a value may be assigned to: lowercase ones, which no program reads from the environment. */
const DATA_VARIABLE = /^[a-z_][a-z0-9_]*$/;
const DECLARE = new Set(['export', 'readonly', 'local', 'declare', 'typeset']);
/** A command name written literally (no quotes, expansion or value). */
const LITERAL_NAME = /^(?:\[|[A-Za-z0-9_.+:@%-]+)$/;
/** Commands whose arguments are never options. */
const NO_OPTIONS = new Set(['case', 'for', 'select']);

const data = (optionable: boolean): Position => ({ role: 'data', optionable });
const refused = (why: string, hint: Hint = 'variable'): Position => ({ role: 'refused', why, hint });

/** Whether the word so far has nothing but opening quotes: a value here starts the word. */
export function startsWord(cur: string): boolean {
  return cur.replace(/["'\0]/g, '') === '';
}

/**
 * Where a value in the word `cur` (the part before the value) lands, after the command's completed
 * `words`. `script` is true in an sh script (assignments count), false in an argv list.
 */
export function positionOf(words: readonly string[], cur: string, script: boolean): Position {
  let i = 0;
  if (script) while (i < words.length && ASSIGN.test(words[i]!)) i++;
  if (i === words.length) {
    const m = script ? ASSIGN.exec(cur) : null;
    if (m) return assignment(m[1]!);
    return { role: 'command' };
  }
  const cmd = words[i]!;
  const name = cmd.slice(cmd.lastIndexOf('/') + 1);
  const args = words.slice(i + 1);
  if (!LITERAL_NAME.test(name))
    return refused(`in an argument of a command whose name is not written literally (${show(cmd)})`);
  if (script && DECLARE.has(name)) {
    const m = ASSIGN.exec(cur);
    return m ? assignment(m[1]!) : refused(`in an argument of ${name} other than a lowercase name=value`);
  }
  const optionable = startsWord(cur) && !args.includes('--') && !NO_OPTIONS.has(name);
  const spec = runnerOf(name);
  if (!spec) return data(optionable);
  return runnerPosition(name, spec, args, cur, optionable);
}

function assignment(variable: string): Position {
  return DATA_VARIABLE.test(variable)
    ? data(false)
    : refused(
        `in an assignment to ${variable} (only lowercase shell variables take values: one like PATH, LD_PRELOAD or IFS changes what runs)`,
        'lowercase',
      );
}

function runnerPosition(
  name: string,
  spec: RunnerSpec,
  args: string[],
  cur: string,
  optionable: boolean,
): Position {
  switch (spec.kind) {
    case 'code':
      return refused(`in an argument of ${name}, which ${spec.why}`);
    case 'after': {
      const at = args.find((w) => spec.words.includes(w));
      return at ? refused(`after ${name} ${at}, which ${spec.why}`) : data(optionable);
    }
    case 'option': {
      const why = `in an argument of ${name}, which ${spec.why}`;
      if (spec.firstArgIsOptions) {
        if (args.length === 0) return refused(`in the first argument of ${name} (its options)`);
        const first = args[0]!;
        if (!first.startsWith('-') && [...spec.short].some((l) => first.includes(l))) return refused(why);
      }
      const prev = args[args.length - 1];
      if (prev !== undefined && codeOption(spec, prev) === 'next') return refused(why);
      if (codeOption(spec, cur) !== undefined) return refused(why);
      return data(optionable);
    }
    case 'shell':
      return shellPosition(name, args);
  }
}

/** Whether word `w` is one of the spec's code options: its argument `next` word, or `attached`. */
function codeOption(
  spec: { short: string; long: readonly string[] },
  w: string,
): 'next' | 'attached' | undefined {
  if (w.startsWith('--')) {
    const [key, ...rest] = w.split('=');
    // getopt_long takes any unambiguous prefix (--use-comp= is --use-compress-program=).
    if (key!.length < 3 || !spec.long.some((l) => l.startsWith(key!))) return undefined;
    return rest.length > 0 ? 'attached' : 'next';
  }
  if (!/^-[^-]/.test(w)) return undefined;
  const letters = w.slice(1);
  const k = [...letters].findIndex((l) => spec.short.includes(l));
  if (k < 0) return undefined;
  return k === letters.length - 1 ? 'next' : 'attached';
}

const SHELL_LONG_WITH_ARG = new Set(['--rcfile', '--init-file']);

/** sh/bash/dash/zsh/ksh: only the positional parameters after the script are data. */
function shellPosition(name: string, args: string[]): Position {
  let c = false;
  let j = 0;
  for (; j < args.length; j++) {
    const w = args[j]!;
    if (w === '--' || w === '-') {
      j++;
      break;
    }
    if (w.includes('\0')) return refused(`after an option of ${name} made of a value`);
    if (w.startsWith('--')) {
      if (SHELL_LONG_WITH_ARG.has(w)) j++;
      continue;
    }
    if (!/^[-+][A-Za-z]+$/.test(w)) break;
    if (w[0] === '-' && w.includes('c')) c = true;
    if (/[oO]/.test(w)) j++;
  }
  const pos = args.length;
  if (pos < j) return refused(`in an option of ${name}`, 'positional');
  if (pos === j)
    return c
      ? refused(`in the script of ${name} -c (the value would be read as shell code again)`, 'positional')
      : refused(`as the script file ${name} runs`, 'positional');
  return data(false);
}

function show(word: string): string {
  return JSON.stringify(word.replace(/\0/g, '{{…}}'));
}

// Templates inside sh scripts and argv lists, by allowlist: a value may only land where it is
// proven to be data. In a script the scanner below must prove its quoting context (bare word, '…'
// or "…"; not inside $(…), backticks, $((…)), ${…}, [[…]], $'…', a comment or after a heredoc),
// and shell-positions.ts must prove its place in the command (an argument of a command that does
// not run it, a lowercase variable, a redirection target, the directory of a literal program).
// Anywhere else rendering refuses it, and so does validation (see shellTemplateProblems). A value
// starting with `-` is refused at render time where the command could read it as an option.
// `| raw` opts out on purpose; `| quote` is honoured as is in a bare word and refused inside
// quotes, where it would end them.

import { quote } from '../util/shell.js';
import { stdinIsCode } from './command-runners.js';
import {
  ExpressionError,
  evaluate,
  isTemplate,
  isWholeTemplate,
  renderTemplate,
  type Scope,
  stringify,
  Unknown,
} from './expressions.js';
import { type Hint, type Position, positionOf, startsWord } from './shell-positions.js';

/** Where a template sits in an sh script, when the scanner can prove it. */
export type ShellContext = 'bare' | 'single' | 'double';

/** How a template's value goes in: quoted for its context, as shell code, or already quoted. */
export type ShellTemplateMode = 'quoted' | 'raw' | 'quote';

/** One `{{ … }}` in an sh script, as the scanner sees it. */
export interface ShellTemplateSite {
  /** Offset of `{{` in the script. */
  index: number;
  /** The template as written, `{{ … }}`. */
  text: string;
  /** The expression to evaluate (`| raw` removed; `| quote` kept). */
  expr: string;
  mode: ShellTemplateMode;
  /** Where the value lands; absent when the scanner cannot tell. */
  context?: ShellContext;
  /** Why the value cannot go in safely here; absent when it can. */
  refusal?: string;
  /** What to suggest instead, for a refusal of its place in the command. */
  hint?: Hint;
  /** The command could read a value starting with `-` as an option (checked at render). */
  optionable?: boolean;
  /** The value is assigned to this shell variable (`name={{ … }}`, also after export/local/…). */
  assigns?: string;
}

const TEMPLATE = /\{\{(.*?)\}\}/gs;
const OPT_OUT = /\|\s*(raw|quote)\s*$/;

/** Splits a template expression into the expression to evaluate and how its value goes in. */
export function shellMode(expr: string): { expr: string; mode: ShellTemplateMode } {
  const e = expr.trim();
  const m = OPT_OUT.exec(e);
  if (m?.[1] === 'raw') return { expr: e.replace(OPT_OUT, '').trim(), mode: 'raw' };
  if (m?.[1] === 'quote') return { expr: e, mode: 'quote' };
  return { expr: e, mode: 'quoted' };
}

/** The `{{ … | raw }}` templates of an sh script, as written: the values it runs as shell code. */
export function rawTemplates(script: string): string[] {
  return [...script.matchAll(TEMPLATE)].filter((m) => shellMode(m[1]!).mode === 'raw').map((m) => m[0]);
}

// ---------------------------------------------------------------------------------------------
// The scanner: a small sh lexer that only tracks what decides how a value must be quoted.

type FrameKind =
  | 'sh' // the script itself, or a ( subshell ) inside it
  | 'subst' // $( … )
  | 'paren' // ( … ) inside a command substitution, to balance its )
  | 'backtick' // ` … `
  | 'arith' // $(( … )) and (( … ))
  | 'brace' // ${ … }
  | 'procsubst' // <( … ) and >( … )
  | 'dbracket' // [[ … ]]
  | 'single' // ' … '
  | 'ansi' // $' … '
  | 'double'; // " … "

interface Frame {
  kind: FrameKind;
  /** Open ( inside $(( … )). */
  depth: number;
  /** Completed words of the current simple command (sh-like frames). */
  words: string[];
  /** The word being read, or null between words. */
  cur: string | null;
  /** The next word is a redirection target (after <, >, >>, >&, …). */
  redirect: boolean;
  /** Accepted values since the last list separator outside a compound command (sh-like frames). */
  stage: ShellTemplateSite[];
  /** Accepted values upstream in the current pipeline: what later commands read on their input. */
  piped: ShellTemplateSite[];
  /** Open compound commands ({ …; }, if, while, until, for, case): their inside is one pipeline stage. */
  group: number;
}

const SH_LIKE: ReadonlySet<FrameKind> = new Set(['sh', 'subst', 'paren', 'procsubst']);

/** Frames inside which no value can be quoted safely, and how to say where that is. */
const REFUSED: Partial<Record<FrameKind, string>> = {
  subst: 'inside $(…)',
  backtick: 'inside backticks',
  arith: 'inside an arithmetic $((…)) or ((…))',
  // biome-ignore lint/suspicious/noTemplateCurlyInString: sh syntax in a message
  brace: 'inside ${…}',
  procsubst: 'inside a process substitution <(…) or >(…)',
  dbracket: 'inside [[…]]',
  ansi: "inside $'…'",
};

const SINGLE_IN_BRACE = `after '…' inside "$\{…}"`;

/** Words that open and close compound commands, at a command's start. */
const OPENERS = new Set(['{', 'if', 'while', 'until', 'for', 'case', 'select']);
const CLOSERS = new Set(['}', 'fi', 'done', 'esac']);
/** Leading NAME=value words of a simple command. */
const ASSIGNMENT_WORD = /^[A-Za-z_][A-Za-z0-9_]*\+?=/;

/** Words that may precede a command name without being it. */
const PREFIX_WORDS = new Set(['!', '{', 'if', 'then', 'else', 'elif', 'do', 'while', 'until']);
const SPACE = /\s/;

/** Follows an sh script piece by piece; literal text is fed, templates are asked about. */
export class ShellScanner {
  /** Every simple command completed so far, as its words (leading assignments dropped). */
  readonly commands: string[][] = [];
  private readonly stack: Frame[] = [frame('sh')];
  private comment = false;
  private poison: string | undefined;
  /** The last char fed was an unescaped `\`: the next one is escaped. */
  private pendingEscape = false;
  /** The last char fed was an unescaped `$` whose meaning depends on what follows. */
  private pendingDollar = false;

  /** Feeds shell code (literal script text, or a `| raw` value). */
  feed(input: string): void {
    let text = input;
    if (this.pendingDollar) {
      this.pendingDollar = false;
      text = `$${text}`;
    }
    for (let i = 0; i < text.length; i++) {
      if (this.poison) return;
      const c = text[i]!;
      const next = text[i + 1];
      if (this.pendingEscape) {
        this.pendingEscape = false;
        // A backslash-newline joins lines; anything else escaped is part of a word.
        if (c !== '\n') this.wordChar(c);
        continue;
      }
      if (this.comment) {
        if (c === '\n') {
          this.comment = false;
          this.separator();
        }
        continue;
      }
      const top = this.top();
      switch (top.kind) {
        case 'single':
          if (c === "'") this.stack.pop();
          this.wordChar(c);
          continue;
        case 'ansi':
          if (c === '\\') this.pendingEscape = true;
          else if (c === "'") this.stack.pop();
          this.wordChar(c);
          continue;
        case 'backtick':
          // The first unescaped backtick ends it, whatever quotes come before (dash and bash).
          if (c === '\\') this.pendingEscape = true;
          else if (c === '`') this.stack.pop();
          continue;
        case 'double':
          if (c === '\\') this.pendingEscape = true;
          else if (c === '"') this.stack.pop();
          else if (c === '`') this.push('backtick');
          else if (c === '$') {
            i += this.dollar(text, i);
            continue;
          }
          this.wordChar(c);
          continue;
        case 'brace':
          if (c === '\\') this.pendingEscape = true;
          else if (c === '}') this.stack.pop();
          else if (c === "'") {
            // '…' inside "${…}" is read differently by different shells.
            if (this.stack.some((f) => f.kind === 'double')) this.poison = SINGLE_IN_BRACE;
            else this.push('single');
          } else if (c === '"') this.push('double');
          else if (c === '`') this.push('backtick');
          else if (c === '$') i += this.dollar(text, i);
          continue;
        case 'arith':
          if (c === '\\') this.pendingEscape = true;
          else if (c === '(') top.depth++;
          else if (c === ')') {
            if (top.depth > 0) top.depth--;
            else if (next === ')') {
              this.stack.pop();
              this.wordChar('))');
              i++;
            } else this.poison = 'after an unbalanced ) inside $((…))';
          } else if (c === "'") this.push('single');
          else if (c === '"') this.push('double');
          else if (c === '`') this.push('backtick');
          else if (c === '$') i += this.dollar(text, i);
          continue;
        case 'dbracket':
          if (c === '\\') this.pendingEscape = true;
          else if (c === ']' && next === ']' && SPACE.test(text[i - 1] ?? ' ')) {
            this.stack.pop();
            i++;
          } else if (c === '<' && next === '<') this.poison = 'after a << inside [[…]]';
          else if (c === "'") this.push('single');
          else if (c === '"') this.push('double');
          else if (c === '`') this.push('backtick');
          else if (c === '$') i += this.dollar(text, i);
          continue;
        default:
          i += this.shellCode(top, text, i);
      }
    }
  }

  /**
   * A template's value went in here: it is part of a word and changes no context. An accepted
   * `site` is followed to the end of its pipeline: if a later command runs its input as code, the
   * site is refused then (its value would reach that command as code, quoted or not).
   */
  value(site?: ShellTemplateSite): void {
    this.pendingEscape = false;
    this.pendingDollar = false;
    this.wordChar('\0');
    if (site && site.refusal === undefined) this.shFrame().stage.push(site);
  }

  /** The command's words so far and the word being read, in the innermost shell code. */
  command(): { words: readonly string[]; cur: string } {
    const f = this.shFrame();
    return { words: f.words, cur: f.cur ?? '' };
  }

  /** Why the scanner stopped following the script (a heredoc, …), if it did. */
  get lost(): string | undefined {
    return this.poison;
  }

  /** The script is over: its last command is complete. */
  end(): void {
    if (this.poison || this.comment) return;
    while (this.stack.length > 1 && SH_LIKE.has(this.top().kind)) this.closeFrame();
    this.separator('list');
  }

  /** Where a value would land now: its quoting context and place, or why it cannot be quoted. */
  site(
    opts: { placeOnly?: boolean } = {},
  ): { context: ShellContext; position: Position } | { refusal: string } {
    if (this.poison) return { refusal: this.poison };
    if (this.comment) return { refusal: 'inside a # comment' };
    // placeOnly: what the command does with the word, whether or not a value could be quoted here
    // (for a variable the script expands itself, quoting is the script's).
    if (!opts.placeOnly) {
      if (this.pendingEscape) return { refusal: 'right after a backslash' };
      if (this.pendingDollar) return { refusal: 'right after $' };
      for (let k = this.stack.length - 1; k >= 0; k--) {
        const where = REFUSED[this.stack[k]!.kind];
        if (where) return { refusal: where };
      }
    }
    const sh = this.shFrame();
    const position: Position = sh.redirect
      ? { role: 'data', optionable: false }
      : positionOf(sh.words, sh.cur ?? '', true);
    const top = this.top().kind;
    return { context: top === 'single' ? 'single' : top === 'double' ? 'double' : 'bare', position };
  }

  private top(): Frame {
    return this.stack[this.stack.length - 1]!;
  }

  private push(kind: FrameKind): void {
    const f = frame(kind);
    // A subshell reads what is piped into the command it stands for: it inherits the pipeline.
    if (SH_LIKE.has(kind)) f.piped = this.shFrame().piped;
    this.stack.push(f);
  }

  /** Leaves a sh-like frame: its values belong to the command it is part of. */
  private closeFrame(): void {
    this.separator('close');
    const inner = this.stack.pop()!;
    const outer = this.shFrame();
    outer.stage.push(...inner.stage);
  }

  /** The innermost frame whose text is shell code (the one words belong to). */
  private shFrame(): Frame {
    for (let k = this.stack.length - 1; k >= 0; k--)
      if (SH_LIKE.has(this.stack[k]!.kind)) return this.stack[k]!;
    return this.stack[0]!;
  }

  private wordChar(c: string): void {
    const f = this.shFrame();
    f.cur = (f.cur ?? '') + c;
  }

  private endWord(): void {
    const f = this.shFrame();
    if (f.cur === null) return;
    const w = f.cur;
    f.cur = null;
    if (f.redirect) {
      f.redirect = false;
      return;
    }
    // A case pattern's ) would close a $( early: past a case inside $(…), stop following.
    if (
      w === 'case' &&
      f.words.length === 0 &&
      this.stack.some((x) => x.kind === 'subst' || x.kind === 'paren')
    )
      this.poison = 'after a case statement inside $(…)';
    if (f.words.length === 0 && OPENERS.has(w)) f.group++;
    if (f.words.length === 0 && CLOSERS.has(w)) f.group = Math.max(0, f.group - 1);
    if (f.words.length === 0 && PREFIX_WORDS.has(w)) return;
    f.words.push(w);
  }

  /**
   * Ends the simple command being read. `pipe`: its output goes to the next command; `list`: the
   * next command starts afresh (`;`, `&`, `&&`, `||`, a newline); `close`: the frame ends. A command
   * that runs its input as code refuses every value upstream in its pipeline.
   */
  private separator(how: 'pipe' | 'list' | 'close' = 'list'): void {
    this.endWord();
    const f = this.shFrame();
    const start = f.words.findIndex((w) => !ASSIGNMENT_WORD.test(w));
    if (start >= 0) this.commands.push(f.words.slice(start));
    if (f.piped.length > 0) {
      const words = f.words.slice(f.words.findIndex((w) => !ASSIGNMENT_WORD.test(w)));
      const why = f.words.some((w) => !ASSIGNMENT_WORD.test(w)) ? stdinIsCode(words) : undefined;
      if (why)
        for (const site of f.piped) {
          if (site.refusal !== undefined) continue;
          site.refusal = `is piped into ${words[0]}, and ${why}`;
          site.hint = 'input';
        }
    }
    if (how === 'pipe') {
      f.piped.push(...f.stage);
      f.stage = [];
    } else if (how === 'list' && f.group === 0) {
      // A fresh pipeline: nothing flows on. (Inside a compound command, everything may.)
      f.piped.length = 0;
      f.stage = [];
    }
    f.words = [];
    f.redirect = false;
  }

  /** Handles `$` at text[i]; returns how many chars beyond i it consumed. */
  private dollar(text: string, i: number): number {
    const next = text[i + 1];
    if (next === undefined) {
      this.pendingDollar = true;
      return 0;
    }
    this.wordChar('$');
    if (next === '(') {
      if (text[i + 2] === '(') {
        this.push('arith');
        return 2;
      }
      this.push('subst');
      return 1;
    }
    if (next === '{') {
      this.push('brace');
      return 1;
    }
    if (next === '[') {
      // bash's old $[ … ] arithmetic: rare enough to stop following the script.
      this.poison = 'after a $[…] arithmetic';
      return 1;
    }
    if (next === "'" && SH_LIKE.has(this.top().kind)) {
      this.push('ansi');
      return 1;
    }
    return 0;
  }

  /** One char of shell code at text[i]; returns how many chars beyond i it consumed. */
  private shellCode(top: Frame, text: string, i: number): number {
    const c = text[i]!;
    const next = text[i + 1];
    const wordStart = top.cur === null;
    if (c === '\\') {
      this.pendingEscape = true;
      return 0;
    }
    if (c === "'") {
      this.wordChar(c);
      this.push('single');
      return 0;
    }
    if (c === '"') {
      this.wordChar(c);
      this.push('double');
      return 0;
    }
    if (c === '`') {
      this.wordChar(c);
      this.push('backtick');
      return 0;
    }
    if (c === '$') return this.dollar(text, i);
    if (c === '#' && wordStart) {
      this.comment = true;
      return 0;
    }
    if (c === '<' && next === '<') {
      // A heredoc's body is read line by line up to a delimiter: stop following the script.
      this.poison = 'after a << heredoc';
      return 0;
    }
    if (c === '(') {
      this.separator();
      if (wordStart && next === '(') {
        this.push('arith');
        return 1;
      }
      this.push(top.kind === 'sh' ? 'sh' : 'paren');
      return 0;
    }
    if (c === ')') {
      if (top.kind === 'subst' || top.kind === 'procsubst') {
        // The word holding $(…) goes on after it.
        this.closeFrame();
        this.wordChar(c);
      } else if (this.stack.length > 1) {
        this.closeFrame();
        this.separator('close');
      } else this.separator('list');
      return 0;
    }
    if (c === '[' && next === '[' && wordStart && SPACE.test(text[i + 2] ?? ' ')) {
      this.push('dbracket');
      return 1;
    }
    if ((c === '<' || c === '>') && next === '(') {
      // <(…) and >(…): the output of commands becomes a file some command reads, maybe as code.
      this.endWord();
      this.wordChar(c);
      this.push('procsubst');
      return 1;
    }
    if (c === '<' || c === '>' || (c === '&' && next === '>')) {
      // A redirection: a number right before it is the fd, the word after it the target.
      if (top.cur !== null && /^\d+$/.test(top.cur)) top.cur = null;
      else this.endWord();
      let k = 0;
      while (/[<>&|]/.test(text[i + 1 + k] ?? '')) k++;
      top.redirect = true;
      return k;
    }
    if (c === '|' && next !== '|') {
      this.separator('pipe');
      // `|&` pipes standard error too.
      return next === '&' ? 1 : 0;
    }
    if (c === ';' || c === '&' || c === '|' || c === '\n') {
      this.separator('list');
      // `||` and `&&` are one separator.
      return (c === '|' || c === '&') && next === c ? 1 : 0;
    }
    if (SPACE.test(c)) {
      this.endWord();
      return 0;
    }
    this.wordChar(c);
    return 0;
  }
}

function frame(kind: FrameKind): Frame {
  return { kind, depth: 0, words: [], cur: null, redirect: false, stage: [], piped: [], group: 0 };
}

/** A value in the command word must be the directory of a literal program name: `{{ bin }}/psql`. */
const DIRECTORY_OF_NAME = /^(?:\/[A-Za-z0-9_.+:@%-]+)+["']?(?=$|[\s;&|<>()])/;
const COMMAND_WORD =
  'as the command name (a value may only be the directory in front of a literal program name, as in {{ bin }}/psql)';

/** Applies a Position to a site: a refusal and hint, or whether the value may be read as an option. */
function place(site: ShellTemplateSite, position: Position, rest: string): void {
  if (position.role === 'refused') {
    site.refusal = position.why;
    site.hint = position.hint;
  } else if (position.role === 'command') {
    if (!DIRECTORY_OF_NAME.test(rest)) {
      site.refusal = COMMAND_WORD;
      site.hint = 'directory';
    }
  } else site.optionable = position.optionable;
}

function refusalMessage(site: ShellTemplateSite): string {
  const x = site.expr;
  if (
    site.mode === 'quote' &&
    site.context !== undefined &&
    site.context !== 'bare' &&
    site.hint === undefined
  )
    return `template ${site.text} ${site.refusal}: "| quote" would end the surrounding quotes; drop "| quote" (values are quoted for where they land)`;
  const e = site.mode === 'quote' ? x.replace(OPT_OUT, '').trim() : x;
  const what =
    site.hint === undefined ? 'cannot be quoted safely' : '(not a data argument): no value is safe there';
  return `template ${site.text} ${site.refusal} ${what}; ${instead(site.hint, e)}, or mark it {{ ${e} | raw }} if it is meant as shell code`;
}

function instead(hint: Hint | undefined, e: string): string {
  switch (hint) {
    case 'positional':
      return `pass it as a positional parameter (sh -c '… "$1"' sh {{ ${e} }})`;
    case 'lowercase':
      return `assign it to a lowercase shell variable (v={{ ${e} }})`;
    case 'directory':
      return `write the program name literally ({{ ${e} }}/NAME), or use an argv list with a literal program`;
    case 'input':
      return `pass it as an argument the command reads as data (for sh: sh -c '… "$1"' sh {{ ${e} }}; for psql: -v name={{ ${e} }} and :'name')`;
    case 'variable':
      return `assign it to a shell variable first (v={{ ${e} }}) and write the command with "$v" yourself`;
    default:
      return `pass the value as an argv list element, or assign it to a shell variable first (v={{ ${e} }}) and use "$v"`;
  }
}

/** A value where the command could read it as an option, refused when it starts with `-`. */
function optionMessage(text: string, value: string): string {
  return `template ${text} is where the command could read an option, and its value ${JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value)} starts with "-"; put -- before it, or write it after a fixed prefix (./{{ … }} for a path)`;
}

/** Whether a rendered value (quoted for its context already, or not) would start with `-`. */
function leadingDash(value: string): boolean {
  return value.replace(/^['"]+/, '').startsWith('-');
}

/** One template in an argv list, where it lands (`index` is its offset in the element). */
interface ArgvSite extends ShellTemplateSite {
  element: number;
}

/** Every template of an argv list with its place in the command, by the same allowlist as scripts. */
function argvSites(argv: readonly unknown[]): ArgvSite[] {
  const sites: ArgvSite[] = [];
  const words: string[] = [];
  argv.forEach((w, element) => {
    const s = typeof w === 'string' ? w : '';
    let last = 0;
    let cur = '';
    for (const m of s.matchAll(TEMPLATE)) {
      const index = m.index ?? 0;
      cur += s.slice(last, index);
      const { expr, mode } = shellMode(m[1]!);
      const site: ArgvSite = { element, index, text: m[0], mode, expr };
      const position = positionOf(words, cur, false);
      const rest = s.slice(index + m[0].length);
      if (mode !== 'raw') place(site, position, rest);
      if (position.role === 'data' && !startsWord(cur)) site.optionable = false;
      sites.push(site);
      cur += '\0';
      last = index + m[0].length;
    }
    words.push(cur + s.slice(last));
  });
  return sites;
}

/** Why templates in an argv list cannot go in safely, as messages (an argv list is never parsed by sh). */
export function argvTemplateProblems(argv: readonly unknown[]): { element: number; message: string }[] {
  // (`| raw` is refused in an argv list anyway.)
  return argvSites(argv)
    .filter((s) => s.refusal !== undefined)
    .map((s) => ({
      element: s.element,
      message: refusalMessage(s).replace(
        `sh -c '… "$1"' sh {{ ${s.expr} }}`,
        `…, "-c", '… "$1"', "sh", "{{ ${s.expr} }}"`,
      ),
    }));
}

/** A template of an argv list that failed, with the element it is in. */
export class ArgvTemplateError extends ExpressionError {
  constructor(
    readonly element: number,
    message: string,
  ) {
    super(message);
  }
}

/** Renders an argv list: each element is one argument; refused places and option values throw. */
export function renderArgvTemplate(argv: readonly string[], scope: Scope): unknown[] {
  const sites = argvSites(argv);
  const bad = sites.find((s) => s.refusal !== undefined);
  if (bad) throw new ArgvTemplateError(bad.element, refusalMessage(bad));
  return argv.map((w, element) => {
    let v: unknown;
    try {
      v = renderTemplate(w, scope);
    } catch (err) {
      throw new ArgvTemplateError(element, (err as Error).message);
    }
    const first = sites.find((s) => s.element === element && s.optionable);
    if (first && typeof v === 'string' && leadingDash(v))
      throw new ArgvTemplateError(element, optionMessage(first.text, v));
    return v;
  });
}

/**
 * Every template in an sh script with where it lands; raw values count as one word. `placeOnly`:
 * judge only what the command does with each word, not whether a value could be quoted there.
 */
export function scanShellTemplate(script: string, opts: { placeOnly?: boolean } = {}): ShellTemplateSite[] {
  const sites: ShellTemplateSite[] = [];
  walkSites(
    script,
    (site) => {
      sites.push(site);
      return undefined;
    },
    opts,
  );
  return sites;
}

/** Why each template of an sh script cannot go in safely, as messages; empty when all can. */
export function shellTemplateProblems(script: string): { index: number; text: string; message: string }[] {
  if (!isTemplate(script) || isWholeTemplate(script)) return [];
  return scanShellTemplate(script)
    .filter((s) => s.refusal !== undefined)
    .map((s) => ({ index: s.index, text: s.text, message: refusalMessage(s) }));
}

/**
 * Walks the templates of `script` in order. `each` gets the site and may return the text a
 * `| raw` value put into the script (so the scanner follows it), or undefined for one opaque word.
 */
function walkSites(
  script: string,
  each: (site: ShellTemplateSite) => string | undefined,
  opts: { placeOnly?: boolean } = {},
): ShellScanner {
  const scanner = new ShellScanner();
  let last = 0;
  for (const m of script.matchAll(TEMPLATE)) {
    const index = m.index ?? 0;
    scanner.feed(script.slice(last, index));
    const { expr, mode } = shellMode(m[1]!);
    const at = scanner.site(opts);
    const site: ShellTemplateSite = { index, text: m[0], expr, mode };
    if ('context' in at) site.context = at.context;
    if (mode === 'raw') {
      // shell code on purpose: no place to check
    } else if ('refusal' in at) site.refusal = at.refusal;
    else {
      place(site, at.position, script.slice(index + m[0].length));
      const assigns = assignmentOf(scanner.command());
      if (assigns && site.refusal === undefined) site.assigns = assigns;
      if (site.refusal === undefined && mode === 'quote' && at.context !== 'bare')
        site.refusal = at.context === 'single' ? "inside '…'" : 'inside "…"';
    }
    const raw = each(site);
    if (raw === undefined) scanner.value(site);
    else scanner.feed(raw);
    last = index + m[0].length;
  }
  scanner.feed(script.slice(last));
  scanner.end();
  return scanner;
}

const DECLARING = new Set(['export', 'readonly', 'local', 'declare', 'typeset']);

/** The variable a value in word `cur` is assigned to, if the word is an assignment. */
function assignmentOf(at: { words: readonly string[]; cur: string }): string | undefined {
  const m = ASSIGNMENT_WORD.exec(at.cur);
  if (!m) return undefined;
  const plain = at.words.every((w) => ASSIGNMENT_WORD.test(w));
  const declared =
    at.words.length > 0 &&
    DECLARING.has(at.words[0]!) &&
    at.words.slice(1).every((w) => ASSIGNMENT_WORD.test(w) || w.startsWith('-'));
  return plain || declared ? m[0].replace(/\+?=$/, '') : undefined;
}

/**
 * The simple commands of an sh script, as words (a template's value is `\0`), or undefined when
 * the scanner cannot follow the script to its end (a heredoc, …).
 */
export function shellCommands(script: string): string[][] | undefined {
  const scanner = walkSites(script, () => undefined);
  return scanner.lost ? undefined : scanner.commands;
}

function escapeFor(ctx: ShellContext, value: string): string {
  if (ctx === 'single') return value.replace(/'/g, `'\\''`);
  if (ctx === 'double') return value.replace(/[\\"$`]/g, '\\$&');
  return quoteWord(value);
}

/** Reserved words, and NAME=… that would read as an assignment at a command's start. */
const NOT_A_PLAIN_WORD =
  /^(?:if|then|else|elif|fi|do|done|case|esac|while|until|for|in|function|select|time|coproc)$|=/;

/** quote(), but a value that sh would read as a keyword or assignment is quoted too. */
function quoteWord(value: string): string {
  const q = quote(value);
  return q === value && NOT_A_PLAIN_WORD.test(value) ? `'${value}'` : q;
}

/** Renders an sh script template with every interpolated value quoted for its context. */
export function renderShellTemplate(script: string, scope: Scope): unknown {
  if (!isTemplate(script)) return script;
  if (isWholeTemplate(script)) return renderWhole(script, scope);
  let out = '';
  let last = 0;
  let unknown = false;
  const seen: ShellTemplateSite[] = [];
  walkSites(script, (site) => {
    seen.push(site);
    out += script.slice(last, site.index);
    last = site.index + site.text.length;
    if (site.refusal !== undefined) throw new ExpressionError(refusalMessage(site));
    const v = evaluate(site.expr, scope);
    if (v instanceof Unknown) {
      unknown = true;
      out += v.toString();
      return undefined;
    }
    const text = stringify(v);
    if (site.mode === 'raw') {
      out += text;
      return text;
    }
    if (site.optionable && leadingDash(text)) throw new ExpressionError(optionMessage(site.text, text));
    out += site.mode === 'quote' ? text : escapeFor(site.context!, text);
    return undefined;
  });
  out += script.slice(last);
  // A value accepted where it stood can be refused later in its pipeline (`… | sh`).
  const late = seen.find((x) => x.refusal !== undefined);
  if (late) throw new ExpressionError(refusalMessage(late));
  return unknown ? new Unknown(script, out) : out;
}

/** A whole `{{ expr }}` script: an argv list, a `| raw` command, or a `| quote`d word. */
function renderWhole(script: string, scope: Scope): unknown {
  const template = script.trim();
  const { expr, mode } = shellMode(template.slice(2, -2));
  const v = evaluate(expr, scope);
  if (typeof v === 'string' && mode === 'quoted')
    throw new ExpressionError(
      `a command from a variable must be an argv list, or marked | raw: ${template} is the string ${JSON.stringify(v)}; write {{ ${expr} | raw }} to run it as shell code`,
    );
  return v;
}

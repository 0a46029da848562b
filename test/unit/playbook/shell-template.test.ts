// Values interpolated into sh scripts are quoted for their context: checked by running real sh.
// biome-ignore-all lint/suspicious/noTemplateCurlyInString: these strings are sh scripts, where ${…} is sh syntax
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ExpressionError, Unknown } from '../../../src/playbook/expressions.js';
import {
  renderShellTemplate,
  scanShellTemplate,
  shellTemplateProblems,
} from '../../../src/playbook/shell-template.js';

const NASTY = [
  "it's",
  'a"b',
  '$(id -u)',
  '`id -u`',
  'a  b',
  '*',
  'back\\slash',
  'two\nlines',
  '',
  '$HOME',
  "'; rm -rf / #",
  '"; id; echo "',
  "'\\''",
  'trailing\\',
  '\\',
  '$((1+1))',
  '${HOME}',
  "$'\\x41'",
  ')',
  '}',
  '# not a comment',
  '~root',
  'X=1',
  'if',
  '-n',
  'tab\there',
  '\nEOF\n',
  'ünïcødé ✓',
  '!',
];

// /bin/sh is dash here; the remote sh may be bash, so every exact-value check runs under both.
const SHELLS = ['/bin/sh', ...(spawnSync('bash', ['-c', 'true']).status === 0 ? ['bash'] : [])];
const run = (shell: string, script: string) => execFileSync(shell, ['-c', script], { encoding: 'utf8' });
const sh = (script: string) => run('/bin/sh', script);
const render = (script: string, scope: Record<string, unknown>) =>
  renderShellTemplate(script, scope) as string;

describe.each(SHELLS)('allowed contexts stay exact for nasty values (%s)', (shell) => {
  // The last column: a value starting with `-` lands where printf could read it as an option.
  const exact: [string, string, (v: string) => string, boolean][] = [
    ['a bare word', 'printf %s {{ v }}', (v) => v, true],
    ['a bare word after --', 'printf %s -- {{ v }}', (v) => `--${v}`, false],
    ['single quotes', "printf %s 'x{{ v }}y'", (v) => `x${v}y`, false],
    ['double quotes', 'printf %s "x{{ v }}y"', (v) => `x${v}y`, false],
    ['the middle of a bare word', 'printf %s --opt=x{{ v }}y', (v) => `--opt=x${v}y`, false],
    ['a word right after $(…)', 'printf %s "$(printf a)"{{ v }}', (v) => `a${v}`, false],
    ['double quotes after ${…}', 'x=A; printf %s "${x}{{ v }}"', (v) => `A${v}`, false],
    ['a ( subshell )', '( printf %s {{ v }} )', (v) => v, true],
    ['the line after a comment', "# it's a comment\nprintf %s {{ v }}", (v) => v, true],
    ['after $((1<<2))', 'printf %s $((1<<2)) {{ v }}', (v) => `4${v}`, true],
    ['after backticks with quotes', 'printf %s `printf "%s" b` {{ v }}', (v) => `b${v}`, true],
    ['a variable assignment', 'x={{ v }}; printf %s "$x"', (v) => v, false],
    ['an export of a lowercase variable', 'export x={{ v }}; printf %s "$x"', (v) => v, false],
    ['a case subject', 'case {{ v }} in *) printf %s "ok";; esac', () => 'ok', false],
    ['a positional parameter of sh -c', 'sh -c \'printf %s "$1"\' sh {{ v }}', (v) => v, false],
    ['after an escaped quote', 'printf "%s|" "a\\"{{ v }}" \'x{{ v }}\'', (v) => `a"${v}|x${v}|`, false],
    ['a here-string-free if', 'if [ -n "x{{ v }}" ]; then printf %s x{{ v }}; fi', (v) => `x${v}`, false],
    [
      'a redirection target',
      'd=$(mktemp -d); { printf %s x >"$d"/{{ v }}.t; } 2>/dev/null; rm -rf "$d"; printf %s ok',
      () => 'ok',
      false,
    ],
  ];
  describe.each(exact)('%s', (_what, template, expected, option) => {
    it.each(NASTY)('%j', (v) => {
      if (option && v.startsWith('-'))
        expect(() => render(template, { v })).toThrow(/starts with "-"; put -- before it/);
      else expect(run(shell, render(template, { v }))).toBe(expected(v));
    });
  });

  it('a value is never a command name, a keyword or an assignment at a command start', () => {
    expect(render('{{ v }}', { v: ['X=1'] })).toEqual(['X=1']);
    for (const t of ['{{ v }} 2>/dev/null; echo $?', '{{ v }} true', 'x=1 {{ v }}', 'echo; "{{ v }}" x'])
      expect(() => render(t, { v: 'X=1' })).toThrow(/as the command name/);
    // Only as the directory of a literal program name.
    expect(render('{{ v }}/printf %s ok', { v: '/usr/bin' })).toBe('/usr/bin/printf %s ok');
    expect(run(shell, render('{{ v }}/printf %s ok', { v: '/usr/bin' }))).toBe('ok');
    expect(() => render('{{ v }}/$x', { v: '/usr/bin' })).toThrow(/as the command name/);
  });
});

describe('contexts where a value cannot be quoted are refused', () => {
  const refused: [string, string, RegExp][] = [
    ['$(…) inside double quotes', 'printf %s "$(echo {{ v }})"', /inside \$\(…\)/],
    ['$(…) in a bare word', 'printf %s $(echo {{ v }})', /inside \$\(…\)/],
    ['nested $( $(…) )', 'echo "$(echo "$(echo {{ v }})")"', /inside \$\(…\)/],
    ['"…" inside $(…)', 'echo "$(echo "{{ v }}")"', /inside \$\(…\)/],
    ['backticks', 'echo `echo {{ v }}`', /inside backticks/],
    ['backticks in double quotes', 'echo "`echo {{ v }}`"', /inside backticks/],
    ['a heredoc body', 'cat <<EOF\n{{ v }}\nEOF', /after a << heredoc/],
    ['a quoted heredoc body', "cat <<'EOF'\n{{ v }}\nEOF", /after a << heredoc/],
    ['a line after a heredoc', 'cat <<EOF\nx\nEOF\necho {{ v }}', /after a << heredoc/],
    ['a here-string', 'cat <<< x; echo {{ v }}', /after a << heredoc/],
    ['a comment', 'echo hi # note {{ v }}', /inside a # comment/],
    ['a comment after ;', 'echo hi;# {{ v }}', /inside a # comment/],
    ['a whole-line comment', '# {{ v }}\necho hi', /inside a # comment/],
    ['arithmetic $((…))', 'echo $(( {{ v }} + 1 ))', /inside an arithmetic/],
    ['arithmetic ((…))', '(( {{ v }} ))', /inside an arithmetic/],
    ['arithmetic $[…]', 'echo $[ {{ v }} ]', /after a \$\[…\] arithmetic/],
    ['${…}', 'echo ${x:-{{ v }}}', /inside \$\{…\}/],
    ['"${…}"', 'echo "${x:-{{ v }}}"', /inside \$\{…\}/],
    ["$'…'", "echo $'{{ v }}'", /inside \$'…'/],
    ['[[…]]', '[[ {{ v }} == x ]]', /inside \[\[…\]\]/],
    ['right after a backslash', 'echo \\{{ v }}', /right after a backslash/],
    ['right after a backslash in "…"', 'echo "\\{{ v }}"', /right after a backslash/],
    ['right after $', 'echo ${{ v }}', /right after \$/],
    ['right after $ in "…"', 'echo "${{ v }}"', /right after \$/],
    ['eval', 'eval echo {{ v }}', /in an argument of eval/],
    ['eval after a pipe', 'echo x | eval "echo {{ v }}"', /in an argument of eval/],
    ['sh -c', "sh -c 'echo {{ v }}'", /in the script of sh -c/],
    ['bash -c in "…"', 'bash -c "echo {{ v }}"', /in the script of bash -c/],
    ['sudo … sh -c', "sudo -u postgres /bin/sh -c 'echo {{ v }}'", /in an argument of sudo/],
    ['su -c', 'su postgres -c "echo {{ v }}"', /in an argument of su/],
    ['trap', "trap 'echo {{ v }}' EXIT", /in an argument of trap/],
    ['an assignment to PATH', 'PATH={{ v }} ls', /in an assignment to PATH/],
    ['an export of LD_PRELOAD', 'export LD_PRELOAD={{ v }}', /in an assignment to LD_PRELOAD/],
    ['a command named by a variable', '$cmd {{ v }}', /whose name is not written literally/],
    ['after a case inside $(…)', 'x=$(case a in a) echo;; esac); echo {{ v }}', /after a case statement/],
    ['| quote inside "…"', 'echo "{{ v | quote }}"', /"\| quote" would end the surrounding quotes/],
    ["| quote inside '…'", "echo '{{ v | quote }}'", /"\| quote" would end the surrounding quotes/],
    ['| quote inside $(…)', 'echo $(echo {{ v | quote }})', /inside \$\(…\)/],
  ];

  it.each(refused)('%s', (_what, template, where) => {
    const attempt = () => renderShellTemplate(template, { v: 'x' });
    expect(attempt).toThrow(ExpressionError);
    expect(attempt).toThrow(where);
    expect(attempt).toThrow(
      /cannot be quoted safely|would end the surrounding quotes|no value is safe there/,
    );
    // The same refusal is what validation reports, before anything runs.
    const problems = shellTemplateProblems(template);
    expect(problems).toHaveLength(1);
    expect(problems[0]!.message).toMatch(where);
    expect(problems[0]!.text).toMatch(/^\{\{ v( \| quote)? \}\}$/);
  });

  it('the message says what to do instead', () => {
    expect(() => renderShellTemplate('"$(echo {{ v }})"', { v: 'x' })).toThrow(
      'template {{ v }} inside $(…) cannot be quoted safely; pass the value as an argv list element, or assign it to a shell variable first (v={{ v }}) and use "$v", or mark it {{ v | raw }} if it is meant as shell code',
    );
    expect(() => renderShellTemplate("sh -c 'echo {{ v }}'", { v: 'x' })).toThrow(
      /pass it as a positional parameter \(sh -c '… "\$1"' sh \{\{ v \}\}\)/,
    );
  });

  it('| raw is allowed anywhere: it is shell code on purpose', () => {
    expect(renderShellTemplate('echo "$(echo {{ v | raw }})"', { v: 'a;b' })).toBe('echo "$(echo a;b)"');
    expect(renderShellTemplate('cat <<EOF\n{{ v | raw }}\nEOF', { v: 'x' })).toBe('cat <<EOF\nx\nEOF');
    expect(shellTemplateProblems('echo `{{ v | raw }}` # {{ w | raw }}')).toEqual([]);
  });

  it('the refusal does not depend on the value (plan time, unknown values)', () => {
    expect(() => renderShellTemplate('echo "$(cat {{ reg.stdout }})"', { reg: new Unknown('reg') })).toThrow(
      /inside \$\(…\)/,
    );
  });

  it('a raw value is followed: a template after it lands where the raw text left the script', () => {
    // After a raw `$(`, the next template is inside a command substitution.
    expect(() => renderShellTemplate('echo {{ a | raw }}{{ v }})', { a: '$(echo', v: 'x' })).toThrow(
      /inside \$\(…\)/,
    );
    // After a raw opening quote, the next value is escaped for '…'.
    expect(renderShellTemplate("printf %s {{ a | raw }}{{ v }}'", { a: "'", v: "it's" })).toBe(
      "printf %s 'it'\\''s'",
    );
  });
});

describe('no injection through any context: render, then run what renders', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pgrunbook-inject-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const marker = join(dir, 'PWNED');
  const touch = `touch ${marker}`;
  // Each of these runs `touch` through at least one context under the old, quote-only scanner.
  const payloads = [
    `$(${touch})`,
    `(${touch})`,
    `\`${touch}\``,
    `; ${touch}`,
    `'; ${touch}; '`,
    `"; ${touch}; "`,
    `\n${touch}\n`,
    `\\"; ${touch}; #`,
    `)"; ${touch}; echo "(`,
    `\nEOF\n${touch}\nEOF\n`,
    `$((0))$(${touch})`,
    `}; ${touch}; {`,
    `' ; ${touch} ; echo '`,
    `\`; ${touch}; \``,
    `x]] || ${touch}; [[ x`,
    `a[$(${touch})]`,
    `'\\''; ${touch}; '`,
    `\\'; ${touch}; '`,
  ];
  const templates = [
    'printf %s {{ v }}',
    "printf %s 'x{{ v }}y'",
    'printf %s "x{{ v }}y"',
    'printf %s "$(echo {{ v }})"',
    'printf %s $(echo {{ v }})',
    'printf %s `echo {{ v }}`',
    'printf %s "`echo {{ v }}`"',
    'cat <<EOF\n{{ v }}\nEOF',
    "cat <<'EOF'\n{{ v }}\nEOF",
    ': # {{ v }}',
    'echo $(( {{ v }} ))',
    'echo ${x:-{{ v }}}',
    'echo "${x:-{{ v }}}"',
    "echo $'{{ v }}'",
    'echo \\{{ v }}',
    'echo "\\{{ v }}"',
    'echo ${{ v }}',
    'echo "${{ v }}"',
    'eval echo {{ v }}',
    'sh -c "echo {{ v }}"',
    "sh -c 'echo {{ v }}'",
    "trap 'echo {{ v }}' EXIT",
    'x=$(case a in a) echo;; esac); echo {{ v }}',
    'echo {{ v | quote }}',
    'echo "{{ v | quote }}"',
    "echo '{{ v | quote }}'",
    '{{ v }}',
    '[ {{ v }} = x ]',
    'test "{{ v }}" = x',
    'case {{ v }} in x) ;; esac',
    '[[ {{ v }} == x ]]',
    '(( {{ v }} ))',
    'x={{ v }}; echo "$x"',
    'echo "$(printf a)" {{ v }} `printf "b"` "{{ v }}"',
  ];
  const cases = templates.flatMap((t) => payloads.map((p) => [t, p] as const));

  it.each(SHELLS)('%s: every render either refuses or runs without executing the value', (shell) => {
    let ran = 0;
    for (const [template, v] of cases) {
      let script: unknown;
      try {
        script = renderShellTemplate(template, { v });
      } catch (err) {
        expect(err, `${template} ${JSON.stringify(v)}`).toBeInstanceOf(ExpressionError);
        continue;
      }
      if (typeof script !== 'string') continue;
      spawnSync(shell, ['-c', script], { encoding: 'utf8', timeout: 5000 });
      ran++;
      expect(existsSync(marker), `injected: ${JSON.stringify(template)} with ${JSON.stringify(v)}`).toBe(
        false,
      );
    }
    // The allowed contexts (bare, '…', "…", test, case, assignment…) really ran.
    expect(ran).toBeGreaterThan(payloads.length * 8);
  });
});

describe('renderShellTemplate', () => {
  it('tracks quotes across several templates and escaped quotes', () => {
    const script = render(`printf '%s|' "a\\"{{ x }}" '{{ y }}' {{ z }}`, {
      x: '$x',
      y: "q'q",
      z: 'z z',
    });
    expect(sh(script)).toBe(`a"$x|q'q|z z|`);
  });

  it('| raw and | quote insert the value as given', () => {
    expect(renderShellTemplate('ls {{ flags | raw }}', { flags: '-l -a' })).toBe('ls -l -a');
    expect(renderShellTemplate('ls {{ d | quote }}', { d: 'a b' })).toBe("ls 'a b'");
  });

  it('a whole-template command must be an argv list or marked | raw', () => {
    expect(renderShellTemplate('{{ c }}', { c: ['echo', 'hi'] })).toEqual(['echo', 'hi']);
    expect(renderShellTemplate('{{ c | raw }}', { c: 'echo hi' })).toBe('echo hi');
    expect(renderShellTemplate(' {{ c | raw }} ', { c: ['echo', 'hi'] })).toEqual(['echo', 'hi']);
    expect(renderShellTemplate('{{ c | quote }}', { c: 'a b' })).toBe("'a b'");
    expect(() => renderShellTemplate('{{ c }}', { c: 'echo hi; id' })).toThrow(
      /a command from a variable must be an argv list, or marked \| raw/,
    );
    const unknown = renderShellTemplate('{{ c }}', { c: new Unknown('c') });
    expect(unknown).toBeInstanceOf(Unknown);
  });

  it('an unknown value (plan time) is shown, not quoted', () => {
    const r = renderShellTemplate('echo {{ reg.stdout }}', { reg: new Unknown('reg') });
    expect(r).toBeInstanceOf(Unknown);
    expect(String(r)).toBe('echo (known after apply: reg.stdout)');
  });
});

describe('scanShellTemplate', () => {
  it('reports each template with its context, mode and offset', () => {
    const script = `a {{ x }} '{{ y }}' "{{ z | quote }}" $(b {{ w | raw }})`;
    const sites = scanShellTemplate(script);
    expect(sites.map((s) => [s.expr, s.mode, s.context ?? null, s.refusal ?? null])).toEqual([
      ['x', 'quoted', 'bare', null],
      ['y', 'quoted', 'single', null],
      ['z | quote', 'quote', 'double', `inside "…"`],
      ['w', 'raw', null, null],
    ]);
    expect(sites.map((s) => script.slice(s.index, s.index + s.text.length))).toEqual(
      sites.map((s) => s.text),
    );
  });

  it('a whole-template script and a script without templates have no problems to report statically', () => {
    expect(shellTemplateProblems('{{ c }}')).toEqual([]);
    expect(shellTemplateProblems('echo "$(date)" # done')).toEqual([]);
  });
});

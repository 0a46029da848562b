// The shell-injection corpus: payloads × positions, each pair run end to end through the real CLI
// in this process (`pgrunbook run` with `-e v=PAYLOAD` on a local-transport inventory in a scratch
// directory). The promise: no payload ever runs. Every pair either is refused (exit 2, with a
// file:line:col location) or runs with the value as inert data; the payload's marker file (a
// `touch` of a path unique to the pair) must never appear. Used by scripts/injection-corpus.ts
// (every pair) and test/unit/fuzz/injection.test.ts (a slice).
// biome-ignore-all lint/suspicious/noTemplateCurlyInString: these strings are sh scripts, where ${…} is sh syntax
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { command } from './in-process.js';

/** A payload, given the command that creates the marker (`touch /…/pwned-N`). */
export type Payload = { name: string; make: (touch: string) => string };

/**
 * Where `{{ v }}` sits: an sh script, or an argv list, or the step's `stdin` or `env` feeding one.
 * `DIR` is replaced by the scratch directory.
 */
export interface Position {
  name: string;
  cmd: string | string[];
  stdin?: string;
  env?: Record<string, string>;
  /** Refused at validation whatever the value (a static position). */
  refused: boolean;
}

/** Payloads: code in every syntax sh knows, quotes, escapes, globs, options, unicode look-alikes. */
export const PAYLOADS: Payload[] = [
  { name: 'plain command', make: (t) => t },
  { name: 'command substitution', make: (t) => `$(${t})` },
  { name: 'backticks', make: (t) => `\`${t}\`` },
  { name: 'semicolon', make: (t) => `x; ${t}` },
  { name: 'and', make: (t) => `true && ${t}` },
  { name: 'or', make: (t) => `false || ${t}` },
  { name: 'pipe', make: (t) => `x | ${t}` },
  { name: 'background', make: (t) => `x & ${t}` },
  { name: 'newline', make: (t) => `x\n${t}` },
  { name: 'carriage return', make: (t) => `x\r\n${t}` },
  { name: 'single quote break', make: (t) => `'; ${t}; '` },
  { name: 'double quote break', make: (t) => `"; ${t}; "` },
  { name: 'escaped quote break', make: (t) => `\\'; ${t}; #` },
  { name: 'quote-escape-quote', make: (t) => `'\\''; ${t}; '` },
  { name: 'ansi-c quote', make: (t) => `$'\\x3b' ${t}` },
  { name: 'backslash newline', make: (t) => `\\\n${t}` },
  { name: 'trailing backslash', make: (t) => `${t} \\` },
  { name: 'subshell', make: (t) => `(${t})` },
  { name: 'brace group', make: (t) => `{ ${t}; }` },
  { name: 'arithmetic', make: (t) => `$((0))$(${t})` },
  { name: 'array subscript', make: (t) => `a[$(${t})]` },
  { name: 'parameter expansion', make: (t) => `\${x:-$(${t})}` },
  { name: 'heredoc end', make: (t) => `\nEOF\n${t}\nEOF\n` },
  { name: 'comment then newline', make: (t) => `# x\n${t}` },
  { name: 'glob', make: (t) => `* ?(${t})` },
  { name: 'process substitution', make: (t) => `<(${t})` },
  { name: 'redirection', make: (t) => `>/dev/null; ${t}` },
  { name: 'assignment', make: (t) => `X=1 ${t}` },
  { name: 'option -c', make: (t) => `-c ${t}` },
  { name: 'tar --use-compress-program', make: (t) => `--use-compress-program=${t}` },
  { name: 'tar --to-command', make: (t) => `--to-command=${t}` },
  { name: 'tar --checkpoint-action', make: (t) => `--checkpoint-action=exec=${t}` },
  { name: 'git --upload-pack', make: (t) => `--upload-pack=${t}` },
  { name: 'sort --compress-program', make: (t) => `--compress-program=${t}` },
  { name: 'find -exec', make: (t) => `-exec ${t} ;` },
  { name: 'unicode hyphen option', make: (t) => `\u2010\u2010to-command=${t}` },
  { name: 'fullwidth semicolon', make: (t) => `x\uff1b ${t}` },
  { name: 'zero-width space', make: (t) => `\u200b; ${t}` },
  { name: 'right-to-left override', make: (t) => `\u202e; ${t}` },
  { name: 'non-breaking space', make: (t) => `x;\u00a0${t}` },
];

const F = 'DIR/lockfile';

/** Positions: every shell and runner of command-runners.ts in several option orders, argv and script forms. */
export const POSITIONS: Position[] = [
  // The reproducers.
  ...[
    'sh -c -- {{ v }}',
    'sh -c -e {{ v }}',
    'bash -c -x {{ v }}',
    'LC_ALL=C eval {{ v }}',
    'trap -- {{ v }} EXIT',
    `flock ${F} -c {{ v }}`,
    'script -qc {{ v }} /dev/null',
    'env -S {{ v }}',
  ].map((cmd) => ({ name: cmd, cmd, refused: true })),
  { name: 'argv sh -c -- v', cmd: ['sh', '-c', '--', '{{ v }}'], refused: true },
  // Shells, in any option order.
  ...[
    'sh -c {{ v }}',
    'sh -ec {{ v }}',
    'sh -ce {{ v }}',
    'sh -e -c {{ v }}',
    'sh -c "{{ v }}"',
    "sh -c 'echo {{ v }}'",
    '/bin/sh -c {{ v }}',
    'bash -xc {{ v }}',
    'bash --norc -c {{ v }}',
    'bash -o pipefail -c {{ v }}',
    'bash -O extglob -c {{ v }}',
    'bash -c -- {{ v }}',
    'dash -c {{ v }}',
    'zsh -c {{ v }}',
    'ksh -c {{ v }}',
    'mksh -c {{ v }}',
    'sh {{ v }}',
    'sh -s {{ v }}',
    'bash -c{{ v }}',
    'busybox sh -c {{ v }}',
    'exec sh -c {{ v }}',
    'command sh -c {{ v }}',
    'x=1 sh -c {{ v }}',
    'if sh -c {{ v }}; then :; fi',
    'true && sh -c {{ v }}',
    'echo | sh -c {{ v }}',
    '( sh -c {{ v }} )',
  ].map((cmd) => ({ name: cmd, cmd, refused: true })),
  // eval, trap, and every command runner.
  ...[
    'eval {{ v }}',
    'eval "{{ v }}"',
    'eval echo {{ v }}',
    'builtin eval {{ v }}',
    'command eval {{ v }}',
    'x=1 y=2 eval {{ v }}',
    'echo x | eval {{ v }}',
    'trap {{ v }} EXIT',
    'trap "{{ v }}" EXIT',
    'trap -- "echo {{ v }}" EXIT',
    '. {{ v }}',
    'source {{ v }}',
    'env {{ v }}',
    'env -i {{ v }}',
    'env -S"{{ v }}"',
    'env -i sh -c {{ v }}',
    `flock ${F} {{ v }}`,
    `flock -c {{ v }} ${F}`,
    `flock ${F} sh -c {{ v }}`,
    'script -q -c {{ v }} /dev/null',
    'script -c {{ v }} -q /dev/null',
    'su -c {{ v }}',
    'su root -c {{ v }}',
    'sudo {{ v }}',
    'sudo sh -c {{ v }}',
    'sudo -u root sh -c {{ v }}',
    'runuser -u root -- sh -c {{ v }}',
    'xargs {{ v }}',
    'echo x | xargs sh -c {{ v }}',
    'echo x | xargs -I{} {{ v }}',
    'find DIR -maxdepth 0 -exec sh -c {{ v }} \\;',
    'find DIR -maxdepth 0 -execdir {{ v }} \\;',
    'find DIR -maxdepth 0 -ok {{ v }} \\;',
    'ssh 127.0.0.1 {{ v }}',
    'watch {{ v }}',
    'nohup {{ v }}',
    'nohup sh -c {{ v }}',
    'timeout 5 {{ v }}',
    'timeout 5 sh -c {{ v }}',
    'nice {{ v }}',
    'nice -n 5 sh -c {{ v }}',
    'ionice -c3 {{ v }}',
    'chroot / sh -c {{ v }}',
    'setsid sh -c {{ v }}',
    'parallel ::: {{ v }}',
    'stdbuf -o0 sh -c {{ v }}',
    'time sh -c {{ v }}',
    'time -p sh -c {{ v }}',
    'awk {{ v }}',
    'perl -e {{ v }}',
    'python3 -c {{ v }}',
    'sed -n {{ v }} /dev/null',
    'psql -c {{ v }}',
    'psql -Atc {{ v }}',
    'psql --command={{ v }}',
    'rsync -e {{ v }} DIR/a DIR/b',
    'tar -I {{ v }} -cf DIR/a.tar DIR',
    'tar --use-compress-program={{ v }} -cf DIR/a.tar DIR',
    'tar --use-comp={{ v }} -cf DIR/a.tar DIR',
    'tar --to-command {{ v }} -xf DIR/a.tar',
    'tar cIf {{ v }} DIR/a.tar DIR',
    'pg_ctl -o {{ v }} status',
  ].map((cmd) => ({ name: cmd, cmd, refused: true })),
  // Not a data argument: the command word, environment-steering assignments, places sh re-reads.
  ...[
    '{{ v }}',
    '{{ v }} x',
    '"{{ v }}"',
    "'{{ v }}' x",
    'x=1 {{ v }}',
    'true; {{ v }}',
    'DIR/{{ v }}',
    '$cmd {{ v }}',
    'PATH={{ v }} ls',
    'export PATH={{ v }}',
    'BASH_ENV={{ v }} bash -c true',
    'LD_PRELOAD={{ v }} true',
    'IFS={{ v }}',
    'echo "$(echo {{ v }})"',
    'echo `echo {{ v }}`',
    'cat <<EOF\n{{ v }}\nEOF',
    'echo # {{ v }}',
    'echo $(( {{ v }} ))',
    'echo ${x:-{{ v }}}',
    "echo $'{{ v }}'",
    '[[ {{ v }} == x ]]',
    'echo \\{{ v }}',
    'echo ${{ v }}',
  ].map((cmd) => ({ name: cmd, cmd, refused: true })),
  // argv lists.
  ...(
    [
      ['sh', '-c', '{{ v }}'],
      ['bash', '-c', '-x', '{{ v }}'],
      ['sh', '-ec', '{{ v }}'],
      ['env', '-S', '{{ v }}'],
      ['flock', F, '-c', '{{ v }}'],
      ['script', '-qc', '{{ v }}', '/dev/null'],
      ['sudo', 'sh', '-c', '{{ v }}'],
      ['xargs', '{{ v }}'],
      ['find', 'DIR', '-exec', '{{ v }}', ';'],
      ['timeout', '5', '{{ v }}'],
      ['{{ v }}'],
      ['{{ v }}', 'x'],
      ['tar', '--to-command={{ v }}', '-xf', 'DIR/a.tar'],
    ] as string[][]
  ).map((cmd) => ({ name: `argv ${JSON.stringify(cmd)}`, cmd, refused: true })),
  // Data arguments: the value must land as inert data (or be refused at render as an option).
  ...[
    'echo {{ v }}',
    "echo '{{ v }}'",
    'echo "{{ v }}"',
    'echo x{{ v }}y',
    'printf %s -- {{ v }}',
    'x={{ v }}; printf %s "$x"',
    'x="{{ v }}"; printf %s "$x"',
    'x=\'{{ v }}\'; printf %s "$x"',
    'export lower={{ v }}; printf %s "$lower"',
    'echo hi > DIR/out-{{ v }}',
    'cat < DIR/in-{{ v }}',
    'case {{ v }} in *) echo ok;; esac',
    '[ "{{ v }}" = x ]',
    'test -n {{ v }}',
    'sh -c \'printf %s "$1"\' sh {{ v }}',
    'bash -c \'printf %s "$1"\' -- {{ v }}',
    'sh -c \'printf %s "$0"\' {{ v }}',
    'find DIR -maxdepth 0 -name {{ v }}',
    'grep -F -- {{ v }} /dev/null',
    'ls -- {{ v }}',
    'tar -cf DIR/a.tar -C DIR {{ v }}',
    'tar -xf DIR/a.tar {{ v }}',
    'sort {{ v }} /dev/null',
    'git ls-remote {{ v }}',
    'psql -d {{ v }} -c "select 1" -h 127.0.0.1 -p 9',
    'printf %s {{ v }} | cat',
    '/usr/bin/printf %s -- {{ v }}',
  ].map((cmd) => ({ name: cmd, cmd, refused: false })),
  ...(
    [
      ['echo', '{{ v }}'],
      ['printf', '%s', '--', '{{ v }}'],
      ['sh', '-c', 'printf %s "$1"', 'sh', '{{ v }}'],
      ['tar', '-cf', 'DIR/a.tar', '-C', 'DIR', '{{ v }}'],
      ['git', 'ls-remote', '{{ v }}'],
      ['sort', '{{ v }}', '/dev/null'],
      ['/usr/bin/printf', '%s', 'x{{ v }}'],
    ] as string[][]
  ).map((cmd) => ({ name: `argv ${JSON.stringify(cmd)}`, cmd, refused: false })),
  // Data flow: a value reaches a command through a pipe, the step's stdin or its env.
  ...[
    'echo {{ v }} | sh',
    'printf %s {{ v }} | bash -s',
    'echo {{ v }} | cat | sh',
    '{ echo {{ v }}; } | sh',
    '(echo {{ v }}) | sh',
    'for x in 1; do echo {{ v }}; done | sh',
    'echo {{ v }} |& sh',
    'echo {{ v }} | LC_ALL=C sh',
    'echo {{ v }} | . /dev/stdin',
    'echo {{ v }} | python3',
    'echo {{ v }} | perl',
    'echo {{ v }} | xargs sh -c',
    'echo {{ v }} | sudo sh',
    'echo {{ v }} | while read l; do sh; done',
    'sh <(echo {{ v }})',
    'cat <(echo {{ v }})',
    'x={{ v }}; sh -c "$x"',
    'x={{ v }}; eval "$x"',
    'export x={{ v }}; $x',
    'local_x={{ v }}; sh -c "echo ok; ${local_x}"',
    'x={{ v }}; echo "$x" | sh',
  ].map((cmd) => ({ name: cmd, cmd, refused: true })),
  ...(
    [
      ['sh', 'stdin {{ v }} into sh'],
      ['bash -s', 'stdin {{ v }} into bash -s'],
      ['cat >/dev/null; sh', 'stdin {{ v }} into a script that runs sh'],
      [['sh'], 'stdin {{ v }} into argv sh'],
      [['python3'], 'stdin {{ v }} into argv python3'],
    ] as [string | string[], string][]
  ).map(([cmd, name]) => ({ name, cmd, stdin: '{{ v }}', refused: true })),
  ...(
    [
      ['eval "$x"', 'env x={{ v }} with eval "$x"'],
      ['sh -c "$x"', 'env x={{ v }} with sh -c "$x"'],
      ["sh -c 'eval $x'", "env x={{ v }} with sh -c 'eval $x'"],
      ['$x', 'env x={{ v }} as the command'],
      [['sh', '-c', '$x'], 'env x={{ v }} with argv sh -c $x'],
    ] as [string | string[], string][]
  ).map(([cmd, name]) => ({ name, cmd, env: { x: '{{ v }}' }, refused: true })),
  {
    name: 'env BASH_ENV={{ v }} with bash',
    cmd: 'bash -c true',
    env: { BASH_ENV: '{{ v }}' },
    refused: true,
  },
  { name: 'env LD_PRELOAD={{ v }}', cmd: 'true', env: { LD_PRELOAD: '{{ v }}' }, refused: true },
  // Data flow that stays data.
  ...['echo {{ v }} | cat', "echo {{ v }} | sh -c 'cat >/dev/null'", 'echo {{ v }} | grep -c x'].map(
    (cmd) => ({ name: cmd, cmd, refused: false }),
  ),
  { name: 'stdin {{ v }} into cat', cmd: 'cat >/dev/null', stdin: '{{ v }}', refused: false },
  { name: 'stdin {{ v }} into argv wc', cmd: ['wc', '-c'], stdin: '{{ v }}', refused: false },
  { name: 'env x={{ v }} as "$x"', cmd: 'printf %s "$x"', env: { x: '{{ v }}' }, refused: false },
  {
    name: 'env PGAPPNAME={{ v }}',
    cmd: 'printf %s "$PGAPPNAME"',
    env: { PGAPPNAME: '{{ v }}' },
    refused: false,
  },
];

/** Every payload × position pair, numbered. */
export function pairs(): { n: number; payload: Payload; position: Position }[] {
  const out: { n: number; payload: Payload; position: Position }[] = [];
  for (const position of POSITIONS)
    for (const payload of PAYLOADS) out.push({ n: out.length, payload, position });
  return out;
}

/** What happened to one pair. */
export interface Outcome {
  n: number;
  position: string;
  payload: string;
  code: number;
  /** refused before running (exit 2, with a location) */
  refused: boolean;
  /** the marker appeared: the payload ran */
  executed: boolean;
  /** why the pair breaks a promise, if it does */
  problem?: string;
}

/** What one CLI command did with `cmd` and `-e v=VALUE`, and whether the marker appeared. */
export interface Ran {
  code: number;
  output: string;
  /** the output names the playbook at file:line:col */
  located: boolean;
  /** the marker file appeared (in the scratch directory, or `pwned*` in the working directory) */
  executed: boolean;
}

/**
 * Runs `pgrunbook VERB playbook -i inventory -e v=VALUE` in `dir` (created) for one shell step
 * `cmd` on a local host. `DIR` in `cmd` and `value` is the scratch directory; the run's working
 * directory is another one, checked for `pwned*` files too.
 */
export async function runShellStep(
  step: string | string[] | Pick<Position, 'cmd' | 'stdin' | 'env'>,
  value: string,
  dir: string,
  verb: 'run' | 'validate' = 'run',
  marker = 'pwned',
): Promise<Ran> {
  const scratch = join(dir, 'scratch');
  const cwd = join(dir, 'cwd');
  mkdirSync(scratch, { recursive: true });
  mkdirSync(cwd, { recursive: true });
  const fill = (s: string) => s.replaceAll('DIR', scratch);
  const { cmd, stdin, env } = typeof step === 'string' || Array.isArray(step) ? { cmd: step } : step;
  const filled = typeof cmd === 'string' ? fill(cmd) : cmd.map(fill);
  const params = { cmd: filled, stdin: stdin === undefined ? '' : fill(stdin), ...(env ? { env } : {}) };
  const playbook = join(dir, 'playbook.yml');
  const inventory = join(dir, 'inventory.yml');
  writeFileSync(
    playbook,
    `- name: injection\n  hosts: all\n  steps:\n    - shell: ${JSON.stringify(params)}\n`,
  );
  writeFileSync(inventory, 'defaults:\n  transport: local\nhosts:\n  local: {}\n');
  const extra = ['-e', `v=${JSON.stringify(fill(value))}`];
  const args =
    verb === 'run'
      ? ['run', playbook, '-i', inventory, ...extra, '--yes', '--output', 'json']
      : ['validate', playbook, ...extra];
  const r = await command(args, cwd);
  const output = r.stderr + r.stdout;
  return {
    code: r.code,
    output,
    located: new RegExp(`${escapeRegExp(playbook)}:\\d+:\\d+: `).test(output),
    executed:
      readdirSync(scratch).some((f) => f.startsWith(marker)) ||
      readdirSync(cwd).some((f) => f.startsWith(marker)),
  };
}

/** Runs one pair end to end in `dir`: `pgrunbook run` on a local host with `-e v=PAYLOAD`. */
export async function runPair(
  p: { n: number; payload: Payload; position: Position },
  dir: string,
): Promise<Outcome> {
  const value = p.payload.make(`touch DIR/pwned-${p.n}`);
  const r = await runShellStep(p.position, value, dir, 'run', `pwned-${p.n}`);
  const o: Outcome = {
    n: p.n,
    position: p.position.name,
    payload: p.payload.name,
    code: r.code,
    refused: r.code === 2,
    executed: r.executed,
  };
  const first = r.output.trim().split('\n')[0];
  if (r.executed) o.problem = 'the payload ran';
  else if (r.code === 2 && !r.located) o.problem = `refused without a location: ${first}`;
  else if (p.position.refused && r.code !== 2)
    o.problem = `a static refused position was not refused (exit ${r.code})`;
  else if (r.code !== 0 && r.code !== 1 && r.code !== 2) o.problem = `exit ${r.code}: ${first}`;
  return o;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

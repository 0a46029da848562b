// The one list of commands that run (some of) their arguments as code: shells, command runners and
// interpreters. A template value may be an argument of a command only when the command is known
// and the argument is not one these entries run; every entry is tested in
// test/unit/playbook/command-runners.test.ts and documented in docs/security.md.

/** How a command runs its arguments. */
export type RunnerSpec =
  /** Every argument may be run as code (or name the command to run): no template may be one. */
  | { kind: 'code'; why: string }
  /** A POSIX shell: options, then `-c SCRIPT [$0 $1 …]` or `FILE [$1 …]`; only $0, $1, … are data. */
  | { kind: 'shell' }
  /** Data arguments, except the argument of these options (short letters, long names), which is code. */
  | { kind: 'option'; short: string; long: readonly string[]; firstArgIsOptions?: boolean; why: string }
  /** Data arguments until one of these words; every argument after it is code. */
  | { kind: 'after'; words: readonly string[]; why: string };

const RUNS_COMMAND = 'runs its arguments as a command';
/** Interpreters that also run their standard input as a program when given none on the command line. */
const STDIN_PROGRAM_NAMES = [
  'perl',
  'python',
  'python2',
  'python3',
  'ruby',
  'node',
  'nodejs',
  'php',
  'lua',
  'tclsh',
  'expect',
  'Rscript',
] as const;
const RUNS_SCRIPT = 'runs an argument as a program in its own language';

const entries: [readonly string[], RunnerSpec][] = [
  [['sh', 'bash', 'dash', 'ash', 'ksh', 'mksh', 'pdksh', 'zsh', 'yash', 'posh', 'rbash'], { kind: 'shell' }],
  [['csh', 'tcsh', 'fish', 'busybox', 'toybox'], { kind: 'code', why: 'is a shell (or runs one)' }],
  [['eval', 'source', '.'], { kind: 'code', why: 'reads its arguments as shell code' }],
  [['trap'], { kind: 'code', why: 'reads its action as shell code' }],
  [
    [
      'exec',
      'command',
      'builtin',
      'env',
      'sudo',
      'doas',
      'su',
      'runuser',
      'pkexec',
      'sg',
      'newgrp',
      'setpriv',
      'capsh',
      'nsenter',
      'unshare',
      'chroot',
      'setsid',
      'nohup',
      'timeout',
      'nice',
      'ionice',
      'taskset',
      'chrt',
      'stdbuf',
      'unbuffer',
      'time',
      'xargs',
      'parallel',
      'flock',
      'script',
      'watch',
      'ssh',
      'rsh',
      'systemd-run',
      'start-stop-daemon',
      'at',
      'batch',
      'socat',
      'strace',
      'ltrace',
      'gdb',
      'valgrind',
      'tmux',
      'screen',
      'xterm',
      'sshpass',
      'fakeroot',
      'firejail',
      'cgexec',
    ],
    { kind: 'code', why: RUNS_COMMAND },
  ],
  [
    ['awk', 'gawk', 'mawk', 'nawk', 'sed', ...STDIN_PROGRAM_NAMES, 'make', 'jq'],
    { kind: 'code', why: RUNS_SCRIPT },
  ],
  [
    ['find'],
    { kind: 'after', words: ['-exec', '-execdir', '-ok', '-okdir'], why: 'runs what follows -exec' },
  ],
  [['psql'], { kind: 'option', short: 'c', long: ['--command'], why: 'runs the argument of -c as SQL' }],
  [
    ['pg_ctl'],
    { kind: 'option', short: 'o', long: ['--options'], why: 'passes -o to the server as settings' },
  ],
  [
    ['rsync'],
    { kind: 'option', short: 'e', long: ['--rsh', '--rsync-path'], why: 'runs the argument of -e' },
  ],
  [
    ['tar'],
    {
      kind: 'option',
      short: 'IF',
      long: [
        '--use-compress-program',
        '--to-command',
        '--rsh-command',
        '--checkpoint-action',
        '--info-script',
        '--new-volume-script',
        '--rmt-command',
      ],
      firstArgIsOptions: true,
      why: 'runs the argument of -I, -F, --to-command and the like',
    },
  ],
];

/** Every known runner by command name (the base name of the command word). */
export const RUNNERS: ReadonlyMap<string, RunnerSpec> = new Map(
  entries.flatMap(([names, spec]) => names.map((n) => [n, spec] as const)),
);

/** How a command runs its arguments: undefined when it runs none of them. */
export function runnerOf(name: string): RunnerSpec | undefined {
  return RUNNERS.get(name);
}

const STDIN_PROGRAM: ReadonlySet<string> = new Set(STDIN_PROGRAM_NAMES);
/** Names of a process's own standard input. */
const STDIN_PATHS = new Set(['-', '/dev/stdin', '/dev/fd/0', '/proc/self/fd/0']);
/** Their options that give the program on the command line (so standard input is data). */
const PROGRAM_OPTIONS = /^-(?:c|e|E|r|m)$|^--(?:eval|command|exec)(?:=|$)/;

/**
 * Why a command given `words` (its name first, as written) would run its standard input as code,
 * or undefined when standard input is data to it. A value that flows into such a command's input —
 * piped from an earlier command, or the shell step's `stdin` — is code, whatever quoting it had.
 * Shells without -c or a script file, interpreters without a program argument, psql without
 * -c/-f, crontab and every command runner (it hands its input to the command it runs).
 */
export function stdinIsCode(words: readonly string[]): string | undefined {
  const cmd = words[0];
  if (cmd === undefined) return undefined;
  const name = cmd.slice(cmd.lastIndexOf('/') + 1);
  const args = words.slice(1);
  const operand = args.find((w) => !w.startsWith('-') && !w.startsWith('+'));
  if (name === 'crontab')
    return operand === undefined || args.includes('-') ? 'crontab installs its input as jobs' : undefined;
  if (name === 'psql')
    return args.some((w) => /^-[^-]*[cf]/.test(w) || /^--(?:command|file)(?:=|$)/.test(w)) &&
      !args.includes('-')
      ? undefined
      : 'psql runs its input as SQL (and \\! runs shell commands)';
  if (STDIN_PROGRAM.has(name))
    return operand === undefined && !args.some((w) => PROGRAM_OPTIONS.test(w))
      ? `${name} runs its input as a program`
      : undefined;
  const spec = runnerOf(name);
  if (!spec) return undefined;
  if (spec.kind === 'shell') {
    // -c SCRIPT or a script FILE: the input is the script's data. Otherwise (-s, or nothing) it is the script.
    const c = args.some((w) => /^-[A-Za-z]*c[A-Za-z]*$/.test(w));
    return c || (operand !== undefined && !args.some((w) => /^-[A-Za-z]*s[A-Za-z]*$/.test(w)))
      ? undefined
      : `${name} reads its script from its input`;
  }
  if (spec.kind !== 'code') return undefined;
  if (name === 'eval' || name === 'trap') return undefined;
  if (name === 'source' || name === '.')
    return args.some((w) => STDIN_PATHS.has(w)) ? `${name} reads its input as shell code` : undefined;
  if (name === 'make')
    return args.includes('-') || args.includes('--file=-')
      ? 'make -f - reads its input as a makefile'
      : undefined;
  // awk, sed, jq: the program is an argument; the input is their data.
  if (spec.why === RUNS_SCRIPT) return undefined;
  return `${name} ${spec.why}, and hands it its input`;
}

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
    [
      'awk',
      'gawk',
      'mawk',
      'nawk',
      'sed',
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
      'make',
      'jq',
    ],
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

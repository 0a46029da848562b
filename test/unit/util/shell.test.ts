import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { commandLine } from '../../../src/connections/transport.js';
import { joinArgv, quote, Raw, sh } from '../../../src/util/shell.js';

/** Runs a command line through the real /bin/sh and returns its exact stdout. */
const run = (line: string): string =>
  execFileSync('/bin/sh', ['-c', line], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH, HOME: '/nonexistent-home' },
  });

const nasty: string[] = [
  '',
  ' ',
  '  leading and trailing  ',
  'plain',
  'a b',
  "it's",
  "''",
  "'",
  '"double"',
  '"',
  '$(id -u)',
  '`id -u`',
  '$HOME',
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a literal shell parameter expansion is the point
  '${HOME:-x}',
  '$1 $@ $*',
  'a\nb',
  '\n',
  'end\n',
  '\r\n',
  'tab\there',
  '*',
  '?',
  '[a-z]*',
  '/etc/*',
  '~',
  '~root/x',
  'a;b',
  'a && b || c',
  'a|b',
  '>out',
  '<in',
  '2>&1',
  '\\',
  '\\n',
  "\\'",
  '-n',
  '--',
  '%s %d %%',
  '!',
  '!!',
  '#not a comment',
  'a=b',
  'x=$(touch /tmp/pgrunbook-pwned)',
  'ünïcödé ✓ 🐘',
  '{a,b}',
  'mix \'single\' and "double" and `back` and $(sub) and \\',
];

describe('quote: what /bin/sh reads back is exactly the input', () => {
  it.each(nasty.map((s) => [JSON.stringify(s), s]))('%s', (_label, s) => {
    expect(run(`printf %s ${quote(s)}`)).toBe(s);
  });

  it('every nasty string at once, as one argv, keeps its boundaries', () => {
    const out = run(`printf '%s\\0' ${joinArgv(nasty)}`);
    expect(out.split('\0').slice(0, -1)).toEqual(nasty);
  });

  it('the sh tag quotes each interpolated value and array element', () => {
    for (const s of nasty) expect(run(sh`printf %s ${s}`)).toBe(s);
    const out = run(sh`printf '%s\\0' ${nasty}`);
    expect(out.split('\0').slice(0, -1)).toEqual(nasty);
  });

  it('through sudo -n -- sh -c (two layers of quoting) the argv still arrives intact', () => {
    const line = commandLine({ argv: ['printf', '%s\\0', ...nasty] }, 'sudo');
    expect(line.startsWith('sudo -n -- sh -c ')).toBe(true);
    // Run the inner `sh -c <quoted>` as sudo would, without sudo.
    const inner = line.slice('sudo -n -- '.length);
    expect(run(inner).split('\0').slice(0, -1)).toEqual(nasty);
  });
});

describe('quote: readable output', () => {
  it.each([
    ['plain', 'plain'],
    ['/var/lib/postgresql/15/main', '/var/lib/postgresql/15/main'],
    ['a=b,c:d@e%f+g', 'a=b,c:d@e%f+g'],
    ['', "''"],
    ['a b', "'a b'"],
    ["it's", "'it'\\''s'"],
    ['$x', "'$x'"],
  ])('%j → %s', (input, expected) => {
    expect(quote(input)).toBe(expected);
  });

  it('sh: numbers are stringified and quoted when needed, Raw is kept verbatim', () => {
    expect(sh`pg_ctl -D ${'/data dir'} -t ${60} ${new Raw('>/dev/null 2>&1')}`).toBe(
      "pg_ctl -D '/data dir' -t 60 >/dev/null 2>&1",
    );
    expect(sh`ls ${['a b', 'c']}`).toBe("ls 'a b' c");
    expect(sh`echo`).toBe('echo');
  });

  it('commandLine: a script is sent as is, an argv is quoted', () => {
    expect(commandLine({ script: 'echo $HOME | wc -c' })).toBe('echo $HOME | wc -c');
    expect(commandLine({ argv: ['echo', '$HOME'] })).toBe("echo '$HOME'");
    expect(commandLine({ script: 'echo hi' }, 'sudo')).toBe("sudo -n -- sh -c 'echo hi'");
  });
});

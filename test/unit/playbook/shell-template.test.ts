// Values interpolated into sh scripts are quoted for their context: checked by running real sh.
import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { Unknown } from '../../../src/playbook/expressions.js';
import { renderShellTemplate } from '../../../src/playbook/shell-template.js';

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
];
const sh = (script: string) => execFileSync('/bin/sh', ['-c', script], { encoding: 'utf8' });

describe('renderShellTemplate', () => {
  it.each(NASTY)('a bare word stays one literal argument: %j', (v) => {
    const script = renderShellTemplate('printf %s {{ v }}', { v }) as string;
    expect(sh(script)).toBe(v);
  });

  it.each(NASTY)('inside single quotes the value stays literal: %j', (v) => {
    const script = renderShellTemplate("printf %s 'x{{ v }}y'", { v }) as string;
    expect(sh(script)).toBe(`x${v}y`);
  });

  it.each(NASTY)('inside double quotes the value stays literal: %j', (v) => {
    const script = renderShellTemplate('printf %s "x{{ v }}y"', { v }) as string;
    expect(sh(script)).toBe(`x${v}y`);
  });

  it('tracks quotes across several templates and escaped quotes', () => {
    const script = renderShellTemplate(`printf '%s|' "a\\"{{ x }}" '{{ y }}' {{ z }}`, {
      x: '$x',
      y: "q'q",
      z: 'z z',
    }) as string;
    expect(sh(script)).toBe(`a"$x|q'q|z z|`);
  });

  it('| raw and | quote insert the value as given', () => {
    expect(renderShellTemplate('ls {{ flags | raw }}', { flags: '-l -a' })).toBe('ls -l -a');
    expect(renderShellTemplate('ls {{ d | quote }}', { d: 'a b' })).toBe("ls 'a b'");
  });

  it('a whole-template command is used as given (an argv list keeps its type)', () => {
    expect(renderShellTemplate('{{ c }}', { c: 'echo hi' })).toBe('echo hi');
    expect(renderShellTemplate('{{ c }}', { c: ['echo', 'hi'] })).toEqual(['echo', 'hi']);
  });

  it('an unknown value (plan time) is shown, not quoted', () => {
    const r = renderShellTemplate('echo {{ reg.stdout }}', { reg: new Unknown('reg') });
    expect(r).toBeInstanceOf(Unknown);
    expect(String(r)).toBe('echo (known after apply: reg.stdout)');
  });
});

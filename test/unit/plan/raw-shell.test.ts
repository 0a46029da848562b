// `| raw` is the one way to run a value as shell code: a reviewer must see it in every plan
// format, with the command each host will run.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { command } from '../../fuzz/in-process.js';

function dir(): string {
  const d = mkdtempSync(join(tmpdir(), 'pgrb-raw-'));
  writeFileSync(join(d, 'inv.yml'), 'hosts:\n  here: { transport: local }\n');
  writeFileSync(
    join(d, 'pb.yml'),
    [
      '- name: p',
      '  hosts: here',
      '  vars: { extra: "--verbose && date", name: "x y" }',
      '  steps:',
      '    - name: quoted only',
      '      shell: "echo {{ name }}"',
      '    - name: with raw',
      '      shell: { cmd: "ls {{ extra | raw }} {{ name }}", revert: "echo {{ extra|raw }}" }',
      '',
    ].join('\n'),
  );
  return d;
}

describe('| raw in the plan', () => {
  it('text: the step is tagged, each raw template is named, and the command shows the value unquoted', async () => {
    const d = dir();
    const r = await command(['plan', 'pb.yml', '-i', 'inv.yml'], d);
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n');
    const header = lines.find((l) => l.includes('with raw'))!;
    expect(header).toContain('| raw: values run as shell code');
    expect(lines.find((l) => l.includes('quoted only'))).not.toContain('| raw');
    expect(r.stdout).toContain(
      '| raw: cmd: {{ extra | raw }} goes into the script unquoted and runs as shell code',
    );
    expect(r.stdout).toContain('| raw: revert: {{ extra|raw }} goes into the script unquoted');
    expect(r.stdout).toContain("ls --verbose && date 'x y'");
  });

  it('Markdown: a warning on the step and a count in the summary', async () => {
    const d = dir();
    const r = await command(['plan', 'pb.yml', '-i', 'inv.yml', '--format', 'markdown'], d);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(
      '- Shell code from values: the 1 step(s) marked `| raw` run a value as shell code',
    );
    expect(r.stdout).toMatch(
      /> \*\*⚠ Shell code from values \(`\| raw`\)\.\*\* .*`cmd: \{\{ extra \| raw \}\}`/,
    );
  });

  it('JSON: rawShell lists them; steps without | raw have none', async () => {
    const d = dir();
    const r = await command(['plan', 'pb.yml', '-i', 'inv.yml', '--format', 'json'], d);
    expect(r.code).toBe(0);
    const steps = JSON.parse(r.stdout).plays[0].steps;
    expect(steps[0].rawShell).toBeUndefined();
    expect(steps[1].rawShell).toEqual(['cmd: {{ extra | raw }}', 'revert: {{ extra|raw }}']);
  });
});

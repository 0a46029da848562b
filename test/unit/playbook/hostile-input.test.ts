// Issue 11's reproducers, one named test each: hostile file content is a located exit-2
// problem, never a crash, an abort or a hang; locations point at the token in question.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { formatProblem } from '../../../src/errors.js';
import { loadInventory } from '../../../src/inventory/inventory.js';
import { MAX_FILE_BYTES, parseSource } from '../../../src/playbook/load.js';
import { loadPlaybook } from '../../../src/playbook/validate.js';

const CLI = resolve(dirname(fileURLToPath(import.meta.url)), '../../../bin/pgrunbook.js');
const dir = mkdtempSync(join(tmpdir(), 'pgrb-hostile-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Writes `text` as a playbook and returns its problems, formatted as the CLI prints them. */
function problemsOf(name: string, text: string): string[] {
  const file = join(dir, name);
  writeFileSync(file, text);
  return loadPlaybook(file, {}).problems.map((p) => formatProblem(p).slice(dir.length + 1));
}

/** Runs the compiled CLI with a bounded heap (an abort past it would show as exit 134). */
function cli(args: string[], timeout = 10_000) {
  const t0 = Date.now();
  const r = spawnSync(process.execPath, ['--max-old-space-size=256', CLI, ...args], {
    encoding: 'utf8',
    timeout,
    cwd: dir,
  });
  return { code: r.status, signal: r.signal, stderr: r.stderr, ms: Date.now() - t0 };
}

/** Every problem's line:col lies inside `text` (line exists, column at most its length + 1). */
function inside(text: string, problems: string[]) {
  const lines = text.split('\n');
  for (const p of problems) {
    const m = /^[^:]+:(\d+):(\d+): /.exec(p);
    expect(m, p).not.toBeNull();
    const line = Number(m![1]);
    const col = Number(m![2]);
    expect(line, p).toBeLessThanOrEqual(lines.length);
    expect(col, p).toBeLessThanOrEqual(lines[line - 1]!.length + 1);
  }
}

const laughs = (() => {
  let s =
    '- name: x\n  hosts: all\n  vars:\n    a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n';
  let prev = 'a';
  for (const n of 'bcdefghi') {
    s += `    ${n}: &${n} [${Array(9).fill(`*${prev}`).join(',')}]\n`;
    prev = n;
  }
  return s;
})();

describe('issue 11 crashes: file content gives a located problem', () => {
  it('an undefined alias (vars: { a: *nope }) is refused at the alias', () => {
    const text = '- name: x\n  hosts: all\n  vars: { a: *nope }\n  steps: []\n';
    expect(problemsOf('undefined-alias.yml', text)).toEqual([
      'undefined-alias.yml:3:14: alias *nope refers to no anchor &nope defined before it',
    ]);
  });

  it('a billion-laughs file (under 700 bytes) is refused at the alias that expands too far', () => {
    expect(laughs.length).toBeLessThan(700);
    const [p, ...rest] = problemsOf('laughs.yml', laughs);
    expect(rest).toEqual([]);
    expect(p).toMatch(/^laughs\.yml:8:12: aliases expand to more than 10000 values by \*d \(limit 10000\)/);
  });

  it('one step reused 101 times with `- *s` is refused at the 101st use', () => {
    const text = `- name: x\n  hosts: all\n  steps:\n    - &s\n      shell: "true"\n${'    - *s\n'.repeat(101)}`;
    expect(problemsOf('reuse.yml', text)).toEqual(['reuse.yml:106:7: alias *s used 101 times (limit 100)']);
    // 100 uses are fine.
    const ok = `- name: x\n  hosts: all\n  steps:\n    - &s\n      shell: "true"\n${'    - *s\n'.repeat(100)}`;
    expect(problemsOf('reuse-100.yml', ok)).toEqual([]);
  });

  it('a recursive alias (vars: &v {x: *v}) is refused at the alias', () => {
    const text = '- name: x\n  hosts: all\n  vars: &v {x: *v}\n  steps: []\n';
    expect(problemsOf('recursive.yml', text)).toEqual([
      'recursive.yml:3:16: alias *v is inside its own anchor &v (a recursive value)',
    ]);
  });

  it('an expression of 4,000 terms is refused at the expression', () => {
    const expr = Array(4000).fill('1').join(' + ');
    const text = `- name: x\n  hosts: all\n  steps:\n    - shell: "echo {{ ${expr} }}"\n`;
    expect(problemsOf('expr.yml', text)).toEqual([
      'expr.yml:4:14: [0].steps[0].shell.cmd: expression of 15997 characters (limit 2000); split it with set_fact',
    ]);
  });

  it('an expression nested 65 levels deep (under the length limit) is refused; 60 levels pass', () => {
    const chain = (n: number) => Array(n).fill('1').join('+');
    const text = (n: number) => `- name: x\n  hosts: all\n  steps:\n    - shell: "echo {{ ${chain(n)} }}"\n`;
    expect(problemsOf('deep-expr.yml', text(66))).toEqual([
      'deep-expr.yml:4:14: [0].steps[0].shell.cmd: expression nested more than 64 levels deep (limit 64); split it with set_fact',
    ]);
    expect(problemsOf('ok-expr.yml', text(60))).toEqual([]);
  });

  it('nesting 100,000 brackets deep, or 1,000 compact `- ` deep, is refused where it passes the limit', () => {
    const flow = `${'['.repeat(100_000)}${']'.repeat(100_000)}\n`;
    expect(problemsOf('deep.yml', flow)).toEqual([
      'deep.yml:1:64: nested more than 64 levels deep (limit 64)',
    ]);
    const dash = `${'- '.repeat(1000)}x\n`;
    expect(problemsOf('dash.yml', dash)).toEqual([
      'dash.yml:1:127: nested more than 64 levels deep (limit 64)',
    ]);
  });

  it('a file of 25,001 values is refused at the value past the limit', () => {
    // 5 values before the vars' entries, 2 per entry: the 25,001st is the value of a12497 (line 12501).
    const text = `- name: x\n  hosts: all\n  vars:\n${Array.from({ length: 12_500 }, (_, i) => `    a${i}: 1\n`).join('')}`;
    const ps = problemsOf('many.yml', text);
    expect(ps).toEqual(['many.yml:12501:13: more than 25000 values in one file (limit 25000); split it']);
  });

  it('a 20 MB one-line file: exit 2 in seconds with a 256 MB heap, located where the limit is reached', () => {
    const file = join(dir, 'big.yml');
    writeFileSync(file, `a: ${'x'.repeat(20 * 1024 * 1024)}\n`);
    const r = cli(['validate', file]);
    expect(r.signal).toBeNull();
    expect(r.code).toBe(2);
    expect(r.ms).toBeLessThan(5000);
    expect(r.stderr).toContain(`big.yml:1:${MAX_FILE_BYTES + 1}: file is larger than 1.0 MB (20.0 MB;`);
  });

  it('a file just under the size and value limits is validated in seconds', () => {
    const file = join(dir, 'under.yml');
    const line = `    - shell: "echo ${'y'.repeat(400)}"\n`;
    const steps = line.repeat(Math.min(990, Math.floor((MAX_FILE_BYTES - 100) / line.length)));
    writeFileSync(file, `- name: x\n  hosts: all\n  steps:\n${steps}`);
    const r = cli(['validate', file], 20_000);
    expect(r.signal).toBeNull();
    expect(r.code).toBe(0);
    expect(r.ms).toBeLessThan(10_000);
  });

  it('a FIFO as the playbook path is refused at once as not a regular file', () => {
    const fifo = join(dir, 'fifo.yml');
    expect(spawnSync('mkfifo', [fifo]).status).toBe(0);
    const r = cli(['validate', fifo], 5000);
    expect(r.signal).toBeNull();
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('fifo.yml:1:1: not a regular file (a FIFO); give the path of a YAML file');
  });

  it('a secret file: that is a FIFO is refused by plan --check and run at once, nothing runs', () => {
    const sub = join(dir, 'fifo-secret');
    mkdirSync(sub);
    expect(spawnSync('mkfifo', [join(sub, 'pw.fifo')]).status).toBe(0);
    writeFileSync(
      join(sub, 'inv.yml'),
      'hosts:\n  here:\n    transport: local\n    pg: { host: /nowhere, password: { file: ./pw.fifo } }\n',
    );
    writeFileSync(join(sub, 'pb.yml'), '- name: p\n  hosts: here\n  steps:\n    - shell: touch ran\n');
    for (const args of [
      ['plan', 'pb.yml', '-i', 'inv.yml', '--check'],
      ['run', 'pb.yml', '-i', 'inv.yml', '--yes'],
    ]) {
      const t0 = Date.now();
      const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 10_000, cwd: sub });
      expect(r.signal, args[0]).toBeNull();
      expect(r.status, `${args[0]}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(
        /inv\.yml:4:\d+: .*cannot read secret file \.\/pw\.fifo: not a regular file \(a FIFO\)/,
      );
      expect(Date.now() - t0).toBeLessThan(5000);
    }
    expect(existsSync(join(sub, 'ran'))).toBe(false);
  });

  it('a directory as the playbook or the inventory path is refused as not a regular file', () => {
    const d = join(dir, 'adir.yml');
    mkdirSync(d);
    const r = cli(['validate', d]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('adir.yml:1:1: not a regular file (a directory)');
    expect(loadInventory(d).problems.map((p) => p.message)).toEqual([
      'not a regular file (a directory); give the path of a YAML file',
    ]);
  });
});

describe('issue 11 wrong locations: YAML errors point at their token', () => {
  it('`- name: x` / `hosts: all` / `  steps: []` is located at the offending token (3:8), later errors not shifted', () => {
    const text = '- name: x\nhosts: all\n  steps: []\n';
    const ps = problemsOf('shifted.yml', text);
    expect(ps).toContain('shifted.yml:3:8: invalid YAML: Unexpected map-value-ind token in YAML stream: ":"');
    expect(ps).toContain(
      'shifted.yml:3:10: invalid YAML: Unexpected flow-seq-start token in YAML stream: "["',
    );
    expect(ps.some((p) => p.startsWith('shifted.yml:2:19'))).toBe(false);
    inside(text, ps);
  });

  it('a quoted token that spans lines is shown up to its line end and located at its start', () => {
    const ps = problemsOf('span.yml', '- name: x\nhosts: all\n  steps: []\n');
    expect(ps).toContain('span.yml:2:8: invalid YAML: Unexpected scalar token in YAML stream: "all…"');
  });

  it.each([
    ['unclosed quote', '- name: "x\n  hosts: all\n  steps: []\n'],
    ['tab indent', '- name: x\n\thosts: all\n  steps: []\n'],
    ['unclosed bracket', '- name: x\n  hosts: [all\n  steps: []\n'],
    ['dedented key', '- name: x\n  hosts: all\n steps: []\n'],
    ['CRLF', '- name: x\r\nhosts: all\r\n  steps: [\r\n'],
    ['no final newline', '- name: x\n  hosts: [all'],
    ['doubled line', '- name: x\n  hosts: all\n  hosts: all\n  steps: []\n'],
    ['anchor without node', '- &a\n- *b\n'],
  ])('YAML errors never point past the end of their line: %s', (name, text) => {
    const ps = problemsOf(`${name.replace(/ /g, '-')}.yml`, text);
    expect(ps.length).toBeGreaterThan(0);
    inside(text, ps);
  });

  it('schema errors after a multi-line flow value are located on their own line', () => {
    const text = '- name: x\n  hosts: all\n  vars: {a: [1,\n    2]}\n  steps:\n    - nope: 1\n';
    const ps = problemsOf('after-flow.yml', text);
    expect(ps.length).toBeGreaterThan(0);
    expect(ps[0]).toMatch(/^after-flow\.yml:6:7: /);
  });

  it('parseSource locates a problem in a file of CRLF lines by characters, not bytes', () => {
    const r = parseSource('crlf.yml', 'a: 1\r\nb: [\r\n');
    expect(r.problems.length).toBeGreaterThan(0);
    inside('a: 1\r\nb: [\r\n', r.problems.map(formatProblem));
  });
});

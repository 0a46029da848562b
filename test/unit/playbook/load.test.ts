import { describe, expect, it } from 'vitest';
import { formatProblem } from '../../../src/errors.js';
import { dotted, loadSource, type PathSeg, parseSource } from '../../../src/playbook/load.js';

function parsed(text: string) {
  const r = parseSource('mem.yml', text);
  expect(r.problems).toEqual([]);
  return r.doc!;
}

describe('YAML 1.2 core schema', () => {
  it.each<[string, unknown]>([
    ['yes', 'yes'],
    ['no', 'no'],
    ['on', 'on'],
    ['off', 'off'],
    ['y', 'y'],
    ['true', true],
    ['false', false],
    ['0644', 644],
    ['0o644', 0o644],
    ['0x1f', 31],
    ['"0644"', '0644'],
    ['1e3', 1000],
    ['~', null],
    ['null', null],
    ['12:30', '12:30'],
    ['2024-01-02', '2024-01-02'],
  ])('%s loads as %j', (scalar, expected) => {
    expect((parsed(`v: ${scalar}\n`).value as { v: unknown }).v).toEqual(expected);
  });
});

describe('problems instead of exceptions', () => {
  it('a duplicate key is a problem at the second key', () => {
    const r = parseSource('dup.yml', 'a: 1\nb:\n  c: 1\n  d: 2\n  c: 3\n');
    expect(r.doc).toBeUndefined();
    expect(r.problems).toHaveLength(1);
    expect(formatProblem(r.problems[0]!)).toBe('dup.yml:5:3: invalid YAML: Map keys must be unique');
  });

  it('a syntax error is located and does not carry the yaml library code excerpt', () => {
    const r = parseSource('bad.yml', 'a: [1, 2\nb: 3\n');
    expect(r.doc).toBeUndefined();
    expect(r.problems.length).toBeGreaterThan(0);
    const p = r.problems[0]!;
    expect(p.file).toBe('bad.yml');
    expect(p.line).toBeGreaterThanOrEqual(1);
    expect(p.message).toMatch(/^invalid YAML: /);
    expect(p.message).not.toContain('\n');
  });

  it('a missing file is a problem at 1:1', () => {
    const r = loadSource('/nonexistent/pgrunbook/x.yml');
    expect(r.problems).toEqual([
      { file: '/nonexistent/pgrunbook/x.yml', line: 1, col: 1, path: '', message: 'file not found' },
    ]);
  });
});

describe('locate', () => {
  const text = [
    '# a comment line', //               1
    'plays:', //                          2
    '  - name: first', //                 3
    '    steps:', //                      4
    '      - shell: "echo hi"', //        5
    '        when: x', //                 6
    '      - pg.query:', //               7
    '          sql: select 1', //         8
    '          params: [1, "two"]', //    9
    '          empty:', //                10
    'flow: { a: 1, b: [x, y] }', //       11
    '',
  ].join('\n');
  const doc = parsed(text);

  it.each<[PathSeg[], boolean, [number, number]]>([
    [[], false, [2, 1]],
    [['plays'], true, [2, 1]],
    [['plays'], false, [3, 3]],
    [['plays', 0], false, [3, 5]],
    [['plays', 0, 'name'], false, [3, 11]],
    [['plays', 0, 'name'], true, [3, 5]],
    [['plays', 0, 'steps', 0], false, [5, 9]],
    [['plays', 0, 'steps', 0, 'shell'], false, [5, 16]],
    [['plays', 0, 'steps', 0, 'shell'], true, [5, 9]],
    [['plays', 0, 'steps', 0, 'when'], false, [6, 15]],
    [['plays', 0, 'steps', 1, 'pg.query', 'sql'], false, [8, 16]],
    [['plays', 0, 'steps', 1, 'pg.query', 'params', 1], false, [9, 23]],
    // a key with no value: its key is the best place to point at
    [['plays', 0, 'steps', 1, 'pg.query', 'empty'], false, [10, 11]],
    [['flow', 'b', 1], false, [11, 22]],
    [['flow', 'a'], true, [11, 9]],
  ])('%j (key: %s) is at %j', (path, key, [line, col]) => {
    expect(doc.locate(path, { key })).toEqual({ line, col });
  });

  it('a path that does not exist points at its closest existing ancestor', () => {
    expect(doc.locate(['plays', 0, 'steps', 1, 'pg.query', 'nope'])).toEqual(
      doc.locate(['plays', 0, 'steps', 1, 'pg.query']),
    );
    expect(doc.locate(['plays', 7])).toEqual(doc.locate(['plays']));
  });

  it('problem() carries file, position and the dotted path', () => {
    expect(doc.problem(['plays', 0, 'steps', 0, 'when'], 'bad')).toEqual({
      file: 'mem.yml',
      line: 6,
      col: 15,
      path: 'plays[0].steps[0].when',
      message: 'bad',
    });
  });

  it('dotted() formats paths the way users read them', () => {
    expect(dotted([0, 'steps', 2, 'shell', 'cmd'])).toBe('[0].steps[2].shell.cmd');
    expect(dotted(['hosts', 'db1', 'pg'])).toBe('hosts.db1.pg');
    expect(dotted([])).toBe('');
  });
});

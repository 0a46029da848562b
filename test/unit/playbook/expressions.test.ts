import { describe, expect, it } from 'vitest';
import {
  ExpressionError,
  evaluate,
  expressionProblems,
  FILTERS,
  isTemplate,
  isWholeTemplate,
  referencedNames,
  renderDeep,
  renderTemplate,
  stringify,
  templateExpressions,
  truthy,
  UndefinedError,
  Unknown,
} from '../../../src/playbook/expressions.js';

const scope = {
  n: 7,
  zero: 0,
  s: 'Hello World',
  empty: '',
  list: [1, 2, 3],
  words: ['a', 'b c'],
  obj: { inner: { deep: 5 }, nothing: null, name: 'db1' },
  nul: null,
  flag: true,
  num_str: '42',
  reg: new Unknown('reg'),
};

describe('evaluate: values, operators and filters', () => {
  it.each<[string, unknown]>([
    // literals and lookups
    ['42', 42],
    ['"text"', 'text'],
    ['n', 7],
    ['obj.inner.deep', 5],
    ['obj["name"]', 'db1'],
    ['list[1]', 2],
    ['s.length', 11],
    // arithmetic and string concatenation
    ['n + 1', 8],
    ['n - 10', -3],
    ['n * 2', 14],
    ['n % 4', 3],
    ['"a" + n', 'a7'],
    // comparisons
    ['n == 7', true],
    ['n != 7', false],
    ['n > 6', true],
    ['n >= 8', false],
    ['n < 8', true],
    ['n <= 6', false],
    ['list == [1, 2, 3]', true],
    ['obj.name == "db1"', true],
    // boolean words, Jinja style, with short-circuit values
    ['flag and n', 7],
    ['zero and missing_name', 0],
    ['zero or n', 7],
    ['flag or missing_name', true],
    ['not flag', false],
    ['not empty', true],
    ['not list', false],
    ['n > 1 and n < 10', true],
    ['n > 10 or s == "Hello World"', true],
    // membership
    ['2 in list', true],
    ['9 in list', false],
    ['"World" in s', true],
    ['"inner" in obj', true],
    ['"absent" in obj', false],
    ['"b c" in words', true],
    // is defined / is undefined
    ['missing_name is defined', false],
    ['missing_name is undefined', true],
    ['obj.inner is defined', true],
    ['obj.inner.absent is defined', false],
    ['obj.absent.deeper is undefined', true],
    // filters
    ['missing_name | default("fallback")', 'fallback'],
    ['missing_name | default', ''],
    ['obj.absent | default(3)', 3],
    ['obj.absent.deeper | default(4)', 4],
    ['obj.nothing | default("was null")', 'was null'],
    ['zero | default(9)', 0],
    ['n | default(1)', 7],
    ['num_str | int', 42],
    ['"3.9" | int', 3],
    ['"2.5" | float', 2.5],
    ['n | string', '7'],
    ['"yes" | bool', true],
    ['"off" | bool', false],
    ['list | length', 3],
    ['s | length', 11],
    ['obj | length', 3],
    ['s | lower', 'hello world'],
    ['s | upper', 'HELLO WORLD'],
    ['"  x  " | trim', 'x'],
    ['list | join(",")', '1,2,3'],
    ['list | join', '123'],
    ['"a b  c" | split', ['a', 'b', 'c']],
    ['"a,b" | split(",")', ['a', 'b']],
    ['list | first', 1],
    ['list | last', 3],
    ['obj | keys', ['inner', 'nothing', 'name']],
    ['obj.inner | json', '{"deep":5}'],
    ['s | replace("World", "There")', 'Hello There'],
    // list order kept (the left side's); names compared as text
    ['[3, 1, 2] | intersect([2, 3])', [3, 2]],
    ['[3, 1, 2] | difference([2, 3])', [1]],
    ['list | intersect([])', []],
    ['words | intersect("a")', ['a']],
    ['s | quote', "'Hello World'"],
    ['obj.name | quote', 'db1'],
    ['"it\'s" | quote', `'it'\\''s'`],
    // filters bind tighter than comparison and arithmetic
    ['list | length == 3', true],
    ['list | length + 1', 4],
    ['s | lower | upper', 'HELLO WORLD'],
    ['words | join("-") | upper', 'A-B C'],
  ])('%s → %j', (expr, expected) => {
    expect(evaluate(expr, scope)).toEqual(expected);
  });

  it('"(1 + 2) * 3" respects parentheses', () => {
    expect(evaluate('(1 + 2) * 3', {})).toBe(9);
  });

  it('the int filter refuses a value that is not a number', () => {
    expect(() => evaluate('s | int', scope)).toThrow(ExpressionError);
    expect(() => evaluate('s | int', scope)).toThrow(/int: "Hello World" is not an integer/);
  });

  it('an unknown filter names the filters that exist', () => {
    expect(() => evaluate('s | shout', scope)).toThrow(/unknown filter "shout"; known filters: default, int/);
  });

  it('"is" supports only defined/undefined', () => {
    expect(() => evaluate('n is number', scope)).toThrow(ExpressionError);
  });
});

describe('evaluate: undefined names and attributes', () => {
  it.each([
    ['missing_name', /undefined name "missing_name"/],
    ['obj.absent', /undefined attribute "obj.absent"/],
    ['obj.inner.deep.more', /undefined attribute "obj.inner.deep.more"/],
    ['obj.nothing.x', /undefined attribute "obj.nothing.x"/],
    ['list[10]', /undefined attribute/],
    ['missing_name + 1', /undefined name "missing_name"/],
  ])('%s throws UndefinedError', (expr, message) => {
    expect(() => evaluate(expr, scope)).toThrow(UndefinedError);
    expect(() => evaluate(expr, scope)).toThrow(message);
  });

  it('inherited members (toString, hasOwnProperty) are not attributes', () => {
    expect(() => evaluate('obj.toString', scope)).toThrow(UndefinedError);
    expect(() => evaluate('obj.hasOwnProperty', scope)).toThrow(UndefinedError);
  });

  it('names of the prototype are not names in scope', () => {
    expect(() => evaluate('toString', scope)).toThrow(UndefinedError);
  });
});

describe('evaluate: what is refused', () => {
  it.each([
    'obj.__proto__',
    'obj["__proto__"]',
    'obj.constructor',
    'obj["constructor"]',
    'list.constructor',
    'obj.prototype',
  ])('%s is not accessible', (expr) => {
    expect(() => evaluate(expr, scope)).toThrow(ExpressionError);
    expect(() => evaluate(expr, scope)).toThrow(/is not accessible/);
  });

  it('a bracketed key built at run time cannot reach the prototype either', () => {
    expect(() => evaluate('obj[k]', { ...scope, k: '__proto__' })).toThrow(/"__proto__" is not accessible/);
  });

  it.each([
    'f()',
    'obj.name()',
    'require("fs")',
    's.toUpperCase()',
  ])('%s: function calls are refused', (expr) => {
    expect(() => evaluate(expr, { ...scope, f: () => 1, require: () => 1 })).toThrow(
      /function calls are not supported/,
    );
  });

  it('a syntax error is an ExpressionError naming the expression', () => {
    expect(() => evaluate('n +', scope)).toThrow(ExpressionError);
    expect(() => evaluate('n +', scope)).toThrow(/cannot parse expression "n \+"/);
  });

  it('two expressions side by side are refused', () => {
    expect(() => evaluate('n; n', scope)).toThrow(/expected one expression/);
  });

  it('"$" is not part of a name (no shell-ish $var)', () => {
    expect(() => evaluate('$n', { ...scope, $n: 1 })).toThrow(ExpressionError);
  });
});

describe('evaluate: Unknown propagation', () => {
  it.each([
    'reg',
    'reg.stdout',
    'reg.rows[0].num',
    'reg.rc == 0',
    'reg.rc + 1',
    'not reg',
    'reg and flag',
    'reg or flag',
    'reg | length',
    'reg.stdout | default("x")',
    'list | join(reg)',
    'reg is defined',
    'obj[reg]',
    '2 in reg',
  ])('%s is Unknown', (expr) => {
    const v = evaluate(expr, scope);
    expect(v).toBeInstanceOf(Unknown);
  });

  it('an Unknown carries the expression it stands for', () => {
    expect(String(evaluate('reg.rows[0].num', scope))).toBe('(known after apply: reg.rows[0].num)');
  });

  it('short-circuit on a known left side does not need the Unknown right side', () => {
    expect(evaluate('zero and reg', scope)).toBe(0);
    expect(evaluate('flag or reg', scope)).toBe(true);
  });
});

describe('templates', () => {
  it('isTemplate / isWholeTemplate', () => {
    expect(isTemplate('plain')).toBe(false);
    expect(isTemplate('a {{ b }}')).toBe(true);
    expect(isWholeTemplate('{{ b }}')).toBe(true);
    expect(isWholeTemplate('  {{ b }}  ')).toBe(true);
    expect(isWholeTemplate('a {{ b }}')).toBe(false);
    expect(isWholeTemplate('{{ a }}{{ b }}')).toBe(false);
  });

  it('templateExpressions lists each {{ }} trimmed, in order', () => {
    expect(templateExpressions('x {{ a.b }} y {{c|lower}} {{\n d \n}}')).toEqual(['a.b', 'c|lower', 'd']);
  });

  it.each<[string, unknown]>([
    ['{{ list }}', [1, 2, 3]],
    ['{{ n }}', 7],
    ['  {{ flag }} ', true],
    ['{{ obj.inner }}', { deep: 5 }],
    ['{{ nul }}', null],
    ['{{ n > 3 }}', true],
  ])('a whole template %j keeps its type', (tpl, expected) => {
    expect(renderTemplate(tpl, scope)).toEqual(expected);
  });

  it.each<[string, string]>([
    ['n={{ n }}', 'n=7'],
    ['{{ n }}{{ n }}', '77'],
    ['{{ list }} items', '[1,2,3] items'],
    ['{{ obj.inner }}!', '{"deep":5}!'],
    ['[{{ nul }}]', '[]'],
    ['{{ flag }} and {{ s | lower }}', 'true and hello world'],
    ['no templates here', 'no templates here'],
    ['multi\n{{ n }}\nline', 'multi\n7\nline'],
  ])('a mixed template %j is joined as a string', (tpl, expected) => {
    expect(renderTemplate(tpl, scope)).toBe(expected);
  });

  it('a mixed template with an Unknown part is Unknown', () => {
    const v = renderTemplate('rc={{ reg.rc }} on {{ obj.name }}', scope);
    expect(v).toBeInstanceOf(Unknown);
    expect(String(v)).toContain('(known after apply: reg.rc)');
    expect(String(v)).toContain('on db1');
  });

  it('an undefined name inside a template throws instead of rendering empty', () => {
    expect(() => renderTemplate('dir={{ nope }}', scope)).toThrow(UndefinedError);
  });

  it('renderDeep renders strings inside lists and mappings and leaves other values alone', () => {
    const out = renderDeep(
      { a: '{{ n }}', b: ['x{{ n }}', 3, null], c: { d: '{{ list }}', e: false } },
      scope,
    );
    expect(out).toEqual({ a: 7, b: ['x7', 3, null], c: { d: [1, 2, 3], e: false } });
  });

  it('stringify: null/undefined are empty, lists and mappings are JSON', () => {
    expect(stringify(null)).toBe('');
    expect(stringify(undefined)).toBe('');
    expect(stringify([1, 'a'])).toBe('[1,"a"]');
    expect(stringify({ a: 1 })).toBe('{"a":1}');
    expect(stringify(3.5)).toBe('3.5');
  });

  it.each<[unknown, boolean]>([
    ['', false],
    ['x', true],
    [0, false],
    [2, true],
    [[], false],
    [[0], true],
    [{}, false],
    [{ a: 1 }, true],
    [null, false],
    [undefined, false],
  ])('truthy(%j) is %s', (v, expected) => {
    expect(truthy(v)).toBe(expected);
  });
});

describe('referencedNames', () => {
  it.each<[string, { root: string; chain: string }[]]>([
    ['a', [{ root: 'a', chain: 'a' }]],
    ['a.b.c', [{ root: 'a', chain: 'a.b.c' }]],
    ['reg.rows[0].num', [{ root: 'reg', chain: 'reg.rows[0].num' }]],
    [
      'a == b.c',
      [
        { root: 'a', chain: 'a' },
        { root: 'b', chain: 'b.c' },
      ],
    ],
    // filter names are not variables; filter arguments are
    ['reg.stdout | lower', [{ root: 'reg', chain: 'reg.stdout' }]],
    [
      'x | default(y) | join(sep)',
      [
        { root: 'x', chain: 'x' },
        { root: 'y', chain: 'y' },
        { root: 'sep', chain: 'sep' },
      ],
    ],
    // the test name after `is` is not a variable
    ['x is defined', [{ root: 'x', chain: 'x' }]],
    ['not z', [{ root: 'z', chain: 'z' }]],
    [
      '[p, q.r]',
      [
        { root: 'p', chain: 'p' },
        { root: 'q', chain: 'q.r' },
      ],
    ],
    [
      'l[i]',
      [
        { root: 'l', chain: 'l' },
        { root: 'i', chain: 'i' },
      ],
    ],
    ['"literal" + 1', []],
  ])('%s', (expr, expected) => {
    expect(referencedNames(expr).map(({ root, chain }) => ({ root, chain }))).toEqual(expected);
  });

  // Names guarded by `is defined` or `| default` may be absent: validation must not call them undefined.
  it.each<[string, Record<string, boolean>]>([
    ['x is defined', { x: true }],
    ['x.y is not defined', { x: true }],
    ['x | default(y)', { x: true, y: false }],
    ['x.y | default(1) | int', { x: true }],
    ['x | int', { x: false }],
    ['a and b is defined', { a: false, b: true }],
  ])('optional names in %s', (expr, expected) => {
    expect(Object.fromEntries(referencedNames(expr).map((r) => [r.root, r.optional]))).toEqual(expected);
  });

  // A bracketed string key directly on the root must not become part of the root's name.
  it.each<[string, string]>([
    ['vars["lab_dir"]', 'vars'],
    ['host["pg"].port', 'host'],
    ["reg['a.b']", 'reg'],
  ])('the root of %s is %s', (expr, root) => {
    expect(referencedNames(expr).map((r) => r.root)).toEqual([root]);
  });

  it('function calls are refused here too', () => {
    expect(() => referencedNames('lookup("env", "HOME")')).toThrow(ExpressionError);
  });
});

describe('expressionProblems: what evaluation would refuse, found without values', () => {
  const suggest = (name: string, candidates: readonly string[]) =>
    candidates.includes(name.slice(0, -1)) ? ` (did you mean "${name.slice(0, -1)}"?)` : '';

  it.each<[string, RegExp]>([
    [
      'x | lengthh',
      /^unknown filter "lengthh" \(did you mean "length"\?\) in "x \| lengthh"; known filters: default/,
    ],
    ['x | nope(1)', /^unknown filter "nope" in "x \| nope\(1\)"/],
    ['x | raw', /^"\| raw" only applies to a template in a shell script/],
    ['(x | raw) + 1', /^"\| raw" only applies/],
    ['a ? b : c', /^the \?: conditional is not supported in "a \? b : c"/],
    ['this', /^"this" is not supported/],
    ['this.x', /^"this" is not supported/],
    ["{'a': 1}", /object literals \{…\} are not supported/],
    ['f(1)', /^function calls are not supported; use a filter: value \| f\(\.\.\.\)/],
    ['x.upper()', /^function calls are not supported/],
    ['[f(1)]', /^function calls are not supported/],
    ['x | default(f(1))', /^function calls are not supported/],
    ['x?.y', /^"\?\." is not supported/],
    ['x ?? y', /^unsupported operator "\?\?"/],
    ['x << 1', /^unsupported operator "<<"/],
    ['~x', /^unsupported operator "~"/],
    ['x is number', /^"is" supports "defined" and "undefined"/],
    ['[1,,2]', /^an empty list element/],
    ['x | 1', /^a filter is a name/],
    ['x +', /^cannot parse expression/],
  ])('%s', (src, message) => {
    const problems = expressionProblems(src, suggest);
    expect(problems.length).toBeGreaterThan(0);
    expect(problems[0]).toMatch(message);
  });

  it.each([
    'x',
    'x.y[0]["k"]',
    'x | default("a") | upper',
    'x | join(", ")',
    'not x and (y or z)',
    'x is not defined',
    '[1, 2] | length >= 2',
    '-x + +y * 3 % 2 / 1',
    'a in b && c || !d',
    'a === b and a !== c',
  ])('%s is fine', (src) => {
    expect(expressionProblems(src)).toEqual([]);
  });

  it('every known filter is accepted', () => {
    for (const f of FILTERS) expect(expressionProblems(`x | ${f}`)).toEqual([]);
  });

  it('evaluating | raw outside a shell script says where it belongs', () => {
    expect(() => evaluate('s | raw', scope)).toThrow(/"\| raw" only applies to a template in a shell script/);
  });

  it('evaluating unsupported syntax gives the same clear message', () => {
    expect(() => evaluate('n ? 1 : 2', scope)).toThrow(/the \?: conditional is not supported/);
    expect(() => evaluate('this', scope)).toThrow(/"this" is not supported/);
  });
});

// Shell injection, end to end through the real CLI on a local host: the issue-11 reproducers as
// named regression tests, every static position refused at validation, and a slice of the corpus
// (scripts/injection-corpus.ts runs all of it) in which no payload runs.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { RUNNERS } from '../../../src/playbook/command-runners.js';
import { shellInputProblems, variableFlowProblems } from '../../../src/playbook/shell-inputs.js';
import { argvTemplateProblems, shellTemplateProblems } from '../../../src/playbook/shell-template.js';
import { POSITIONS, type Position, pairs, runPair, runShellStep } from '../../fuzz/injection.js';

const work = mkdtempSync(join(tmpdir(), 'pgrb-injection-test-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));
let k = 0;
const dir = () => join(work, String(k++));

describe('issue 11: with -e v="touch pwned" no reproducer runs the payload', () => {
  // Refused at validation: the position alone is enough.
  it.each<[string, string | string[]]>([
    ['sh -c -- {{ v }}', 'sh -c -- {{ v }}'],
    ['sh -c -e {{ v }}', 'sh -c -e {{ v }}'],
    ['bash -c -x {{ v }}', 'bash -c -x {{ v }}'],
    ['LC_ALL=C eval {{ v }}', 'LC_ALL=C eval {{ v }}'],
    ['trap -- {{ v }} EXIT', 'trap -- {{ v }} EXIT'],
    ['argv ["sh","-c","--","{{ v }}"]', ['sh', '-c', '--', '{{ v }}']],
    ['flock F -c {{ v }}', 'flock DIR/F -c {{ v }}'],
    ['script -qc {{ v }}', 'script -qc {{ v }} /dev/null'],
    ['env -S {{ v }}', 'env -S {{ v }}'],
  ])('%s: validate and run exit 2 at the template, nothing runs', async (_name, cmd) => {
    const v = await runShellStep(cmd, 'touch pwned', dir(), 'validate');
    expect(v.code).toBe(2);
    expect(v.located).toBe(true);
    expect(v.output).toMatch(/template \{\{ v \}\} .*no value is safe there/);
    const r = await runShellStep(cmd, 'touch pwned', dir(), 'run');
    expect(r.code).toBe(2);
    expect(r.executed).toBe(false);
  });

  it('tar … {{ v }} with v=--use-compress-program=…: refused at render, before anything runs', async () => {
    const cmd = 'tar -cf DIR/a.tar -C DIR . {{ v }}';
    const value = '--use-compress-program=touch pwned';
    const r = await runShellStep(cmd, value, dir(), 'run');
    expect(r.code).toBe(2);
    expect(r.located).toBe(true);
    expect(r.output).toMatch(/starts with "-"; put -- before it/);
    expect(r.executed).toBe(false);
    // After --, the same value is a file name: tar runs and fails to find it, the payload never runs.
    const safe = await runShellStep('tar -cf DIR/a.tar -C DIR -- {{ v }}', value, dir(), 'run');
    expect(safe.code).toBe(1);
    expect(safe.executed).toBe(false);
  });

  // The data-flow holes: a value that is data where it stands, then reaches a command as code.
  it.each<[string, Pick<Position, 'cmd' | 'stdin' | 'env'>, RegExp]>([
    [
      'echo {{ v }} | sh',
      { cmd: 'echo {{ v }} | sh' },
      /template \{\{ v \}\} is piped into sh, and sh reads its script from its input/,
    ],
    ['echo {{ v }} | cat | bash', { cmd: 'echo {{ v }} | cat | bash' }, /is piped into bash/],
    [
      'stdin {{ v }} into sh',
      { cmd: 'sh', stdin: '{{ v }}' },
      /stdin holds a template and cmd runs sh, where sh reads its script from its input/,
    ],
    ['stdin {{ v }} into psql', { cmd: ['psql'], stdin: 'select {{ v }}' }, /psql runs its input as SQL/],
    [
      'env x={{ v }} and eval "$x"',
      { cmd: 'eval "$x"', env: { x: '{{ v }}' } },
      /env\.x holds a template and cmd expands \$x in an argument of eval/,
    ],
    [
      'env BASH_ENV={{ v }}',
      { cmd: 'bash -c true', env: { BASH_ENV: '{{ v }}' } },
      /env\.BASH_ENV holds a template: programs read variables like BASH_ENV/,
    ],
  ])('%s: validate and run exit 2, located, nothing runs', async (_name, step, message) => {
    const v = await runShellStep(step, 'touch pwned', dir(), 'validate');
    expect(v.code).toBe(2);
    expect(v.located).toBe(true);
    expect(v.output).toMatch(message);
    const r = await runShellStep(step, 'touch pwned', dir(), 'run');
    expect(r.code).toBe(2);
    expect(r.executed).toBe(false);
  });

  it('the same values as data: piped into cat, fed to wc, expanded as "$x": they run, inert', async () => {
    for (const step of [
      { cmd: 'echo {{ v }} | cat' },
      { cmd: ['wc', '-c'], stdin: '{{ v }}' },
      { cmd: 'printf %s "$x"', env: { x: '{{ v }}' } },
    ]) {
      const r = await runShellStep(step, 'x; touch pwned', dir(), 'run');
      expect(r.code, JSON.stringify(step) + r.output).toBe(0);
      expect(r.executed).toBe(false);
    }
  });

  it('the harness sees a payload that runs: | raw is the one escape hatch', async () => {
    const r = await runShellStep('{{ v | raw }}', 'touch pwned', dir(), 'run');
    expect(r.code).toBe(0);
    expect(r.executed).toBe(true);
  });
});

describe('the list of shells and command runners', () => {
  // Each entry, as the command of a script and of an argv list ({{v}} keeps an argv element whole).
  it.each([...RUNNERS.keys()])('%s', (name) => {
    const spec = RUNNERS.get(name)!;
    const scripts =
      spec.kind === 'code'
        ? [`${name} {{v}}`, `${name} -x {{v}}`, `${name} a b {{v}}`, `/usr/bin/${name} {{v}}`]
        : spec.kind === 'shell'
          ? [`${name} -c {{v}}`, `${name} -e -c {{v}}`, `${name} -xc -- {{v}}`, `${name} {{v}}`]
          : spec.kind === 'after'
            ? spec.words.map((w) => `${name} . ${w} {{v}} \\;`)
            : [...spec.short]
                .map((l) => `${name} -${l} {{v}}`)
                .concat(spec.long.map((l) => `${name} ${l}={{v}}`));
    for (const s of scripts) {
      expect(shellTemplateProblems(s), s).toHaveLength(1);
      const argv = s.split(' ');
      expect(argvTemplateProblems(argv), JSON.stringify(argv)).toHaveLength(1);
    }
  });
});

/** What validation says about a position: its templates' places, and what its stdin and env feed. */
function staticProblems(p: Position): string[] {
  const { cmd } = p;
  const places =
    typeof cmd === 'string'
      ? [...shellTemplateProblems(cmd), ...variableFlowProblems(cmd)]
      : argvTemplateProblems(cmd);
  const inputs = shellInputProblems({ commands: ['cmd'], stdin: 'stdin', env: 'env' }, { ...p });
  return [...places.map((x) => x.message), ...inputs.map((x) => x.message)];
}

describe('every position the corpus marks as refused is refused at validation', () => {
  // (A whole-template script, `{{ v }}`, is refused by its own rule: a command from a variable.)
  const refused = POSITIONS.filter((p) => p.refused && p.cmd !== '{{ v }}');
  it.each(refused.map((p) => [p.name, p] as const))('%s', (_name, p) => {
    expect(staticProblems(p).length).toBeGreaterThan(0);
  });
  it.each(
    POSITIONS.filter((p) => !p.refused).map((p) => [p.name, p] as const),
  )('a data position is accepted: %s', (_name, p) => {
    expect(staticProblems(p)).toEqual([]);
  });
});

describe('the corpus, a slice run end to end: no payload runs', () => {
  const all = pairs();
  // A quarter of the pairs at data positions (where the value does reach a command) and a
  // sixteenth of the statically refused ones, rotating over payloads.
  const slice = all.filter((p) => p.n % (p.position.refused ? 16 : 4) === 0);
  it(`${slice.length} of ${all.length} pairs`, { timeout: 120_000 }, async () => {
    expect(all.length).toBeGreaterThanOrEqual(1000);
    const problems: string[] = [];
    let ran = 0;
    for (const p of slice) {
      const o = await runPair(p, dir());
      if (o.problem) problems.push(`#${o.n} ${o.position} × ${o.payload}: ${o.problem}`);
      if (!o.refused) ran++;
    }
    expect(problems).toEqual([]);
    // Data positions really ran the command with the value in it.
    expect(ran).toBeGreaterThan(250);
  });
});

// The next command a failed run ends with: resume only when something stands to build on.
import { describe, expect, it } from 'vitest';
import { parseExtraVars } from '../../../src/cli/args.js';
import { partialArtifacts } from '../../../src/runner/artifacts.js';
import type { JournalEvent } from '../../../src/runner/journal-chain.js';
import { type Ending, nextCommand, runCommands } from '../../../src/runner/next-command.js';

const cmds = runCommands({
  runId: 'R1',
  playbook: '/p/pb.yml',
  inventory: '/p/my inv.yml',
  extraVars: { old_major: 13, label: 'nightly', odd: 'a b', n: '13', flag: 'true', pw: 'x' },
  masked: ['pw'],
  limit: 'db1',
});
const base: Ending = { status: 'failed', remaining: 0, unknown: 0, leftovers: 0 };

describe('runCommands', () => {
  it('prints every -e value so that the CLI reads it back as given, and the real inventory path', () => {
    expect(cmds.rerun).toBe(
      `pgrunbook run /p/pb.yml -i '/p/my inv.yml' -e old_major=13 -e label=nightly -e 'odd="a b"' -e 'n="13"' -e 'flag="true"' -e pw=… --limit db1`,
    );
    expect(cmds.resume).toBe('pgrunbook resume R1 -e pw=…');
    // What the shell hands the CLI parses back to the values the run had.
    expect(parseExtraVars(['old_major=13', 'label=nightly', 'odd="a b"', 'n="13"', 'flag="true"'])).toEqual({
      old_major: 13,
      label: 'nightly',
      odd: 'a b',
      n: '13',
      flag: 'true',
    });
  });
});

describe('nextCommand', () => {
  it('none after success', () => {
    expect(nextCommand({ ...base, status: 'ok' }, cmds)).toBeUndefined();
  });
  it('a fresh run when nothing stands (failed before any change, or all undone)', () => {
    const n = nextCommand(base, cmds)!;
    expect(n.command).toBe(cmds.rerun);
    expect(n.line).not.toContain('pgrunbook resume');
    expect(n.line.endsWith(cmds.rerun)).toBe(true);
  });
  it('resume when changes remain that resume skips', () => {
    expect(nextCommand({ ...base, remaining: 2 }, cmds)!.command).toBe(cmds.resume);
    expect(nextCommand({ ...base, status: 'interrupted', remaining: 1 }, cmds)!.command).toBe(cmds.resume);
  });
  it('the recovery past a point of no return, never resume', () => {
    const n = nextCommand(
      { ...base, remaining: 3, recovery: 'pgrunbook run rb.yml -i /i.yml -e a=1' },
      cmds,
    )!;
    expect(n.command).toBe('pgrunbook run rb.yml -i /i.yml -e a=1');
    expect(n.line).not.toContain('pgrunbook resume');
  });
  it('after a failed undo: the manual remedy, then a fresh run (resume refuses)', () => {
    const n = nextCommand({ ...base, status: 'compensation_failed', remaining: 1 }, cmds)!;
    expect(n.command).toBe(cmds.rerun);
    expect(n.line).toContain('still in place');
  });
  it('unknown state and leftovers are checked first', () => {
    const n = nextCommand({ ...base, unknown: 1, leftovers: 1 }, cmds)!;
    expect(n.line).toMatch(
      /check the steps under "State unknown" and the partial artifacts .* by hand, then/,
    );
  });
});

describe('partialArtifacts', () => {
  const ev = (e: Record<string, unknown>) =>
    ({ ts: 't', host: 'h', address: 'p0.s1', title: 'Copy', ...e }) as JournalEvent;
  const made = ev({ type: 'artifact', paths: ['/b/data', '/b/tablespaces'], remove: 'rm -rf /b/data' });
  it('a step killed after naming its paths leaves them partial', () => {
    expect(partialArtifacts([ev({ type: 'step_started', attempt: 1 }), made])).toMatchObject([
      { host: 'h', paths: ['/b/data', '/b/tablespaces'], remove: 'rm -rf /b/data' },
    ]);
  });
  it('a step that succeeded made them whole; a removal took them away', () => {
    expect(partialArtifacts([made, ev({ type: 'step_finished', status: 'ok' })])).toEqual([]);
    expect(
      partialArtifacts([
        made,
        ev({ type: 'artifact_removed', paths: ['/b/data', '/b/tablespaces'], ok: true }),
      ]),
    ).toEqual([]);
    expect(
      partialArtifacts([
        made,
        ev({ type: 'artifact_removed', paths: ['/b/data', '/b/tablespaces'], ok: false }),
      ]),
    ).toHaveLength(1);
  });
});

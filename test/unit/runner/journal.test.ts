// The journal format (issue 11, item 5): each line sealed by a checksum chained to the line before
// and seeded by the run id, a head file recording how much was on disk. Written with the real
// Journal class to real files; every damage the fault injector makes is refused with a located
// JournalError, never read as events and never any other kind of error.
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { RunEvent } from '../../../src/runner/events.js';
import { Journal, JournalError, readJournal } from '../../../src/runner/journal.js';
import { JOURNAL_FORMAT } from '../../../src/runner/journal-chain.js';
import { Secret } from '../../../src/util/secret.js';
import { damages } from '../helpers/journal-damage.js';

const root = mkdtempSync(join(tmpdir(), 'pgrb-journal-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const RUN = '20261206-070000-abcd';

const EVENTS: RunEvent[] = [
  {
    type: 'run_started',
    runId: RUN,
    playbook: '/p/pb.yml',
    playbookSha256: 'a'.repeat(64),
    inventory: '/p/inv.yml',
    extraVars: { v: 'x' },
    resumed: false,
  },
  { type: 'play_started', play: 0, name: 'p', hosts: ['a'] },
  { type: 'step_started', address: 'p0.steps.0', title: 'one', stepType: 'shell', host: 'a', attempt: 1 },
  { type: 'step_output', address: 'p0.steps.0', host: 'a', stream: 'stdout', text: 'line "quoted"\n\ttab' },
  {
    type: 'step_finished',
    address: 'p0.steps.0',
    title: 'one',
    stepType: 'shell',
    host: 'a',
    status: 'ok',
    durationMs: 3,
    outputs: { rc: 0 },
  },
  { type: 'undo_pushed', address: 'p0.steps.0', title: 'one', host: 'a', action: 'echo undo' },
  { type: 'step_started', address: 'p0.steps.1', title: 'two', stepType: 'shell', host: 'a', attempt: 1 },
  {
    type: 'step_finished',
    address: 'p0.steps.1',
    title: 'two',
    stepType: 'shell',
    host: 'a',
    status: 'failed',
    durationMs: 4,
    error: 'exit 1',
  },
  { type: 'unwind_started', entries: 1 },
  { type: 'undo_started', address: 'p0.steps.0', title: 'one', host: 'a', action: 'echo undo' },
  { type: 'undo_finished', address: 'p0.steps.0', title: 'one', host: 'a', ok: false, durationMs: 1 },
  { type: 'run_finished', status: 'failed', exitCode: 1, summary: ['two failed'] },
];

/** A journal of `runId` written by the real writer; returns its path. */
function written(events: RunEvent[] = EVENTS, runId = RUN): string {
  const dir = join(root, `w${n++}`, runId);
  const j = new Journal(join(dir, 'journal.jsonl'));
  for (const [i, e] of events.entries())
    j.write({ ...e, ts: `2026-12-06T07:00:${String(i).padStart(2, '0')}.000Z` });
  j.close();
  return join(dir, 'journal.jsonl');
}

function refusal(path: string): string {
  try {
    readJournal(path);
  } catch (err) {
    if (err instanceof JournalError) return err.message;
    throw err;
  }
  throw new Error(`${path}: a damaged journal was read as events`);
}

describe('journal chain', () => {
  it('reads back exactly what was written, each line still a JSON event', () => {
    const path = written();
    const events = readJournal(path);
    expect(events.map(({ ts: _, ...e }) => e)).toEqual(EVENTS);
    const lines = readFileSync(path, 'utf8').split('\n').filter(Boolean);
    expect(lines).toHaveLength(EVENTS.length);
    for (const l of lines)
      expect(JSON.parse(l)).toMatchObject({ chain: expect.stringMatching(/^[0-9a-f]{64}$/) });
    expect(readFileSync(`${path}.head`, 'utf8')).toMatch(new RegExp(`^${EVENTS.length} [0-9a-f]{64}\\n$`));
  });

  it('appends to an existing journal (resume) and the whole still verifies', () => {
    const path = written();
    const j = new Journal(path);
    j.write({ ...EVENTS[0]!, resumed: true, ts: 'later' } as RunEvent & { ts: string });
    j.write({ type: 'run_finished', status: 'ok', exitCode: 0, summary: [], ts: 'later' });
    j.close();
    const events = readJournal(path);
    expect(events).toHaveLength(EVENTS.length + 2);
    expect(events.at(-1)).toMatchObject({ type: 'run_finished', status: 'ok' });
  });

  it('still masks secrets before sealing', () => {
    const secret = new Secret('hunter2-canary', 'test');
    const path = written([
      EVENTS[0]!,
      { type: 'step_output', address: 'x', host: 'a', stream: 'stdout', text: `pw=${secret.reveal()}` },
      { type: 'run_aborted', reason: String(secret) },
    ]);
    expect(readFileSync(path, 'utf8')).not.toContain('hunter2-canary');
    expect(readJournal(path)[1]).toMatchObject({ text: 'pw=***' });
  });

  it('refuses every damage of a finished journal, naming where (cut, drop, swap, garbage, null, flip, edit)', () => {
    const path = written();
    const good = readFileSync(path, 'utf8');
    const head = readFileSync(`${path}.head`, 'utf8');
    const seen = new Set<string>();
    let count = 0;
    for (const d of damages(good, { cutEvery: 17 })) {
      writeFileSync(path, d.text);
      writeFileSync(`${path}.head`, head);
      const message = refusal(path);
      expect(message, d.name).toMatch(/journal\.jsonl(:\d+)?: /);
      expect(message, d.name).toMatch(/damaged|cut|does not match/);
      seen.add(d.kind);
      count++;
    }
    expect([...seen].sort()).toEqual([
      'blank',
      'cut',
      'drop',
      'duplicate',
      'edit',
      'flip',
      'garbage',
      'null',
      'swap',
    ]);
    expect(count).toBeGreaterThan(200);
  });

  it('says a journal cut mid-line is cut, at which line and byte', () => {
    const path = written();
    const good = readFileSync(path, 'utf8');
    const third = good.split('\n').slice(0, 2).join('\n').length + 1;
    writeFileSync(path, good.slice(0, third + 10));
    expect(refusal(path)).toContain(
      `journal.jsonl:3: the journal is damaged at line 3 (byte ${third}): it ends without an end of line (10 bytes): the journal was cut in the middle of a line`,
    );
  });

  it('says a journal cut at a line boundary was cut, from its head file', () => {
    const path = written();
    const good = readFileSync(path, 'utf8');
    writeFileSync(path, `${good.split('\n').slice(0, 5).join('\n')}\n`);
    expect(refusal(path)).toContain(`the journal was cut: it has 5 lines, but ${EVENTS.length} were on disk`);
  });

  it('refuses a journal without its head file, or a damaged head', () => {
    const path = written();
    writeFileSync(`${path}.head`, 'x');
    expect(refusal(path)).toContain('journal.jsonl.head: damaged');
    rmSync(`${path}.head`);
    expect(refusal(path)).toContain('journal.jsonl.head: missing');
  });

  it('refuses a journal copied from another run, naming that run', () => {
    const path = written();
    const other = join(root, `w${n++}`, '20261206-080000-wxyz');
    mkdirSync(other, { recursive: true });
    cpSync(join(path, '..'), other, { recursive: true });
    expect(refusal(join(other, 'journal.jsonl'))).toContain(
      `this journal belongs to run "${RUN}", not to run 20261206-080000-wxyz (its directory)`,
    );
  });

  it('refuses a journal without checksums (older format), naming the format', () => {
    const path = written();
    writeFileSync(path, `${EVENTS.map((e) => JSON.stringify({ ts: 't', ...e })).join('\n')}\n`);
    expect(refusal(path)).toContain(`older than journal format ${JOURNAL_FORMAT}`);
  });

  it('refuses a directory, a FIFO or a symbolic link in place of the journal', () => {
    for (const [kind, make] of [
      ['a directory', (p: string) => mkdirSync(p)],
      ['a FIFO', (p: string) => execFileSync('mkfifo', [p])],
      ['a symbolic link', (p: string) => symlinkSync('/etc/hostname', p)],
    ] as const) {
      const path = written();
      rmSync(path);
      make(path);
      expect(refusal(path)).toContain(`the journal is not a regular file (it is ${kind})`);
    }
  });

  it('refuses to append to a damaged journal', () => {
    const path = written();
    writeFileSync(path, `${readFileSync(path, 'utf8')}garbage\n`);
    expect(() => new Journal(path)).toThrow(JournalError);
  });
});

// Which steps a kill -9 left started and never finished, and which of those resume must not run
// again without --rerun-unfinished: those that change things and have no undo.
import { describe, expect, it } from 'vitest';
import type { JournalEvent } from '../../../src/runner/journal-chain.js';
import { unfinishedChanges } from '../../../src/runner/resume.js';

const ts = '2026-12-06T07:00:00.000Z';
const started = (
  address: string,
  extra: { mutating?: boolean; undo?: boolean } = {},
  host = 'a',
): JournalEvent => ({
  type: 'step_started',
  address,
  title: `step ${address}`,
  stepType: 'shell',
  host,
  attempt: 1,
  ts,
  ...extra,
});
const finished = (address: string, host = 'a'): JournalEvent => ({
  type: 'step_finished',
  address,
  title: `step ${address}`,
  stepType: 'shell',
  host,
  status: 'failed',
  durationMs: 1,
  ts,
});

describe('unfinishedChanges', () => {
  it('names a changing step without undo that started and never finished, per host', () => {
    expect(
      unfinishedChanges([
        started('p0.steps.0', { mutating: true, undo: false }),
        finished('p0.steps.0'),
        started('p0.steps.1', { mutating: true, undo: false }, 'a'),
        started('p0.steps.1', { mutating: true, undo: false }, 'b'),
        finished('p0.steps.1', 'b'),
      ]),
    ).toEqual([`a: "step p0.steps.1" (p0.steps.1), started ${ts}`]);
  });

  it('leaves out read-only steps, steps with an undo, and steps a later attempt finished', () => {
    expect(
      unfinishedChanges([
        started('p0.steps.0', { mutating: false, undo: false }),
        started('p0.steps.1', { mutating: true, undo: true }),
        started('p0.steps.2', { mutating: true, undo: false }),
        started('p0.steps.2', { mutating: true, undo: false }),
        finished('p0.steps.2'),
      ]),
    ).toEqual([]);
  });

  it('counts a step_started that does not say as changing with no undo', () => {
    expect(unfinishedChanges([started('p0.steps.0')])).toHaveLength(1);
  });
});

// The append-only journal of a run: one JSON event per line, flushed to disk before going on.
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { redactValue } from '../util/secret.js';
import type { RunEvent } from './events.js';

/** Where runs live: `.pgrunbook/runs/<run-id>/` under the working directory. */
export function runDir(runId: string, base = process.cwd()): string {
  return join(base, '.pgrunbook', 'runs', runId);
}

/**
 * Group commit. Before anything acts on a host (a step or an undo starts) every state change
 * written so far must be on disk, so that resume after a power loss never mistakes done for not
 * done. Progress lines (a step started, its output) need no fsync of their own: losing them
 * loses no state. This costs one fsync per lockstep round instead of one per event (~600 for
 * 10 hosts × 20 steps).
 */
const BARRIERS = new Set<RunEvent['type']>([
  'step_started',
  'undo_started',
  'unwind_started',
  'run_finished',
]);
const PROGRESS = new Set<RunEvent['type']>(['step_started', 'step_output', 'batch_started', 'play_started']);

/** Appends events to `journal.jsonl`: every event written at once, fsync'd before the next action. */
export class Journal {
  readonly #fd: number;
  #dirty = false;
  constructor(readonly path: string) {
    mkdirSync(join(path, '..'), { recursive: true });
    this.#fd = openSync(path, 'a', 0o600);
  }
  write(e: RunEvent & { ts: string }): void {
    if (BARRIERS.has(e.type)) this.sync();
    // writeSync hands the line to the kernel at once: a crash of this process loses nothing.
    writeSync(this.#fd, `${JSON.stringify(redactValue(e))}\n`);
    if (!PROGRESS.has(e.type)) this.#dirty = true;
    if (e.type === 'run_finished') this.sync();
  }
  /** Forces written events to disk (power loss). */
  sync(): void {
    if (!this.#dirty) return;
    fsyncSync(this.#fd);
    this.#dirty = false;
  }
  close(): void {
    this.sync();
    closeSync(this.#fd);
  }
}

/** Reads a journal back; a torn last line (crash mid-write) is ignored. */
export function readJournal(path: string): (RunEvent & { ts: string })[] {
  const out: (RunEvent & { ts: string })[] = [];
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    try {
      out.push(JSON.parse(line));
    } catch {
      // only the last line can be torn
    }
  }
  return out;
}

/** A new run id: sortable by time, unique enough for one operator's machine. */
export function newRunId(): string {
  const t = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-');
  return `${t}-${Math.random().toString(36).slice(2, 6)}`;
}

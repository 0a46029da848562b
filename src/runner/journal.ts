// The append-only journal of a run: one JSON event per line, flushed to disk before going on.
import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { redactValue } from '../util/secret.js';
import type { RunEvent } from './events.js';

/** Where runs live: `.pgrunbook/runs/<run-id>/` under the working directory. */
export function runDir(runId: string, base = process.cwd()): string {
  return join(base, '.pgrunbook', 'runs', runId);
}

/** Appends events to `journal.jsonl`, fsync'd per event so a crash loses nothing written. */
export class Journal {
  readonly #fd: number;
  constructor(readonly path: string) {
    mkdirSync(join(path, '..'), { recursive: true });
    this.#fd = openSync(path, 'a', 0o600);
  }
  write(e: RunEvent & { ts: string }): void {
    writeSync(this.#fd, `${JSON.stringify(redactValue(e))}\n`);
    fsyncSync(this.#fd);
  }
  close(): void {
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

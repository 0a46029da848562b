// The undo stack: what a run changed and how to take it back, unwound in reverse on failure.
import type { Operation } from '../steps/define.js';

/** One change that can be taken back. */
export interface UndoEntry {
  address: string;
  title: string;
  host: string;
  type: string;
  params: Record<string, unknown>;
  outputs: unknown;
  /** What the undo does, and the exact operations, for the journal and the manual remedy. */
  action: string;
  ops: Operation[];
}

/** A change that was made and cannot be undone automatically (no undo, or `undo: never`). */
export interface PermanentChange {
  address: string;
  title: string;
  host: string;
  why: string;
}

/** Undo entries in push order; `unwind` order is the reverse. */
export class UndoStack {
  readonly entries: UndoEntry[] = [];
  readonly permanent: PermanentChange[] = [];
  push(e: UndoEntry): void {
    this.entries.push(e);
  }
  /** Pops the most recent entry. */
  pop(): UndoEntry | undefined {
    return this.entries.pop();
  }
  get size(): number {
    return this.entries.length;
  }
}

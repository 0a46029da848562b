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

/** A change a later step completed (ctx.keep): never undone, named in a failed run's summary. */
export interface KeptChange {
  address: string;
  title: string;
  host: string;
  type: string;
  params: Record<string, unknown>;
  outputs: unknown;
  why: string;
}

/** Undo entries in push order; `unwind` order is the reverse. */
export class UndoStack {
  readonly entries: UndoEntry[] = [];
  readonly permanent: PermanentChange[] = [];
  readonly kept: KeptChange[] = [];
  push(e: UndoEntry): void {
    this.entries.push(e);
  }
  /** Pops the most recent entry. */
  pop(): UndoEntry | undefined {
    return this.entries.pop();
  }
  /**
   * Takes off the stack the entries on `host` that registered one of `values`, or were given one
   * as a top-level parameter; returns them. Values compare by content (key order aside).
   */
  takeFor(host: string, values: unknown[]): UndoEntry[] {
    // Only records: a bare string or number would match unrelated steps' parameters.
    const wanted = new Set(values.filter((v) => v !== null && typeof v === 'object').map(canonical));
    const hit = (e: UndoEntry) =>
      e.host === host &&
      (wanted.has(canonical(e.outputs)) || Object.values(e.params).some((v) => wanted.has(canonical(v))));
    const taken = this.entries.filter(hit);
    const left = this.entries.filter((e) => !hit(e));
    this.entries.splice(0, this.entries.length, ...left);
    return taken;
  }
  get size(): number {
    return this.entries.length;
  }
}

/** JSON with object keys sorted: equal content, equal text. */
function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) =>
    x && typeof x === 'object' && !Array.isArray(x)
      ? Object.fromEntries(Object.entries(x as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)))
      : x,
  );
}

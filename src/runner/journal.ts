// The append-only journal of a run: one JSON event per line, chained by checksums (journal-chain.ts),
// flushed to disk before going on.
import {
  closeSync,
  existsSync,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { redactValue } from '../util/secret.js';
import type { RunEvent } from './events.js';
import {
  chainSeed,
  JournalError,
  type JournalEvent,
  sealLine,
  type VerifiedJournal,
  verifyJournal,
} from './journal-chain.js';

export { JournalError } from './journal-chain.js';

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

/**
 * Appends events to `journal.jsonl` of run `runId` (its directory's name): every event written at
 * once, fsync'd before the next action. Appending to an existing journal (resume) first verifies it.
 */
export class Journal {
  readonly #fd: number;
  readonly #head: string;
  #dirty = false;
  /** checksum of the last line written, and how many lines there are */
  #prev: string;
  #lines: number;
  constructor(
    readonly path: string,
    runId = basename(dirname(path)),
  ) {
    mkdirSync(dirname(path), { recursive: true });
    this.#head = headPath(path);
    const existing = existsSync(path) ? readVerifiedJournal(path, runId) : undefined;
    this.#prev = existing?.head ?? chainSeed(runId);
    this.#lines = existing?.hashes.length ?? 0;
    this.#fd = openSync(path, 'a', 0o600);
    if (!existing) this.#writeHead();
  }
  write(e: RunEvent & { ts: string }): void {
    if (BARRIERS.has(e.type)) this.sync();
    const { line, hash } = sealLine(this.#prev, JSON.stringify(redactValue(e)));
    // writeSync hands the line to the kernel at once: a crash of this process loses nothing.
    const bytes = Buffer.from(`${line}\n`);
    const n = writeSync(this.#fd, bytes);
    // A full disk can take part of a line: nothing may follow it (resume will name the torn line).
    if (n !== bytes.length) throw new Error(`short write (${n} of ${bytes.length} bytes)`);
    this.#prev = hash;
    this.#lines++;
    if (!PROGRESS.has(e.type)) this.#dirty = true;
    // An artifact is on disk before the step creates it: a kill -9 right after still names it.
    if (e.type === 'run_finished' || e.type === 'artifact') this.sync();
  }
  /** Forces written events to disk (power loss), then records how far the journal is durable. */
  sync(): void {
    if (!this.#dirty) return;
    fsyncSync(this.#fd);
    this.#dirty = false;
    this.#writeHead();
  }
  /**
   * `journal.jsonl.head`: the line count and last checksum known to be on disk, so a journal cut at
   * a line boundary (which the chain alone cannot see) is refused. Written only after an fsync, and
   * not fsync'd itself: after a power loss it may lag behind the journal, never run ahead of it.
   */
  #writeHead(): void {
    const tmp = `${this.#head}.tmp`;
    writeFileSync(tmp, `${this.#lines} ${this.#prev}\n`, { mode: 0o600 });
    renameSync(tmp, this.#head);
  }
  close(): void {
    this.sync();
    closeSync(this.#fd);
  }
}

/** Reads a journal back, verified (see readVerifiedJournal): its events in order. */
export function readJournal(path: string, runId = basename(dirname(path))): JournalEvent[] {
  return readVerifiedJournal(path, runId).events;
}

/**
 * Reads the journal of run `runId` and checks it: a regular file, every line sealed in the chain of
 * this run, at least as long as its head file says was on disk. Throws a JournalError saying what is
 * wrong and where; never trusts a part of a damaged journal.
 */
export function readVerifiedJournal(path: string, runId = basename(dirname(path))): VerifiedJournal {
  const kind = fileKind(path);
  if (kind !== 'file') throw new JournalError(`${path}: the journal is not a regular file (it is ${kind})`);
  const journal = verifyJournal(readText(path), runId, path);
  const head = headPath(path);
  const headKind = fileKind(head);
  if (headKind !== 'file')
    throw new JournalError(
      `${head}: ${headKind === 'missing' ? 'missing' : `not a regular file (it is ${headKind})`}: ` +
        'without it a journal cut at a line boundary cannot be told from a whole one. resume refuses it.',
    );
  const m = /^(\d{1,12}) ([0-9a-f]{64})\n$/.exec(readText(head));
  if (!m)
    throw new JournalError(`${head}: damaged (expected "<lines> <sha256>"): resume refuses the journal`);
  const lines = Number(m[1]);
  const at = lines === 0 ? chainSeed(runId) : journal.hashes[lines - 1];
  if (lines > journal.hashes.length)
    throw new JournalError(
      `${path}: the journal was cut: it has ${journal.hashes.length} lines, but ${lines} were on disk (${basename(head)}). ` +
        'resume trusts nothing in a damaged journal: check the hosts by hand against the steps of this run, then start a new run.',
    );
  if (at !== m[2])
    throw new JournalError(
      `${path}:${lines}: the journal does not match ${basename(head)} at line ${lines}: it was rewritten or replaced. ` +
        'resume trusts nothing in a damaged journal: check the hosts by hand against the steps of this run, then start a new run.',
    );
  return journal;
}

function readText(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new JournalError(`${path}: cannot be read: ${(err as Error).message}`);
  }
}

function headPath(journalPath: string): string {
  return `${journalPath}.head`;
}

function fileKind(path: string): string {
  try {
    const st = lstatSync(path);
    if (st.isFile()) return 'file';
    if (st.isDirectory()) return 'a directory';
    if (st.isSymbolicLink()) return 'a symbolic link';
    if (st.isFIFO()) return 'a FIFO';
    return 'a special file';
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'missing';
    throw new JournalError(`${path}: cannot be read: ${(err as Error).message}`);
  }
}

/** Whether `id` can name a run: an allowlist, since it becomes a directory name under `.pgrunbook/runs`. */
export function isRunId(id: string): boolean {
  return /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/.test(id) && !id.includes('..');
}

/** A new run id: sortable by time, unique enough for one operator's machine. */
export function newRunId(): string {
  const t = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '').replace('T', '-');
  return `${t}-${Math.random().toString(36).slice(2, 6)}`;
}

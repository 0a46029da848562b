// The journal's line format: each line is a JSON event with a checksum chained to the line before,
// the chain seeded by the run id, so a cut, edited, reordered or copied journal cannot pass for one.
import { createHash } from 'node:crypto';
import { PgrunbookError } from '../errors.js';
import type { RunEvent } from './events.js';

/** The format a journal is written in; part of the chain's seed, so another format never verifies. */
export const JOURNAL_FORMAT = 'pgrunbook-journal/2';

/** A journal that is not what its run wrote: resume and every reader refuse it (exit 2). */
export class JournalError extends PgrunbookError {
  override name = 'JournalError';
}

/** An event as the journal holds it: stamped with its time. */
export type JournalEvent = RunEvent & { ts: string };

/** The checksum line 0 "had": ties the whole chain to one run id and one format. */
export function chainSeed(runId: string): string {
  return sha256(`${JOURNAL_FORMAT}\n${runId}`);
}

/** The checksum of a line: over the previous line's checksum and this line's JSON without it. */
export function chainHash(prev: string, payload: string): string {
  return sha256(`${prev}\n${payload}`);
}

/** One journal line (without its newline) for `payload` (a JSON object), sealed after `prev`. */
export function sealLine(prev: string, payload: string): { line: string; hash: string } {
  if (!payload.startsWith('{') || !payload.endsWith('}') || payload === '{}')
    throw new Error(`journal payload must be a non-empty JSON object: ${payload.slice(0, 40)}`);
  const hash = chainHash(prev, payload);
  return { line: `${payload.slice(0, -1)},"chain":"${hash}"}`, hash };
}

/** A journal checked line by line: its events, and where its chain ends (for appending). */
export interface VerifiedJournal {
  events: JournalEvent[];
  /** checksum of the last line (the seed when empty) */
  head: string;
  /** checksum of each line, in order */
  hashes: string[];
}

const SEALED = /^(\{.*),"chain":"([0-9a-f]{64})"\}$/s;

/**
 * Checks every line of `text` (the journal of run `runId`, read from `file`) against the chain and
 * returns its events; throws a JournalError naming the first damaged line and what is wrong.
 */
export function verifyJournal(text: string, runId: string, file: string): VerifiedJournal {
  const events: JournalEvent[] = [];
  const hashes: string[] = [];
  let prev = chainSeed(runId);
  const parts = text.split('\n');
  const tail = parts.pop() ?? ''; // after the last newline: '' unless the file was cut mid-line
  let offset = 0;
  const fail = (n: number, what: string): never => {
    throw new JournalError(
      `${file}:${n}: the journal is damaged at line ${n} (byte ${offset}): ${what}.\n` +
        'resume trusts nothing in a damaged journal: check the hosts by hand against the steps of this run, then start a new run.',
    );
  };
  for (let i = 0; i < parts.length; i++) {
    const n = i + 1;
    const line = parts[i]!;
    const m = SEALED.exec(line);
    if (!m) {
      if (n === 1 && looksLikeOldEvent(line))
        throw new JournalError(
          `${file}:1: this journal has no checksums: it was written by a pgrunbook older than journal format ${JOURNAL_FORMAT}, ` +
            'which resume cannot trust. Check the hosts by hand against the steps of this run, then start a new run.',
        );
      fail(n, `it is not a journal line (no checksum): ${preview(line)}`);
    }
    const payload = `${m![1]}}`;
    if (chainHash(prev, payload) !== m![2]) {
      if (n === 1) firstLineMismatch(payload, m![2]!, runId, file);
      fail(
        n,
        `its checksum does not follow line ${n - 1}: lines were changed, removed, inserted or reordered`,
      );
    }
    const e = parse(payload);
    if (!e) fail(n, `its content is not an event: ${preview(line)}`);
    events.push(e!);
    prev = m![2]!;
    hashes.push(prev);
    offset += Buffer.byteLength(line) + 1;
  }
  if (tail !== '')
    fail(
      parts.length + 1,
      `it ends without an end of line (${Buffer.byteLength(tail)} bytes): the journal was cut in the middle of a line`,
    );
  return { events, head: prev, hashes };
}

/** Line 1 is sealed but not for this run: a journal copied from another run, or a forged one. */
function firstLineMismatch(payload: string, hash: string, runId: string, file: string): never {
  const e = parse(payload);
  const other = e?.type === 'run_started' && typeof e.runId === 'string' ? e.runId : undefined;
  if (other !== undefined && other !== runId && chainHash(chainSeed(other), payload) === hash) {
    throw new JournalError(
      `${file}:1: this journal belongs to run ${JSON.stringify(other)}, not to run ${runId} (its directory): ` +
        'it was copied or moved from another run. resume refuses it; resume that run under its own id.',
    );
  }
  throw new JournalError(
    `${file}:1: the journal is damaged at line 1 (byte 0): its checksum does not start a journal of run ${runId}.\n` +
      'resume trusts nothing in a damaged journal: check the hosts by hand against the steps of this run, then start a new run.',
  );
}

function parse(payload: string): JournalEvent | undefined {
  try {
    const v: unknown = JSON.parse(payload);
    if (v && typeof v === 'object' && !Array.isArray(v) && typeof (v as { type?: unknown }).type === 'string')
      return v as JournalEvent;
  } catch {
    // reported by the caller with the line's place
  }
  return undefined;
}

function looksLikeOldEvent(line: string): boolean {
  const e = parse(line);
  return e?.type === 'run_started';
}

/** A short, printable excerpt of a damaged line: never more than 60 characters, control bytes escaped. */
function preview(line: string): string {
  return JSON.stringify(line.length > 60 ? `${line.slice(0, 60)}…` : line);
}

function sha256(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

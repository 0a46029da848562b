// Replaying a run's journal for `resume`: which steps of earlier attempts completed and still
// stand, and whether resuming on top of them is safe.
import { PgrunbookError } from '../errors.js';
import { describeArtifact, partialArtifacts } from './artifacts.js';
import { readJournal } from './journal.js';
import type { JournalEvent } from './journal-chain.js';
import { runCommands } from './next-command.js';

/** A step that completed in an earlier attempt of this run and still stands (for resume). */
export interface DoneStep {
  outputs: unknown;
  names: string[];
  facts: boolean;
}

/** Steps of an earlier attempt that completed and were not undone. */
export function completedSteps(
  journalPath: string,
  sha256: string,
  inventorySha: string,
): Map<string, DoneStep> {
  const events = readJournal(journalPath);
  const start = events.find((e) => e.type === 'run_started');
  if (start?.type === 'run_started' && start.playbookSha256 !== sha256) {
    throw new PgrunbookError(
      `the playbook ${start.playbook} changed since this run started (sha256 ${start.playbookSha256.slice(0, 12)} → ${sha256.slice(0, 12)}); ` +
        'resume refuses to mix two versions of a playbook. Start a new run instead.',
    );
  }
  // An attempt that never finished (kill -9, a crash, power loss) may have left changes its
  // undo never reached: resuming on top of them would forget them.
  const attempts = events.filter((e) => e.type === 'run_started').length;
  const finishedAttempts = events.filter((e) => e.type === 'run_finished').length;
  if (finishedAttempts < attempts) {
    const pushed = new Map<string, string>();
    for (const e of events) {
      if (e.type === 'undo_pushed')
        pushed.set(`${e.address}@${e.host}`, `${e.host}: "${e.title}" — to undo: ${e.action}`);
      if (e.type === 'undo_finished' && e.ok) pushed.delete(`${e.address}@${e.host}`);
      // Kept on purpose (a completed backup's snapshot): nothing to undo by hand.
      if (e.type === 'undo_kept') pushed.delete(`${e.address}@${e.host}`);
    }
    const left = [...pushed.values()];
    if (left.length) {
      // Half-made paths (an orphan copy) are named too, with the command that removes them.
      const partial = partialArtifacts(events).map(
        (a) => `${describeArtifact(a)}, partial — to remove: ${a.remove.split('\n').join('; ')}`,
      );
      // The exact command to start again, with the run's own playbook, inventory, -e and --limit.
      const again =
        start?.type === 'run_started'
          ? runCommands({
              runId: '',
              playbook: start.playbook,
              inventory: start.inventory,
              extraVars: start.extraVars,
              masked: start.maskedExtraVars,
              limit: start.limit,
              savedPlan: start.savedPlan,
            }).rerun
          : 'pgrunbook run …';
      throw new PgrunbookError(
        `the last attempt of this run did not finish (no run_finished in its journal): its changes were not unwound.\n  ${[...partial, ...left].join('\n  ')}\n` +
          `Undo these by hand (or check they are gone); resume refuses to build on them. Then start a new run:\n  ${again}`,
      );
    }
  }
  if (start?.type === 'run_started' && start.inventorySha256 && start.inventorySha256 !== inventorySha) {
    throw new PgrunbookError(
      `the inventory ${start.inventory} changed since this run started: hosts, addresses or settings may differ from the attempt that did the work. Start a new run instead.`,
    );
  }
  const done = new Map<string, DoneStep>();
  for (const e of events) {
    // Clean-up (always) and rescue steps run again on every attempt: they answer to what that
    // attempt did, and a resumed run must end with its clean-up too.
    if (e.type === 'step_finished' && /\.(always|rescue)\./.test(e.address)) continue;
    // A registered value the journal had to redact is not the value the step produced: re-run it.
    if (e.type === 'step_finished' && JSON.stringify(e.outputs ?? null).includes('***')) continue;
    if (e.type === 'step_finished' && (e.status === 'ok' || e.status === 'already_done')) {
      done.set(`${e.address}@${e.host}`, {
        outputs: e.outputs,
        names: e.names ?? [],
        facts: e.facts === true,
      });
    }
    if (e.type === 'undo_finished' && e.ok) done.delete(`${e.address}@${e.host}`);
  }
  return done;
}

/**
 * Steps that changed things without an undo, started and never finished in any attempt (the
 * runner was killed mid-step): `host: "title" (address), started <ts>`. Re-running one could do its
 * change twice, so resume asks for --rerun-unfinished. A step_started without these fields (a
 * journal line we did not write ourselves cannot get here) counts as changing with no undo.
 */
export function unfinishedChanges(events: JournalEvent[]): string[] {
  const open = new Map<string, string>();
  for (const e of events) {
    const key = 'address' in e && 'host' in e ? `${e.address}@${e.host}` : undefined;
    if (e.type === 'step_started') {
      if (e.mutating !== false && e.undo !== true)
        open.set(key!, `${e.host}: "${e.title}" (${e.address}), started ${e.ts}`);
      else open.delete(key!);
    }
    if (e.type === 'step_finished') open.delete(key!);
  }
  return [...open.values()];
}

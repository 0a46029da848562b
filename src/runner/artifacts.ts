// Partial artifacts: paths a step started creating (a copy's destination) and never completed.
// The step names them before it writes (ctx.artifact, journaled and fsync'd); the runner removes
// them when the step fails or is stopped, and `resume` removes those a killed runner left.
import { commandLine, type Transport } from '../connections/transport.js';
import { StepFailure } from '../errors.js';
import type { Artifact } from '../steps/define.js';
import type { JournalEvent } from './journal-chain.js';

/** An artifact of one step on one host, as the journal records it. */
export interface PartialArtifact extends Artifact {
  address: string;
  title: string;
  host: string;
}

/** Runs the artifact's removal script; throws with its stderr when the paths could not be removed. */
export async function removeArtifact(
  t: Transport,
  a: Artifact,
  become: 'sudo' | undefined,
  signal: AbortSignal,
): Promise<void> {
  const r = await t.exec(commandLine({ script: a.remove }, become), { signal });
  if (r.exitCode !== 0)
    throw new StepFailure(
      `removing ${a.paths.join(', ')} failed (exit ${r.exitCode ?? r.signal}): ${r.stderr.trim().split('\n').slice(-4).join('\n')}`,
    );
}

/** One line naming the artifact's paths, for summaries and resume's messages. */
export function describeArtifact(a: PartialArtifact): string {
  return `${a.host}: ${a.paths.join(', ')} (left by "${a.title}", ${a.address})`;
}

/**
 * Artifacts in a journal that are still partial: named by a step that has not succeeded since,
 * and not removed. A step that succeeded made them whole (its undo owns them).
 */
export function partialArtifacts(events: JournalEvent[]): PartialArtifact[] {
  const open = new Map<string, PartialArtifact[]>();
  for (const e of events) {
    if (e.type !== 'artifact' && e.type !== 'artifact_removed' && e.type !== 'step_finished') continue;
    const key = `${e.address}@${e.host}`;
    if (e.type === 'artifact')
      open.set(key, [
        ...(open.get(key) ?? []),
        { address: e.address, title: e.title, host: e.host, paths: e.paths, remove: e.remove },
      ]);
    else if (e.type === 'step_finished') {
      if (e.status === 'ok') open.delete(key);
    } else if (e.type === 'artifact_removed' && e.ok) {
      const left = (open.get(key) ?? []).filter((a) => a.paths.join('\0') !== e.paths.join('\0'));
      if (left.length) open.set(key, left);
      else open.delete(key);
    }
  }
  return [...open.values()].flat();
}

// Plain timestamped lines for logs and non-TTY output; every event passes the secret filter first.

import type { RunEvent, Subscriber } from '../runner/events.js';
import { redactValue } from '../util/secret.js';

const time = (ts: string) => ts.slice(11, 19);

/** Formats an event as zero or more lines. */
export function plainLines(e: RunEvent & { ts: string }): string[] {
  const t = time(e.ts);
  switch (e.type) {
    case 'run_started':
      return [
        `${t} run ${e.runId}${e.resumed ? ' (resumed)' : ''}: ${e.playbook} with ${e.inventory}`,
        ...(e.savedPlan
          ? [`${t} saved plan ${e.savedPlan}: ${e.planDigest} (unchanged since it was made)`]
          : []),
        ...(e.locks ?? []).map((l) => `${t} ${l}`),
      ];
    case 'play_started':
      return [`${t} PLAY ${e.name} on ${e.hosts.join(', ') || '(no hosts)'}`];
    case 'groups_resolved':
      return e.clusters.map((c) => `${t} ${c}`);
    case 'batch_started':
      return e.of > 1 ? [`${t} batch ${e.batch + 1} of ${e.of}: ${e.hosts.join(', ')}`] : [];
    case 'step_started':
      return [`${t} ${e.host}: ▶ ${e.title}${e.attempt > 1 ? ` (attempt ${e.attempt})` : ''}`];
    case 'step_output':
      return e.text
        .replace(/\n$/, '')
        .split('\n')
        .map((l) => `${t} ${e.host}: │ ${l}`);
    case 'step_finished': {
      const secs = (e.durationMs / 1000).toFixed(2);
      const err = e.error ? `: ${e.error}` : '';
      return [`${t} ${e.host}: ${e.status.toUpperCase().replace('_', ' ')} ${e.title} (${secs}s)${err}`];
    }
    case 'approval':
      return [`${t} approval for "${e.title}": ${e.approved ? 'approved' : 'DECLINED'} (${e.by})`];
    case 'point_of_no_return':
      return [
        `${t} POINT OF NO RETURN at "${e.title}": ${e.dropped} earlier change(s) will not be undone automatically${e.guardsReleased ? ` (guards standing down: ${e.guardsReleased.join(', ')})` : ''}${e.recovery ? `; recovery from here: ${e.recovery}` : ''}`,
      ];
    case 'artifact':
      return [`${t} ${e.host}: creating ${e.paths.join(', ')} (removed if "${e.title}" does not succeed)`];
    case 'artifact_removed':
      return [
        `${t} ${e.host}: partial ${e.paths.join(', ')} ${e.ok ? 'removed' : `NOT REMOVED: ${e.error}`}`,
      ];
    case 'undo_pushed':
      return [`${t} ${e.host}: undo registered for "${e.title}": ${e.action}`];
    case 'undo_kept':
      // A step without an undo of its own (the labels) has nothing that "will not run".
      return [
        /^none\b/.test(e.action)
          ? `${t} ${e.host}: "${e.title}" kept: ${e.why}`
          : `${t} ${e.host}: "${e.title}" kept, its undo (${e.action}) will not run: ${e.why}`,
      ];
    case 'interrupted':
      return [`${t} INTERRUPTED by ${e.signal}: stopping the current step, then clean-up and undo`];
    case 'connected':
      return e.trust === 'accepted-unknown'
        ? [
            `${t} ${e.host}: ACCEPTED UNKNOWN host key ${e.keyType} ${e.fingerprint} (accept_unknown_host_key)`,
          ]
        : [];
    case 'run_aborted':
      return [`${t} RUN ABORTED: ${e.reason}`];
    case 'unwind_started':
      return e.entries ? [`${t} unwinding ${e.entries} change(s), most recent first`] : [];
    case 'undo_started':
      return [`${t} ${e.host}: ↶ undo "${e.title}": ${e.action}`];
    case 'undo_finished':
      return [`${t} ${e.host}: undo "${e.title}" ${e.ok ? 'done' : `FAILED: ${e.error}`}`];
    case 'run_finished':
      return [`${t} run ${e.status.toUpperCase()} (exit ${e.exitCode})`, ...e.summary.map((s) => `  ${s}`)];
  }
}

/** A subscriber writing plain lines to a stream. */
export function plainReporter(write: (s: string) => void): Subscriber {
  return (e) => {
    // Values are masked before they are formatted; structure (paths, hosts) is kept as written.
    const lines = plainLines(redactValue(e) as typeof e);
    if (lines.length) write(`${lines.join('\n')}\n`);
  };
}

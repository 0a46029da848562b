// Everything a run reports, as a closed union; renderers and the journal subscribe to these.

/** How a step ended on one host. */
export type StepStatus =
  /** applied successfully */
  | 'ok'
  /** failed (and was not ignored) */
  | 'failed'
  /** failed, but ignore_errors was set */
  | 'ignored'
  /** `when` was false */
  | 'skipped'
  /** done by an earlier attempt of this run (resume) */
  | 'already_done';

/** How a whole run ended. */
export type RunStatus =
  /** every step succeeded */
  | 'ok'
  /** a step failed; everything undoable was undone */
  | 'failed'
  /** SIGINT/SIGTERM; everything undoable was undone */
  | 'interrupted'
  /** an undo failed: the hosts need manual attention */
  | 'compensation_failed';

export type RunEvent =
  | {
      type: 'run_started';
      runId: string;
      playbook: string;
      playbookSha256: string;
      inventorySha256?: string;
      inventory: string;
      extraVars: Record<string, unknown>;
      /**
       * -e names whose value held a secret and is masked in this journal: `resume` cannot read them
       * back, and asks for them again (`-e NAME=…`) instead of running with `***`.
       */
      maskedExtraVars?: string[];
      limit?: string;
      resumed: boolean;
      /** the digest of the plan the run executes (a saved plan's, with `run --plan`) */
      planDigest?: string;
      /** the run executes a saved plan (`run --plan FILE`) */
      savedPlan?: string;
      /** the locks the run holds (one run at a time), one line each */
      locks?: string[];
    }
  /** `batches`: the hosts split by `serial`, in the order they run */
  | { type: 'play_started'; play: number; name: string; hosts: string[]; batches?: string[][] }
  /** patroni_leader / patroni_replicas as the REST API described them (run start, each play) */
  | { type: 'groups_resolved'; groups: Record<string, string[]>; clusters: string[] }
  | { type: 'batch_started'; play: number; batch: number; of: number; hosts: string[] }
  | {
      type: 'step_started';
      address: string;
      title: string;
      stepType: string;
      host: string;
      attempt: number;
      /** the step changes something on the host (resume asks before running it again if it was killed) */
      mutating?: boolean;
      /** it declares an undo */
      undo?: boolean;
    }
  | { type: 'step_output'; address: string; host: string; stream: 'stdout' | 'stderr' | 'log'; text: string }
  | {
      type: 'step_finished';
      address: string;
      title: string;
      stepType: string;
      host: string;
      status: StepStatus;
      durationMs: number;
      outputs?: unknown;
      names?: string[];
      facts?: boolean;
      error?: string;
      /** `render`: `when` or a parameter could not be evaluated (a value only the run knew) */
      stage?: 'render';
    }
  | { type: 'approval'; address: string; title: string; approved: boolean; by: 'prompt' | '--yes' }
  | {
      type: 'point_of_no_return';
      address: string;
      title: string;
      dropped: number;
      recovery?: string;
      /** guards that stood down with the undo stack (their change is left to the recovery) */
      guardsReleased?: string[];
    }
  | { type: 'undo_pushed'; address: string; title: string; host: string; action: string }
  /**
   * a change taken off the undo stack (or never put on it) because a later step completed what it
   * built (`by`: a backup's labels over its snapshot): whatever fails from here, it stays
   */
  | {
      type: 'undo_kept';
      address: string;
      title: string;
      host: string;
      /** the undo that will not run ('none' when the step declares none) */
      action: string;
      why: string;
      by: string;
    }
  /** a step is about to create these paths (fsync'd before it does): partial if it never succeeds */
  | { type: 'artifact'; address: string; title: string; host: string; paths: string[]; remove: string }
  /** the partial artifacts of a step that did not succeed, removed (or not: `error`) */
  | {
      type: 'artifact_removed';
      address: string;
      title: string;
      host: string;
      paths: string[];
      ok: boolean;
      error?: string;
    }
  | { type: 'interrupted'; signal: string }
  | { type: 'run_aborted'; reason: string }
  | {
      type: 'connected';
      host: string;
      fingerprint: string;
      keyType: string;
      trust: string;
      reopened: boolean;
    }
  | { type: 'unwind_started'; entries: number }
  | { type: 'undo_started'; address: string; title: string; host: string; action: string }
  | {
      type: 'undo_finished';
      address: string;
      title: string;
      host: string;
      ok: boolean;
      error?: string;
      durationMs: number;
    }
  | {
      type: 'run_finished';
      status: RunStatus;
      exitCode: number;
      /** the outcome, line by line; after a failure its last line is the next command */
      summary: string[];
      /** that next command alone (resume, the recovery, or a fresh run); absent after success */
      next?: string;
    };

/** Anything that wants events: a renderer, the journal, a test. */
export type Subscriber = (e: RunEvent & { ts: string }) => void;

/** Fan-out of events to subscribers, stamping each with the time. */
export class EventBus {
  readonly #subs: { s: Subscriber; name: string; failed: boolean }[] = [];
  /** Told once per subscriber that throws (a full disk under the journal, a closed terminal). */
  onSubscriberError: (name: string, err: unknown) => void = () => {};
  subscribe(s: Subscriber, name = 'subscriber'): void {
    this.#subs.push({ s, name, failed: false });
  }
  /** Delivers to every subscriber; one that throws never changes the run's course by itself. */
  emit(e: RunEvent): void {
    const stamped = { ts: new Date().toISOString(), ...e };
    for (const sub of this.#subs) {
      try {
        sub.s(stamped);
      } catch (err) {
        if (!sub.failed) {
          sub.failed = true;
          this.onSubscriberError(sub.name, err);
        }
      }
    }
  }
}

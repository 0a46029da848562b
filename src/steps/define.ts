// The contract between the engine and a step type: schema, plan text, apply and undo side by side.
import type { Static, TObject, TSchema } from '@sinclair/typebox';
import type { PgFacts, PgSession } from '../connections/pg.js';
import type { Transport } from '../connections/transport.js';
import type { InventoryHost } from '../inventory/inventory.js';

/** One thing a step will do, shown verbatim in the plan. */
export type Operation =
  /** a sh command line, exactly as it will be sent to the host */
  | { kind: 'command'; line: string; stdin?: string }
  /** a SQL statement with its bound parameters */
  | { kind: 'sql'; sql: string; params?: unknown[] }
  /** an HTTP request */
  | { kind: 'http'; method: string; url: string; body?: unknown }
  /** a wait for a condition, with its limit */
  | { kind: 'wait'; what: string; timeoutSeconds: number }
  /** anything else worth a line (a prompt, a fact being set) */
  | { kind: 'note'; text: string };

/** What a step will do on one host: for the plan, computed without side effects. */
export interface StepPlan {
  action: string;
  ops: Operation[];
  /** The undo it will register once it succeeds; absent when the step changes nothing. */
  undo?: { action: string; ops: Operation[] };
  /** Set when the step will do nothing, with the reason. */
  noop?: string;
}

/** Read-only view of a host for plan(): settings and facts known before anything runs. */
export interface PlanContext {
  host: InventoryHost;
  /** Facts learned by `plan --check` or at run start; absent in an offline plan. */
  facts: { pg?: PgFacts };
  /** Top-level params whose value is only known after apply (plan time only; empty when running). */
  unknown: ReadonlySet<string>;
  /** Evaluates a bare expression in the step's scope (may yield Unknown in a plan). */
  evaluate(expr: string): unknown;
  /** Another inventory host's settings (an upgrade's leader rsyncs to its replicas' addresses). */
  peer(name: string): InventoryHost | undefined;
}

/** What preview() may use at `plan --check`: the host's transport for read-only commands. */
export interface PreviewContext extends PlanContext {
  transport(): Promise<Transport>;
  signal: AbortSignal;
}

/** What a step would change, learned read-only by `plan --check` (e.g. chef-client --why-run). */
export interface StepPreview {
  /** one line, e.g. "2/31 resources would be updated" */
  summary: string;
  /** the details a reviewer reads (resources that would change), shown under the step */
  lines: string[];
}

/**
 * What a step needs on its host before the run starts, read from its rendered params at plan time
 * and checked by the preflight (`plan --check`, and `run` before its first change). `param` names
 * the parameter a need comes from: when that value is only known after apply, the need is not
 * checked, and the plan says so.
 */
export interface StepNeeds {
  /** executables the step calls: a name looked up on PATH, or an absolute path */
  binaries?: {
    name: string;
    /** the Debian package that provides it */
    package?: string;
    /** another inventory host it must be on (rsync's far side), instead of this one */
    host?: string;
    param?: string;
  }[];
  /** directories the step writes into (created when missing): the nearest existing one must be writable */
  writable?: {
    path: string;
    /** OS user the step writes as (default: the host's login, through become) */
    user?: string;
    /** room needed: `databases` is the size of the host's PostgreSQL databases (a copy of PGDATA) */
    room?: 'databases';
    param?: string;
  }[];
  /** WAL archiving must work on the host's PostgreSQL (a backup waits for its WAL in the archive) */
  archive?: boolean;
  /**
   * directories that must be the data directory of the server the host's pg: settings reach (a
   * backup's labels describe only that server): `dir`, or else the host var pgdata when set;
   * compared with data_directory after resolving symlinks, and by pg_control's system identifier
   */
  pairing?: { dir?: string; param?: string }[];
}

/** What apply() and undo() may use: connections, logging, cancellation. */
export interface ApplyContext extends PlanContext {
  transport(): Promise<Transport>;
  pg(): Promise<PgSession>;
  /** Dedicated sessions that outlive a step (a backup's), owned and watched by the runner. */
  sessions: {
    open(name: string, lostMessage: string, setup: string[]): Promise<PgSession>;
    get(name: string): PgSession | undefined;
    release(name: string): Promise<void>;
  };
  /**
   * Watchers that outlive a step and end with the run, owned by the runner (a pause's guard):
   * started on this host over the run's own connection, told the run is alive, and ended with a
   * last word. One the run did not end is told `finish` when the run ends; one that ends on its
   * own while held fails the run. Names are run-wide.
   */
  guards: {
    start(
      name: string,
      commandLine: string,
      settings: string,
      lostMessage: string,
      /**
       * `pastPointOfNoReturn`: what the guard does is safe at any point (resuming a pooler: clients
       * get answers or errors instead of waiting), so it keeps watching past the point of no
       * return, where the other guards stand down with the undo stack.
       */
      opts?: { pastPointOfNoReturn?: boolean },
    ): Promise<void>;
    /** Sends a word without ending the guard (e.g. `armed`). */
    tell(name: string, word: string): void;
    /** Ends it: `release` (nothing to guard) or `finish` (act now); its last line, if it ended in time. */
    end(name: string, word: 'release' | 'finish'): Promise<string | undefined>;
    has(name: string): boolean;
  };
  /** A line for the log and the live output (already redacted by the engine). */
  log(text: string): void;
  /** Streams command output into the log. */
  output(stream: 'stdout' | 'stderr', chunk: string): void;
  /** Asks the operator; resolves false when declined. Refused up front without a TTY or --yes. */
  prompt(question: string): Promise<string>;
  /**
   * Said right before the step's first change on the host, by steps that declare `marksChanges`:
   * a failure before it (a refused host key, a read-only check) changed nothing, and the run's
   * summary does not send the operator to check that host by hand.
   */
  changing(): void;
  /**
   * Said right before the step starts creating new paths on the host (a copy's destination),
   * after checking they did not exist: journaled first, so a failure, a signal or a kill -9
   * leaves them named. When the step does not succeed the runner runs `remove` (a sh script, with
   * the host's become) and lists them in the summary; `resume` removes them before running the
   * step again. Once the step succeeds they are its output, and its undo's to remove. A step
   * whose only change they are (a copy) need not call `changing()`: once they are removed, its
   * failure left nothing behind, and it is not reported as "state unknown".
   */
  artifact(a: Artifact): void;
  /**
   * Said by a step that completes what earlier steps built (a backup's labels and manifest over
   * its snapshot), once it is complete: the undo entries on this host of the steps that
   * registered one of `values` (or were given one as a parameter: labelling that snapshot) leave
   * the undo stack, and so does this step's own. Whatever fails later, they stay; the journal
   * (`undo_kept`) and a failed run's summary say so, with `why`.
   */
  keep(values: unknown[], why: string): void;
  signal: AbortSignal;
}

/** Paths a step creates, and the sh script that removes them (and fails if they remain). */
export interface Artifact {
  paths: string[];
  remove: string;
}

/** A step type. P and O are TypeBox schemas: the TypeScript types are inferred from them. */
export interface StepDefinition<P extends TObject = TObject, O extends TSchema = TSchema> {
  type: string;
  summary: string;
  params: P;
  outputs: O;
  /** Changes something on a host; its undo (if any) is pushed when it succeeds. */
  mutating: boolean | ((params: Static<P>) => boolean);
  /** One line for the docs: what the undo does, or why there is none. */
  undoSummary: string;
  /** Parameters holding sh scripts: templates in them are quoted for where they land. */
  shellParams?: readonly string[];
  /**
   * apply() calls `ctx.changing()` right before its first change: a failure before that is
   * reported as having changed nothing. Without it, any failure of a mutating step may have.
   */
  marksChanges?: boolean;
  /** Parameters that feed those scripts other than as arguments: their input and environment. */
  shellInputs?: { stdin?: string; env?: string };
  /**
   * Parameters naming another inventory host whose pg password the step uses (a publisher, a
   * backup's source): a literal name has its secrets read at run start with the play's hosts.
   */
  peerParams?: readonly string[];
  /** Parameters holding bare expressions, not templates (e.g. assert's `that`). */
  rawParams?: readonly string[];
  /** `type: VALUE` (a string or list) means `type: { [shorthand]: VALUE }`. */
  shorthand?: string;
  /** Outputs become variables of the host (set_fact). */
  setsFacts?: boolean;
  /**
   * Always behind an approval gate, even without `confirm:` in the playbook (a switchover, wiping
   * a cluster's DCS state): the question to ask, a template over the raw params; undefined for
   * params that change nothing (a check).
   */
  confirm?: (params: Record<string, unknown>) => string | undefined;
  /** Needs an operator at the keyboard (a prompt), so a run without a TTY needs --yes. */
  interactive?: (params: Static<P>) => boolean;
  plan(ctx: PlanContext, params: Static<P>): StepPlan;
  /** What the step needs on its host before the run starts (see StepNeeds); pure, no I/O. */
  needs?(ctx: PlanContext, params: Static<P>): StepNeeds;
  /** `plan --check` only: asks the host what apply would change, without changing anything. */
  preview?(ctx: PreviewContext, params: Static<P>): Promise<StepPreview>;
  apply(ctx: ApplyContext, params: Static<P>): Promise<Static<O>>;
  undo?(ctx: ApplyContext, params: Static<P>, outputs: Static<O>): Promise<void>;
  /**
   * What a change kept by `ctx.keep` is at the end of a failed run, read from its host (a backup's
   * manifest status and reason, and how to delete it): one line for the summary.
   */
  kept?(ctx: ApplyContext, params: Static<P>, outputs: Static<O>): Promise<string>;
  /** The undo's description once apply has run, when it depends on what apply found. */
  undoPlan?(ctx: PlanContext, params: Static<P>, outputs: Static<O>): StepPlan['undo'];
}

/** Whether a step with these params changes anything. */
export function isMutating(def: AnyStep, params: unknown): boolean {
  return typeof def.mutating === 'function' ? def.mutating(params) : def.mutating;
}

/** Declares a step type; exists so inference ties params/outputs types to the functions. */
export function defineStep<P extends TObject, O extends TSchema>(
  def: StepDefinition<P, O>,
): StepDefinition<P, O> {
  return def;
}

// biome-ignore lint/suspicious/noExplicitAny: the registry holds step types of every shape.
export type AnyStep = StepDefinition<any, any>;

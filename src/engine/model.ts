// The plan: what the engine decided a playbook means on an inventory, per play, step and host.
// Renderers (src/plan/) print it; the runner (src/runner/) executes it.
import type { PgFacts } from '../connections/pg.js';
import type { Problem } from '../errors.js';
import type { PreviewContext, StepNeeds, StepPlan, StepPreview } from '../steps/define.js';

/** One step on one host, as planned. */
export interface HostStepPlan {
  host: string;
  /** runs: will run; skipped: `when` is false; conditional: `when` needs run-time values; error: cannot be planned */
  status: 'runs' | 'skipped' | 'conditional' | 'error';
  when?: string;
  /** the step changes something on this host (its undo matters) */
  mutating?: boolean;
  plan?: StepPlan;
  /** parameters whose value only a run can know (registered outputs, facts set from them) */
  unknownParams?: string[];
  error?: string;
  /** `plan --check`: what the host says apply would change (e.g. chef-client --why-run) */
  preview?: StepPreview | { error: string };
  /** what the preflight cannot check before the run (a value known only after apply), and why */
  unchecked?: string[];
}

/** What one step needs on one host, for the preflight (see src/engine/preflight.ts). */
export interface NeedRequest {
  host: string;
  /** the step's title as planned */
  title: string;
  needs: StepNeeds;
  /** a problem located at the step in the playbook */
  problem(message: string): Problem;
}

/** A read-only preview `plan --check` runs once the plan is built (see src/runner/previews.ts). */
export interface PreviewRequest {
  host: string;
  target: HostStepPlan;
  run(ctx: Pick<PreviewContext, 'transport' | 'signal'>): Promise<StepPreview>;
}

/** A planned step: its gates and, per host it targets, what it will do. */
export interface PlanStep {
  kind: 'step';
  address: string;
  title: string;
  type: string;
  mutating: boolean;
  undoMode: 'auto' | 'never';
  confirm?: string;
  retries?: number;
  timeout?: number;
  ignoreErrors: boolean;
  /** requires_leader: Patroni is asked just before the step that the host still leads */
  requiresLeader?: boolean;
  /** downtime: true — runs while writes are stopped */
  downtime?: boolean;
  /** point_of_no_return: true, or the recovery it names */
  pointOfNoReturn?: true | string;
  /** recovery: the way back once this step has succeeded */
  recovery?: string;
  /**
   * `| raw` templates of its shell parameters, as `param: {{ … | raw }}`: values run as shell
   * code, unquoted, on purpose. Reviewers must see them; the rendered command is in each host's plan.
   */
  rawShell?: string[];
  /** every host the step targets (after `hosts:` narrowing), in order */
  hosts: HostStepPlan[];
}

/** A planned block with its rescue and always lists. */
export interface PlanBlock {
  kind: 'block';
  address: string;
  title: string;
  /** hosts the block targets (after `hosts:` narrowing) */
  hosts: string[];
  /** the block's `when`, evaluated per host when the block is reached */
  when?: string;
  /** hosts where `when` is already known to be false (the contents are not planned for them) */
  skippedHosts?: string[];
  block: PlanNode[];
  rescue: PlanNode[];
  always: PlanNode[];
}

/** A planned step or block. */
export type PlanNode = PlanStep | PlanBlock;

/** A planned play. */
export interface PlannedPlay {
  index: number;
  name: string;
  pattern: string;
  hosts: string[];
  batches: string[][];
  /** the play names a dynamic group: a run asks Patroni again before it starts (unless first) */
  dynamic: boolean;
  steps: PlanNode[];
  rescue: PlanNode[];
  always: PlanNode[];
}

/** The whole dry run: data that renderers turn into text, JSON or Markdown. */
export interface Plan {
  playbook: string;
  inventory: string;
  checked: boolean;
  /** --limit, when given */
  limit?: string;
  facts: Record<string, { pg?: PgFacts }>;
  plays: PlannedPlay[];
  /** Everything that keeps the plan from running, located in the playbook or inventory. */
  problems: Problem[];
  /**
   * sha256 of what the plan was built from (playbook, inventory, -e, --limit, the facts asked):
   * `run --plan` runs a saved plan only while this still holds (see src/engine/saved-plan.ts).
   */
  digest?: string;
  /** patroni_leader / patroni_replicas: as Patroni described them (`--check`), or still open */
  dynamicGroups?: { resolved: boolean; lines: string[]; groups?: Record<string, string[]> };
}

/** Where a planned node sits: the main list, or a block's (or play's) rescue or always list. */
export type PlanSection = 'block' | 'rescue' | 'always';

/**
 * The one walker over a plan's block/rescue/always: every planned step in execution order, with
 * the sections it sits in from the outside in.
 */
export function* planSteps(
  nodes: readonly PlanNode[],
  sections: PlanSection[] = [],
): Generator<{ step: PlanStep; sections: PlanSection[] }> {
  for (const n of nodes) {
    if (n.kind === 'step') yield { step: n, sections };
    else {
      yield* planSteps(n.block, [...sections, 'block']);
      yield* planSteps(n.rescue, [...sections, 'rescue']);
      yield* planSteps(n.always, [...sections, 'always']);
    }
  }
}

/** Every planned step of a play, its rescue and always lists included, in execution order. */
export function* playSteps(play: PlannedPlay): Generator<{ step: PlanStep; sections: PlanSection[] }> {
  yield* planSteps(play.steps);
  yield* planSteps(play.rescue, ['rescue']);
  yield* planSteps(play.always, ['always']);
}

// The playbook's envelope schemas and the typed tree validation produces.
import { type Static, Type } from '@sinclair/typebox';
import type { PathSeg, SourceDoc } from './load.js';
import type { VariableDecl } from './variables.js';

const Expr = (description: string) => Type.String({ minLength: 1, description });

/** Names every template can use without declaring them. */
export const BUILTIN_NAMES = ['host', 'run', 'vars', 'hostvars', 'groups'] as const;

/**
 * Names pgrunbook sets itself (`result` inside `until`): a step id or register, a set_fact name or
 * a play variable may not take them, or it would hide them.
 */
export const RESERVED_NAMES = ['run', 'host', 'vars', 'hostvars', 'groups', 'result'] as const;

/** Keys every step may carry besides its one step-type key. */
export const CommonSchema = Type.Object(
  {
    id: Type.Optional(
      Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$', description: 'an identifier (letters, digits, _)' }),
    ),
    name: Type.Optional(Type.String({ minLength: 1 })),
    when: Type.Optional(Expr('an expression; the step is skipped on hosts where it is false')),
    register: Type.Optional(
      Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$', description: 'an identifier (letters, digits, _)' }),
    ),
    timeout: Type.Optional(Type.Number({ exclusiveMinimum: 0, description: 'seconds' })),
    retries: Type.Optional(Type.Integer({ minimum: 0 })),
    delay: Type.Optional(Type.Number({ minimum: 0, description: 'seconds between retries' })),
    until: Type.Optional(Expr('an expression over `result`; retried until true')),
    ignore_errors: Type.Optional(Type.Boolean()),
    undo: Type.Optional(
      Type.Union([Type.Literal('auto'), Type.Literal('never')], { description: 'auto or never' }),
    ),
    hosts: Type.Optional(Type.String({ minLength: 1, description: 'a host pattern narrowing the play' })),
    confirm: Type.Optional(
      Type.Union([Type.Boolean(), Type.String({ minLength: 1 })], {
        description: 'true or a question for the operator',
      }),
    ),
    downtime: Type.Optional(
      Type.Boolean({
        description:
          'the step runs while clients cannot write (writes stopped, or held by a paused PgBouncer): the plan marks it, for the downtime estimate',
      }),
    ),
    point_of_no_return: Type.Optional(
      Type.Union([Type.Boolean(), Type.String({ minLength: 1 })], {
        description:
          'true or what to do instead (e.g. the rollback playbook). The step is behind an approval gate; once approved, what ran before it is no longer undone automatically: a later failure stops the run and reports the state',
      }),
    ),
    recovery: Type.Optional(
      Type.String({
        minLength: 1,
        description:
          "once this step has succeeded after a point of no return, what a failure should be recovered with from then on (replaces the point of no return's)",
      }),
    ),
    requires_leader: Type.Optional(
      Type.Union([Type.Boolean(), Type.Literal('if_patroni')], {
        description:
          'true, false or if_patroni. true: just before the step, ask Patroni that this host still leads, and refuse the step if not; ' +
          'if_patroni: the same on hosts with patroni settings, no check on hosts without (single servers)',
      }),
    ),
  },
  { additionalProperties: false },
);
export type Common = Static<typeof CommonSchema>;
export const COMMON_KEYS: readonly string[] = Object.keys(CommonSchema.properties);

const StepList = Type.Array(Type.Object({}, { additionalProperties: true }), {
  description: 'a list of steps',
});

/** A `block:` with optional `rescue:` and `always:`. */
export const BlockSchema = Type.Object(
  {
    block: StepList,
    rescue: Type.Optional(StepList),
    always: Type.Optional(StepList),
    name: Type.Optional(Type.String({ minLength: 1 })),
    when: Type.Optional(Expr('an expression')),
    hosts: Type.Optional(Type.String({ minLength: 1 })),
  },
  { additionalProperties: false },
);

/** One play: hosts, variables and step lists. */
export const PlaySchema = Type.Object(
  {
    name: Type.String({ minLength: 1 }),
    hosts: Type.String({ minLength: 1, description: 'a host pattern: group, host, glob, a:b, a:!b' }),
    vars: Type.Optional(Type.Record(Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$' }), Type.Unknown())),
    forks: Type.Optional(Type.Integer({ minimum: 1, description: 'hosts worked on at once (default 10)' })),
    serial: Type.Optional(
      Type.Integer({ minimum: 1, description: 'hosts per batch; the play runs batch after batch' }),
    ),
    steps: StepList,
    rescue: Type.Optional(StepList),
    always: Type.Optional(StepList),
  },
  { additionalProperties: false },
);

/** A step of one type, validated. */
export interface StepNode {
  kind: 'step';
  /** Stable address for the journal and resume: `p0.steps.3.block.1`. */
  address: string;
  path: PathSeg[];
  type: string;
  /** The step-type key's value as written (templates not yet rendered). */
  params: unknown;
  common: Common;
  /** A display name: `name`, else `type`. */
  title: string;
}

/** A block with its rescue and always lists. */
export interface BlockNode {
  kind: 'block';
  address: string;
  path: PathSeg[];
  title: string;
  when?: string;
  hosts?: string;
  block: Node[];
  rescue: Node[];
  always: Node[];
}

export type Node = StepNode | BlockNode;

/** A validated play. */
export interface Play {
  index: number;
  path: PathSeg[];
  name: string;
  hosts: string;
  vars: Record<string, unknown>;
  forks: number;
  serial?: number;
  steps: Node[];
  rescue: Node[];
  always: Node[];
}

/** A validated playbook. */
export interface Playbook {
  file: string;
  doc: SourceDoc;
  /** sha256 of the file's bytes, so `resume` can refuse a changed playbook. */
  sha256: string;
  plays: Play[];
  /** `variables:` as declared; undefined when the playbook declares none (a bare list of plays) */
  variables?: Record<string, VariableDecl>;
}

/** Where a node sits in its parent: the main list, or a block's rescue or always list. */
export type Section = 'block' | 'rescue' | 'always';

/** A node met by `walkNodes`, with the sections it sits in from the outside in. */
export interface Visit {
  node: Node;
  sections: Section[];
}

/**
 * The one walker over block/rescue/always: every node, blocks before their contents, depth
 * first, in the order written.
 */
export function* walkNodes(nodes: readonly Node[], sections: Section[] = []): Generator<Visit> {
  for (const n of nodes) {
    yield { node: n, sections };
    if (n.kind === 'block') {
      yield* walkNodes(n.block, [...sections, 'block']);
      yield* walkNodes(n.rescue, [...sections, 'rescue']);
      yield* walkNodes(n.always, [...sections, 'always']);
    }
  }
}

/** Every step in a list, depth first, in the order written. */
export function* walk(nodes: readonly Node[]): Generator<StepNode> {
  for (const { node } of walkNodes(nodes)) if (node.kind === 'step') yield node;
}

/** Every node of a play: its steps, rescue and always lists. */
export function playNodes(play: Play): Node[] {
  return [...play.steps, ...play.rescue, ...play.always];
}

// Bounds on what a YAML file may make us build: nesting depth (checked on the token stream,
// before any recursive code sees the text) and alias expansion (checked on the parsed tree,
// before it becomes JavaScript values). Each breach is one located message, never a crash.
import { CST, type Document, isAlias, isMap, isPair, isSeq, Lexer, type Node } from 'yaml';

/** How deep collections may nest (block indentation, compact `- - x`, and flow `[[...]]` alike). */
export const MAX_DEPTH = 64;
/**
 * How many scalar values and aliases one file may hold: an inventory of some 680 Patroni hosts
 * with ssh, pg, patroni settings and vars, or a playbook of 390 plays of 9 steps
 * (scripts/big-input.ts). Validation grows linearly; a pair of files at the limit validates with
 * -i in 1.5–3 s and 170 MB on a shared 2-core machine at load 4 (a pair at 50,000 took 4 s there:
 * the YAML parser alone reads about a megabyte a second). MAX_PLAN_COST bounds their plan.
 */
export const MAX_VALUES = 25_000;
/** How many times one anchor may be used through aliases. */
export const MAX_ALIAS_USES = 100;
/** How many values aliases may add to the document once expanded (a "billion laughs" stays small). */
export const MAX_ALIAS_VALUES = 10_000;

/** A breach of a limit, at a character offset of the text. */
export interface LimitBreach {
  offset: number;
  message: string;
}

// Lexer tokens that mark a mode change and are not characters of the source.
const CONTROL = new Set(['\x02', '\x18', '\x1f']);

/**
 * The first place where the text nests deeper than MAX_DEPTH, or holds its (MAX_VALUES+1)th
 * scalar or alias. The depth counted is an upper
 * bound of the real one: open indentation levels, plus the `-`, `?` and `:` indicators on the
 * line, plus open flow brackets. The lexer is a state machine: it sees quotes, comments and
 * block scalars correctly without recursing.
 */
export function tokenBreach(text: string): LimitBreach | undefined {
  let offset = 0;
  let flow = 0;
  let lineStart = true;
  let indent = 0;
  let compact = 0;
  let values = 0;
  let scalarNext = false;
  let blockBody = false;
  const stack: number[] = [];
  for (const tok of new Lexer().lex(text)) {
    // The lexer marks the start of a plain scalar (and of a block scalar's body) with \x1f.
    if (tok === '\x1f') {
      scalarNext = true;
      continue;
    }
    if (CONTROL.has(tok)) continue;
    const type = scalarNext ? 'scalar' : CST.tokenType(tok);
    scalarNext = false;
    const at = offset;
    offset += tok.length;
    if (type === 'newline') {
      lineStart = true;
      indent = 0;
      compact = 0;
      continue;
    }
    if (type === 'space') {
      if (lineStart) indent = tok.length;
      continue;
    }
    if (type === 'comment' || type === 'byte-order-mark') continue;
    if ((type === 'scalar' || type?.endsWith('-scalar') || type === 'alias') && ++values > MAX_VALUES)
      return {
        offset: at,
        message: `more than ${MAX_VALUES} values in one file (limit ${MAX_VALUES}); split it`,
      };
    if (type === 'scalar' && blockBody) {
      // A block scalar's body: its lines are text, not nesting; the next token starts a line.
      blockBody = false;
      lineStart = true;
      indent = 0;
      compact = 0;
      continue;
    }
    blockBody = type === 'block-scalar-header';
    if (lineStart) {
      lineStart = false;
      if (flow === 0) {
        while (stack.length > 0 && stack[stack.length - 1]! >= indent) stack.pop();
        stack.push(indent);
      }
    }
    if (type === 'flow-seq-start' || type === 'flow-map-start') flow++;
    else if (type === 'flow-seq-end' || type === 'flow-map-end') flow = Math.max(0, flow - 1);
    else if (
      flow === 0 &&
      (type === 'seq-item-ind' || type === 'explicit-key-ind' || type === 'map-value-ind')
    )
      compact++;
    if (stack.length + compact + flow > MAX_DEPTH)
      return { offset: at, message: `nested more than ${MAX_DEPTH} levels deep (limit ${MAX_DEPTH})` };
  }
  return undefined;
}

/**
 * The first alias that names no anchor before it, refers to the node it is inside of, is the
 * (MAX_ALIAS_USES+1)th use of its anchor, or makes aliases add more than MAX_ALIAS_VALUES values.
 * Walks the tree in document order; depth is already bounded by `nestingBreach`.
 */
export function aliasBreach(doc: Document): LimitBreach | undefined {
  const anchors = new Map<string, Node>();
  const open = new Set<Node>();
  const uses = new Map<Node, number>();
  const sizes = new Map<Node, number>();
  let added = 0;

  // Values a node stands for once its aliases are expanded (anchors are all defined by now).
  // A node met again while its size is being counted (anchors redefined in a loop) counts as
  // too many: the answer must be finite whatever the names.
  const size = (node: unknown): number => {
    if (!node || typeof node !== 'object') return 1;
    const n = node as Node;
    const known = sizes.get(n);
    if (known !== undefined) return known;
    sizes.set(n, MAX_ALIAS_VALUES + 1);
    let total = 1;
    if (isAlias(n)) total = size(anchors.get(n.source));
    else if (isMap(n) || isSeq(n))
      for (const item of n.items as unknown[]) {
        if (isPair(item)) total += size(item.key) + size(item.value);
        else total += size(item);
        if (total > MAX_ALIAS_VALUES) break;
      }
    sizes.set(n, total);
    return total;
  };

  const walk = (node: unknown): LimitBreach | undefined => {
    if (!node || typeof node !== 'object') return undefined;
    const n = node as Node;
    const offset = n.range?.[0] ?? 0;
    if (isAlias(n)) {
      const target = anchors.get(n.source);
      if (!target)
        return { offset, message: `alias *${n.source} refers to no anchor &${n.source} defined before it` };
      if (open.has(target))
        return {
          offset,
          message: `alias *${n.source} is inside its own anchor &${n.source} (a recursive value)`,
        };
      const count = (uses.get(target) ?? 0) + 1;
      uses.set(target, count);
      if (count > MAX_ALIAS_USES)
        return { offset, message: `alias *${n.source} used ${count} times (limit ${MAX_ALIAS_USES})` };
      added += size(target);
      if (added > MAX_ALIAS_VALUES)
        return {
          offset,
          message: `aliases expand to more than ${MAX_ALIAS_VALUES} values by *${n.source} (limit ${MAX_ALIAS_VALUES}); write the values out`,
        };
      return undefined;
    }
    const anchor = (n as { anchor?: string }).anchor;
    if (anchor) {
      open.add(n);
      anchors.set(anchor, n);
    }
    if (isMap(n) || isSeq(n))
      for (const item of n.items as unknown[]) {
        const found = isPair(item) ? (walk(item.key) ?? walk(item.value)) : walk(item);
        if (found) return found;
      }
    if (anchor) open.delete(n);
    return undefined;
  };
  return walk(doc.contents);
}

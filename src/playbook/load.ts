// Reads YAML 1.2 (core schema) keeping a map from document paths back to line and column.
import { isMap, isPair, isScalar, isSeq, type Node, type Pair, parseDocument, type YAMLMap } from 'yaml';
import type { Problem } from '../errors.js';
import { FileReadError, readBounded } from '../util/read-file.js';
import { aliasBreach, tokenBreach } from './yaml-limits.js';

/** The largest playbook or inventory read, in bytes: far above any real one, small enough to parse at once. */
export const MAX_FILE_BYTES = 1024 * 1024;
/** YAML syntax errors reported per file; the rest are counted in the last one. */
const MAX_YAML_ERRORS = 20;

export type PathSeg = string | number;

/** A parsed YAML file that can say where any value inside it came from. */
export interface SourceDoc {
  file: string;
  text: string;
  value: unknown;
  /** Position of the value at `path`, or of its closest existing ancestor. */
  locate(path: readonly PathSeg[], opts?: { key?: boolean }): { line: number; col: number };
  /** A problem located at `path`. */
  problem(path: readonly PathSeg[], message: string, opts?: { key?: boolean }): Problem;
  /**
   * A problem at `text` inside the string value at `path` (its occurrence at `index` in `value`),
   * found in the source after the value's start, in plain, quoted and block scalars alike;
   * otherwise at the value.
   */
  problemAt(path: readonly PathSeg[], value: string, index: number, text: string, message: string): Problem;
}

/** Formats a path the way users read it: `[0].steps[2].shell.cmd`. */
export function dotted(path: readonly PathSeg[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out ? `.${seg}` : seg;
  }
  return out;
}

/**
 * Line and column (both from 1) of character offsets in `text`, by binary search over line
 * starts: computed from the text itself, so a parser that loses count of lines cannot shift
 * positions. The column never passes the end of its line (+1, for "at the end of line").
 */
export function positions(text: string): (offset: number) => { line: number; col: number } {
  const starts = [0];
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) starts.push(i + 1);
  return (offset) => {
    const o = Math.max(0, Math.min(offset, text.length));
    let lo = 0;
    let hi = starts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (starts[mid]! <= o) lo = mid;
      else hi = mid - 1;
    }
    const lineEnd = lo + 1 < starts.length ? starts[lo + 1]! - 1 : text.length;
    const len = lineEnd - starts[lo]! - (text[lineEnd - 1] === '\r' ? 1 : 0);
    return { line: lo + 1, col: Math.min(o - starts[lo]!, len) + 1 };
  };
}

/** Parses YAML text; syntax errors and breached limits come back as problems, never as exceptions. */
export function parseSource(file: string, text: string): { doc?: SourceDoc; problems: Problem[] } {
  const at = positions(text);
  const located = (offset: number, message: string): Problem => ({ file, ...at(offset), path: '', message });
  // Depth and size first, on tokens: the parser and everything after it recurse on nesting,
  // and several steps after it grow faster than linearly with the number of values.
  const deep = tokenBreach(text);
  if (deep) return { problems: [located(deep.offset, deep.message)] };
  // core schema: `yes`/`on` stay strings and `0644` is the integer 644, never octal by surprise.
  // Duplicate keys are found here, not by the library: it compares each key with every key
  // before it, and a map of 25,000 keys (an inventory's hosts) took seconds.
  const ydoc = parseDocument(text, {
    version: '1.2',
    schema: 'core',
    prettyErrors: false,
    uniqueKeys: false,
  });
  const errors = mergeByOffset(
    ydoc.errors.map((err) => ({ offset: err.pos[0], message: yamlMessage(err.message) })),
    duplicateKeys(ydoc.contents),
  );
  const problems: Problem[] = [];
  for (const err of errors.slice(0, MAX_YAML_ERRORS)) problems.push(located(err.offset, err.message));
  if (errors.length > MAX_YAML_ERRORS) {
    const rest = errors.length - MAX_YAML_ERRORS;
    problems.push(
      located(errors[MAX_YAML_ERRORS]!.offset, `invalid YAML: ${rest} more error(s) from here on`),
    );
  }
  if (problems.length > 0) return { problems };
  const aliases = aliasBreach(ydoc);
  if (aliases) return { problems: [located(aliases.offset, aliases.message)] };

  // Each map's pairs by key (the first of equal keys, as a search in order finds), built when
  // a path first passes through it: a problem on each of thousands of hosts must not search the
  // hosts map for each.
  const keyIndexes = new WeakMap<object, Map<string, Pair>>();
  const keyIndex = (map: YAMLMap): Map<string, Pair> => {
    let index = keyIndexes.get(map);
    if (!index) {
      index = new Map();
      for (const p of map.items)
        if (isPair(p) && isScalar(p.key)) {
          const k = String(p.key.value);
          if (!index.has(k)) index.set(k, p);
        }
      keyIndexes.set(map, index);
    }
    return index;
  };
  // Offsets of line starts, for problemAt: splitting the text for each problem was quadratic.
  const lineStarts = [0];
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) lineStarts.push(i + 1);
  const lineOf = (offset: number): number => {
    let lo = 0;
    let hi = lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (lineStarts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return lo + 1;
  };
  const locate = (path: readonly PathSeg[], opts?: { key?: boolean }) => {
    let node: Node | null | undefined = ydoc.contents as Node | null;
    let best = node?.range ? at(node.range[0]) : { line: 1, col: 1 };
    for (let i = 0; i < path.length; i++) {
      const seg = path[i]!;
      const last = i === path.length - 1;
      if (isMap(node)) {
        const pair = typeof seg === 'string' ? keyIndex(node).get(seg) : undefined;
        if (!pair) break;
        const keyNode = pair.key as Node;
        if (keyNode.range) best = at(keyNode.range[0]);
        if (last && opts?.key) return best;
        node = pair.value as Node | null;
        if (node?.range && !(last && node.range[0] === node.range[1])) best = at(node.range[0]);
      } else if (isSeq(node) && typeof seg === 'number') {
        const item = node.items[seg] as Node | undefined;
        if (!item) break;
        node = item;
        if (node.range) best = at(node.range[0]);
      } else break;
    }
    return best;
  };
  let value: unknown;
  try {
    // aliasBreach has bounded every alias already; the library's own count is a product of
    // uses and nesting that refuses files the limits above accept.
    value = ydoc.toJS({ maxAliasCount: -1 });
  } catch (err) {
    // Not reached by any known input; refused at the document, never crashed on.
    return { problems: [located(ydoc.contents?.range?.[0] ?? 0, `invalid YAML: ${(err as Error).message}`)] };
  }
  const doc: SourceDoc = {
    file,
    text,
    value,
    locate,
    problem(path, message, opts) {
      const pos = locate(path, opts);
      return { file, line: pos.line, col: pos.col, path: dotted(path), message };
    },
    problemAt(path, value, index, needle, message) {
      const base = locate(path);
      const start = (lineStarts[Math.min(base.line, lineStarts.length) - 1] ?? 0) + base.col - 1;
      let nth = 0;
      for (let k = value.indexOf(needle); k >= 0 && k < index; k = value.indexOf(needle, k + 1)) nth++;
      const limit = start + value.length * 2 + 256;
      let at = text.indexOf(needle, start);
      for (; at >= 0 && nth > 0; nth--) at = text.indexOf(needle, at + 1);
      if (at < 0 || at > limit) return doc.problem(path, message);
      const line = lineOf(at);
      const col = at - lineStarts[line - 1]! + 1;
      return { file, line, col, path: dotted(path), message };
    },
  };
  return { doc, problems };
}

/**
 * Reads and parses a YAML file. A missing file, anything but a regular file (a FIFO would block
 * the read for ever) and a file over MAX_FILE_BYTES are problems, found before parsing.
 */
export function loadSource(file: string): { doc?: SourceDoc; problems: Problem[] } {
  const read = readInput(file);
  if ('problem' in read) return { problems: [read.problem] };
  return parseSource(file, read.text);
}

/** The text of a regular file of at most MAX_FILE_BYTES, or the problem that prevents it. */
function readInput(file: string): { text: string } | { problem: Problem } {
  const fail = (message: string, pos = { line: 1, col: 1 }) => ({
    problem: { file, ...pos, path: '', message },
  });
  try {
    const r = readBounded(file, MAX_FILE_BYTES);
    const text = r.data.toString('utf8');
    if (r.over) {
      const mb = (b: number) => `${(b / 1024 / 1024).toFixed(1)} MB`;
      return fail(
        `file is larger than ${mb(MAX_FILE_BYTES)} (${mb(r.size)}; limit ${MAX_FILE_BYTES} bytes); the limit is reached here`,
        positions(text)(text.length),
      );
    }
    return { text };
  } catch (err) {
    if (!(err instanceof FileReadError)) throw err;
    return fail(
      err.reason.startsWith('not a regular file')
        ? `${err.reason}; give the path of a YAML file`
        : err.reason === 'file not found'
          ? err.reason
          : `cannot read file (${err.reason})`,
    );
  }
}

/**
 * Keys equal to an earlier key of the same map, as the yaml library reports them (a scalar key
 * by its value, `===`; any other key only if it is the same node), at the repeated key.
 * Nesting is bounded by tokenBreach before this recursion.
 */
function duplicateKeys(root: unknown): { offset: number; message: string }[] {
  const out: { offset: number; message: string }[] = [];
  const visit = (node: unknown): void => {
    if (isMap(node)) {
      const seen = new Set<unknown>();
      for (const pair of node.items) {
        const key = pair.key as Node | null;
        const value = isScalar(key) ? key.value : key;
        // === never holds for NaN; a Set would call two NaN keys equal.
        const comparable = !(typeof value === 'number' && Number.isNaN(value));
        if (comparable && seen.has(value))
          out.push({ offset: key?.range?.[0] ?? 0, message: 'invalid YAML: Map keys must be unique' });
        else if (comparable) seen.add(value);
        visit(pair.key);
        visit(pair.value);
      }
    } else if (isSeq(node)) for (const item of node.items) visit(item);
  };
  visit(root);
  return out;
}

/** Two lists ordered by offset as one, `a`'s entries first where offsets tie. */
function mergeByOffset<T extends { offset: number }>(a: T[], b: T[]): T[] {
  if (b.length === 0) return a;
  const out: T[] = [];
  let i = 0;
  for (const x of b) {
    while (i < a.length && a[i]!.offset <= x.offset) out.push(a[i++]!);
    out.push(x);
  }
  while (i < a.length) out.push(a[i++]!);
  return out;
}

function yamlMessage(msg: string): string {
  // The yaml library appends a code excerpt after the first line; the location is ours to print.
  const first = msg.split('\n')[0] ?? msg;
  const text = first.replace(/ at line \d+, column \d+:?$/, '');
  // A quoted token is shown up to the end of its first line (the location points at its start),
  // and a long one is cut: a 2 MB scalar must not become a 2 MB message.
  return `invalid YAML: ${text.replace(/: "(.*)"$/, (_, tok: string) => {
    const line = tok.split('\\n')[0]!;
    const cut = line.length > 40 || line !== tok;
    return `: "${line.slice(0, 40)}${cut ? '…' : ''}"`;
  })}`;
}

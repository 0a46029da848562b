// Reads YAML 1.2 (core schema) keeping a map from document paths back to line and column.
import { readFileSync } from 'node:fs';
import { isMap, isPair, isScalar, isSeq, LineCounter, type Node, parseDocument } from 'yaml';
import type { Problem } from '../errors.js';

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

/** Parses YAML text; syntax errors come back as problems, never as exceptions. */
export function parseSource(file: string, text: string): { doc?: SourceDoc; problems: Problem[] } {
  const lineCounter = new LineCounter();
  // core schema: `yes`/`on` stay strings and `0644` is the integer 644, never octal by surprise.
  const ydoc = parseDocument(text, { version: '1.2', schema: 'core', lineCounter, prettyErrors: false });
  const problems: Problem[] = [];
  for (const err of ydoc.errors) {
    const pos = lineCounter.linePos(err.pos[0]);
    problems.push({ file, line: pos.line, col: pos.col, path: '', message: yamlMessage(err.message) });
  }
  if (problems.length > 0) return { problems };

  const at = (offset: number) => lineCounter.linePos(offset);
  const locate = (path: readonly PathSeg[], opts?: { key?: boolean }) => {
    let node: Node | null | undefined = ydoc.contents as Node | null;
    let best = node?.range ? at(node.range[0]) : { line: 1, col: 1 };
    for (let i = 0; i < path.length; i++) {
      const seg = path[i]!;
      const last = i === path.length - 1;
      if (isMap(node)) {
        const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === seg);
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
    value = ydoc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    // An alias that expands without end (a "billion laughs" file) or names no anchor: the
    // document is refused, located at its start, never crashed on.
    const why = /alias count/i.test((err as Error).message)
      ? 'aliases expand to too many values (more than 100 alias uses); write the values out'
      : (err as Error).message;
    return { problems: [{ file, line: 1, col: 1, path: '', message: `invalid YAML: ${why}` }] };
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
      const lines = text.split('\n');
      let start = 0;
      for (let l = 0; l < base.line - 1 && l < lines.length; l++) start += lines[l]!.length + 1;
      start += base.col - 1;
      let nth = 0;
      for (let k = value.indexOf(needle); k >= 0 && k < index; k = value.indexOf(needle, k + 1)) nth++;
      const limit = start + value.length * 2 + 256;
      let at = text.indexOf(needle, start);
      for (; at >= 0 && nth > 0; nth--) at = text.indexOf(needle, at + 1);
      if (at < 0 || at > limit) return doc.problem(path, message);
      const before = text.slice(0, at);
      const line = before.split('\n').length;
      const col = at - before.lastIndexOf('\n');
      return { file, line, col, path: dotted(path), message };
    },
  };
  return { doc, problems };
}

/** Reads and parses a YAML file; a missing file is a problem at 1:1. */
export function loadSource(file: string): { doc?: SourceDoc; problems: Problem[] } {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'file not found' : `cannot read file (${code ?? String(err)})`;
    return { problems: [{ file, line: 1, col: 1, path: '', message: why }] };
  }
  return parseSource(file, text);
}

function yamlMessage(msg: string): string {
  // The yaml library appends a code excerpt after the first line; the location is ours to print.
  const first = msg.split('\n')[0] ?? msg;
  return `invalid YAML: ${first.replace(/ at line \d+, column \d+:?$/, '')}`;
}

// Mutation operators over a seed's playbook, inventory and `-e` vars: each makes one targeted
// change (a name, a pattern, a param, an order) and says what and where in `note`.
import {
  Alias,
  type Document,
  isAlias,
  isMap,
  isPair,
  isScalar,
  isSeq,
  Pair,
  parseDocument,
  Scalar,
  YAMLMap,
  YAMLSeq,
} from 'yaml';
import { COMMON_KEYS } from '../../src/playbook/model.js';
import { isMutating } from '../../src/steps/define.js';
import { registry } from '../../src/steps/registry.js';
import type { Seed } from './corpus.js';
import type { Rng } from './prng.js';

/** One mutated input set: what the property test feeds to `validate -i` and `run`. */
export interface Mutant {
  /** `<seed>~<operator>~<index>`: unique within one generated sequence. */
  id: string;
  seed: string;
  operator: string;
  playbook: string;
  inventory: string;
  extraVars: Record<string, unknown>;
  /** What changed, and where (a path in validate's notation, e.g. `[0].steps[2].shell`). */
  note: string;
}

/** A mutation operator; `neutral` ones keep a valid seed valid (the property needs accepted mutants). */
export interface Operator {
  name: string;
  neutral: boolean;
  apply(seed: Seed, rng: Rng, index?: number): Mutant | undefined;
}

type Seg = string | number;

// The options pgrunbook itself parses with (src/playbook/load.ts).
const YAML_OPTS = { version: '1.2', schema: 'core' } as const;
const STEP_LIST_KEYS = ['steps', 'rescue', 'always'] as const;
const BLOCK_LIST_KEYS = ['block', 'rescue', 'always'] as const;

/** `[0].steps[2].shell`, the notation validate's messages use. */
function dotted(path: readonly Seg[]): string {
  let out = '';
  for (const seg of path) out += typeof seg === 'number' ? `[${seg}]` : out ? `.${seg}` : seg;
  return out;
}

// Parsing is the slow part (tens of ms for the upgrade playbook): each text is parsed once and
// every mutant edits a clone.
const parsed = new Map<string, Document>();
const views = new Map<string, InvView>();

/** A deep copy of a node tree; ~5x faster than yaml's clone() (no property descriptors). */
function cloneTree(node: unknown): unknown {
  if (isPair(node)) return new Pair(cloneTree(node.key), cloneTree(node.value));
  if (isScalar(node)) return Object.assign(new Scalar(node.value), node);
  if (isMap(node)) {
    const copy = Object.assign(new YAMLMap(node.schema), node);
    copy.items = node.items.map((p) => cloneTree(p) as Pair);
    return copy;
  }
  if (isSeq(node)) {
    const copy = Object.assign(new YAMLSeq(node.schema), node);
    copy.items = node.items.map(cloneTree);
    return copy;
  }
  return isAlias(node) ? node.clone() : node;
}

/** The shared parse of `text`: read it, never edit it. */
function shared(text: string): Document {
  let doc = parsed.get(text);
  if (!doc) {
    doc = parseDocument(text, YAML_OPTS);
    parsed.set(text, doc);
  }
  return doc;
}

/** A fresh, editable copy of the document of `text` (exported for a fidelity test). */
export function editable(text: string): Document {
  const doc = shared(text);
  // The document's own clone() without its contents (cheap), then our copy of the contents.
  const contents = doc.contents;
  doc.contents = null;
  const copy = doc.clone();
  doc.contents = contents;
  copy.contents = cloneTree(contents) as typeof contents;
  return copy;
}

/** A seed parsed for editing; each text is re-serialised only when its document changed. */
class Draft {
  private pbDoc?: Document;
  private invDoc?: Document;
  readonly extraVars: Record<string, unknown>;
  pbChanged = false;
  invChanged = false;
  /** Texts edited as text (broken YAML): they win over the documents. */
  pbText?: string;
  invText?: string;

  constructor(readonly seed: Seed) {
    this.extraVars = structuredClone(seed.extraVars);
  }

  /** The playbook document (cloned on first use). */
  get pb(): Document {
    this.pbDoc ??= editable(this.seed.playbook.text);
    return this.pbDoc;
  }

  /** The playbook for reading only: the edited copy if there is one, else the shared parse. */
  get pbRead(): Document {
    return this.pbDoc ?? shared(this.seed.playbook.text);
  }

  /** The inventory document (cloned on first use). */
  get inv(): Document {
    this.invDoc ??= editable(this.seed.inventory.text);
    return this.invDoc;
  }

  /** Hosts, groups and vars of the inventory; the seed's (computed once) until it is edited. */
  view(): InvView {
    if (this.invDoc) return invView(this.invDoc);
    let v = views.get(this.seed.inventory.text);
    if (!v) {
      v = invView(shared(this.seed.inventory.text));
      views.set(this.seed.inventory.text, v);
    }
    return v;
  }

  /** The finished mutant (lineWidth 0: no folding, so a value is never re-wrapped). */
  done(operator: string, note: string, index = 0): Mutant {
    return {
      id: `${this.seed.name}~${operator}~${index}`,
      seed: this.seed.name,
      operator,
      playbook:
        this.pbText ?? (this.pbChanged ? this.pb.toString({ lineWidth: 0 }) : this.seed.playbook.text),
      inventory:
        this.invText ?? (this.invChanged ? this.inv.toString({ lineWidth: 0 }) : this.seed.inventory.text),
      extraVars: this.extraVars,
      note,
    };
  }
}

// ---------------------------------------------------------------------------------------------
// Navigating a playbook document.

/** The string key of a pair, if it has one. */
function keyOf(pair: { key: unknown }): string | undefined {
  const k = pair.key;
  if (isScalar(k) && typeof k.value === 'string') return k.value;
  return undefined;
}

/** The list of plays: the root list, or `plays:` of a playbook that declares its variables. */
function playList(doc: Document): YAMLSeq | undefined {
  const root = doc.contents;
  if (isSeq(root)) return root;
  if (isMap(root)) {
    const list: unknown = root.get('plays', true);
    if (isSeq(list)) return list;
  }
  return undefined;
}

/** Plays: the mappings of the list of plays. */
function plays(doc: Document): { map: YAMLMap; index: number }[] {
  const list = playList(doc);
  if (!list) return [];
  return list.items.flatMap((item, index) => (isMap(item) ? [{ map: item, index }] : []));
}

/** `variables:`, the declarations, when the playbook has them. */
function declarations(doc: Document): YAMLMap | undefined {
  const root = doc.contents;
  if (!isMap(root)) return undefined;
  const v: unknown = root.get('variables', true);
  return isMap(v) ? v : undefined;
}

/** The play at a root index (plays() skips non-mappings, so positions may differ). */
function playAt(doc: Document, index: number): YAMLMap | undefined {
  return plays(doc).find((p) => p.index === index)?.map;
}

/** A play's `vars` mapping, created empty when the play has none. */
function varsOf(d: Draft, play: YAMLMap): YAMLMap {
  const existing: unknown = play.get('vars', true);
  if (isMap(existing)) return existing;
  const vars = d.pb.createNode({}) as YAMLMap;
  play.set('vars', vars);
  return vars;
}

/** A list of steps somewhere in a play. */
interface ListRef {
  seq: YAMLSeq;
  path: Seg[];
  play: number;
}

/** Every step list (play steps/rescue/always and nested block/rescue/always), outermost first. */
function stepLists(doc: Document): ListRef[] {
  const out: ListRef[] = [];
  const visit = (seq: YAMLSeq, path: Seg[], play: number) => {
    out.push({ seq, path, play });
    seq.items.forEach((item, i) => {
      if (!isMap(item) || !item.has('block')) return;
      for (const k of BLOCK_LIST_KEYS) {
        const v = item.get(k, true);
        if (isSeq(v)) visit(v, [...path, i, k], play);
      }
    });
  };
  for (const { map, index } of plays(doc))
    for (const k of STEP_LIST_KEYS) {
      const v = map.get(k, true);
      if (isSeq(v)) visit(v, [index, k], index);
    }
  return out;
}

/** A step or block inside a list. */
interface StepRef {
  list: ListRef;
  index: number;
  map: YAMLMap;
  path: Seg[];
}

/** Every step and block, depth first. */
function allSteps(doc: Document): StepRef[] {
  return stepLists(doc).flatMap((list) =>
    list.seq.items.flatMap((item, index) =>
      isMap(item) ? [{ list, index, map: item, path: [...list.path, index] }] : [],
    ),
  );
}

/** The step type key of a leaf step (undefined for a block). */
function stepType(map: YAMLMap): string | undefined {
  if (map.has('block')) return undefined;
  for (const pair of map.items) {
    const k = keyOf(pair);
    if (k && !COMMON_KEYS.includes(k)) return k;
  }
  return undefined;
}

/** A step's params as the runner sees them (shorthand expanded), for isMutating. */
function paramsOf(map: YAMLMap, type: string): unknown {
  const raw: unknown = (map.get(type, true) as { toJSON?: () => unknown } | undefined)?.toJSON?.() ?? null;
  const short = registry.get(type)?.shorthand;
  if (short && (typeof raw === 'string' || Array.isArray(raw))) return { [short]: raw };
  return raw ?? {};
}

/** True for a leaf step whose type changes something on a host (its undo matters). */
function hasSideEffects(map: YAMLMap): boolean {
  const type = stepType(map);
  const def = type ? registry.get(type) : undefined;
  return def !== undefined && type !== undefined && isMutating(def, paramsOf(map, type));
}

/** A display name for notes: `name`, else the step type, else "block". */
function titleOf(map: YAMLMap): string {
  const name = map.get('name');
  if (typeof name === 'string') return name;
  return stepType(map) ?? 'block';
}

/** Every string scalar under a node, with its path. */
function stringScalars(node: unknown, path: Seg[], out: { scalar: Scalar<string>; path: Seg[] }[]): void {
  if (isMap(node)) {
    for (const pair of node.items) {
      const k = keyOf(pair);
      if (k !== undefined) stringScalars(pair.value, [...path, k], out);
    }
  } else if (isSeq(node)) {
    node.items.forEach((item, i) => {
      stringScalars(item, [...path, i], out);
    });
  } else if (isScalar(node) && typeof node.value === 'string') {
    out.push({ scalar: node as Scalar<string>, path });
  }
}

/** The words a node mentions (for "is this variable used?" and "does this step use that id?"). */
function mentions(node: unknown, word: string): boolean {
  const text = JSON.stringify((node as { toJSON?: () => unknown })?.toJSON?.() ?? node ?? null);
  return new RegExp(`(^|[^A-Za-z0-9_.])${word}([^A-Za-z0-9_]|$)`).test(text);
}

// ---------------------------------------------------------------------------------------------
// Expressions: `{{ … }}` inside strings, and bare `when`/`until`/`assert` expressions.

/** Where an expression sits: the span [start, end) of scalar.value holding its text. */
interface ExprSite {
  scalar: Scalar<string>;
  path: Seg[];
  start: number;
  end: number;
  bare: boolean;
}

/** A bare expression (no braces): `when`, `until`, and assert's `that`. */
function isBarePath(path: readonly Seg[]): boolean {
  const last = path[path.length - 1];
  if (last === 'when' || last === 'until') return true;
  const a = path.lastIndexOf('assert');
  if (a < 0) return false;
  const rest = path.slice(a + 1);
  return rest.length === 0 || typeof rest[0] === 'number' || rest[0] === 'that';
}

/** Every expression in the playbook. */
function exprSites(doc: Document): ExprSite[] {
  const strings: { scalar: Scalar<string>; path: Seg[] }[] = [];
  stringScalars(doc.contents, [], strings);
  const out: ExprSite[] = [];
  for (const { scalar, path } of strings) {
    const v = scalar.value;
    if (isBarePath(path)) {
      out.push({ scalar, path, start: 0, end: v.length, bare: true });
      continue;
    }
    for (const m of v.matchAll(/\{\{(.*?)\}\}/gs))
      out.push({ scalar, path, start: m.index + 2, end: m.index + m[0].length - 2, bare: false });
  }
  return out;
}

/** A token of an expression, classified enough to tell a variable from an attribute or a filter. */
interface Tok {
  kind: 'name' | 'attr' | 'filter' | 'test' | 'kw' | 'lit' | 'punct';
  text: string;
  start: number;
  end: number;
}

const KEYWORDS = new Set([
  'and',
  'or',
  'not',
  'in',
  'is',
  'true',
  'false',
  'null',
  'none',
  'True',
  'False',
  'None',
]);
const TWO_CHAR = new Set(['||', '&&', '==', '!=', '<=', '>=']);

/** Tokenizes an expression of pgrunbook's Jinja-like language (good enough to find names). */
function tokenize(expr: string): Tok[] {
  const toks: Tok[] = [];
  let i = 0;
  const prev = (back = 1) => toks[toks.length - back];
  while (i < expr.length) {
    const c = expr[i]!;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    const start = i;
    if (c === "'" || c === '"') {
      i++;
      while (i < expr.length && expr[i] !== c) i += expr[i] === '\\' ? 2 : 1;
      i = Math.min(i + 1, expr.length);
      toks.push({ kind: 'lit', text: expr.slice(start, i), start, end: i });
    } else if (/[0-9]/.test(c)) {
      while (i < expr.length && /[0-9.]/.test(expr[i]!)) i++;
      toks.push({ kind: 'lit', text: expr.slice(start, i), start, end: i });
    } else if (/[A-Za-z_]/.test(c)) {
      while (i < expr.length && /[A-Za-z0-9_]/.test(expr[i]!)) i++;
      const text = expr.slice(start, i);
      const p = prev();
      let kind: Tok['kind'] = 'name';
      if (p?.kind === 'punct' && p.text === '.') kind = 'attr';
      else if (p?.kind === 'punct' && p.text === '|') kind = 'filter';
      else if (p?.kind === 'kw' && p.text === 'is') kind = 'test';
      else if (p?.kind === 'kw' && p.text === 'not' && prev(2)?.text === 'is') kind = 'test';
      else if (KEYWORDS.has(text)) kind = 'kw';
      toks.push({ kind, text, start, end: i });
    } else {
      const two = expr.slice(i, i + 2);
      i += TWO_CHAR.has(two) ? 2 : 1;
      toks.push({ kind: 'punct', text: expr.slice(start, i), start, end: i });
    }
  }
  return toks;
}

/** Where the member chain starting at token k ends (`a.b['c'].d`), as an offset in the expression. */
function chainEnd(toks: readonly Tok[], k: number): number {
  let j = k;
  for (;;) {
    const next = toks[j + 1];
    if (next?.kind === 'punct' && next.text === '.' && toks[j + 2]?.kind === 'attr') j += 2;
    else if (next?.kind === 'punct' && next.text === '[') {
      let depth = 0;
      let m = j + 1;
      for (; m < toks.length; m++) {
        if (toks[m]!.text === '[') depth++;
        if (toks[m]!.text === ']' && --depth === 0) break;
      }
      if (m >= toks.length) break;
      j = m;
    } else break;
  }
  return toks[j]!.end;
}

/** An edit of one expression: its new text and a short description. */
type ExprEdit = { expr: string; what: string; close?: 'drop' };

/**
 * Applies `edit` to one expression of the playbook chosen at random among those it applies to;
 * the note names the place and the before/after text.
 */
function editExpression(
  d: Draft,
  rng: Rng,
  edit: (expr: string, toks: Tok[], site: ExprSite) => ExprEdit | undefined,
): string | undefined {
  for (const site of rng.shuffle(exprSites(d.pb))) {
    const value = site.scalar.value;
    const expr = value.slice(site.start, site.end);
    const e = edit(expr, tokenize(expr), site);
    if (!e) continue;
    const tail = e.close === 'drop' ? value.slice(site.end + 2) : value.slice(site.end);
    site.scalar.value = value.slice(0, site.start) + e.expr + tail;
    d.pbChanged = true;
    const before = site.bare ? expr.trim() : `{{${expr}}}`;
    const after = site.bare ? e.expr.trim() : `{{${e.expr}${e.close === 'drop' ? '' : '}}'}`;
    return `${dotted(site.path)}: ${e.what}: ${JSON.stringify(before)} → ${JSON.stringify(after)}`;
  }
  return undefined;
}

/** Replaces the token span [start, end) of an expression. */
function splice(expr: string, start: number, end: number, text: string): string {
  return expr.slice(0, start) + text + expr.slice(end);
}

/** A typo of a word: swap, drop, double or change one letter (never the word itself). */
function typo(word: string, rng: Rng): string {
  for (let tries = 0; tries < 8; tries++) {
    const i = rng.int(word.length);
    const kind = rng.int(4);
    let out = word;
    if (kind === 0 && i < word.length - 1) out = word.slice(0, i) + word[i + 1] + word[i] + word.slice(i + 2);
    else if (kind === 1 && word.length > 2) out = word.slice(0, i) + word.slice(i + 1);
    else if (kind === 2) out = word.slice(0, i) + word[i] + word.slice(i);
    else out = word.slice(0, i) + rng.pick([...'aeiou']) + word.slice(i + 1);
    if (out !== word && /^[A-Za-z_][A-Za-z0-9_]*$/.test(out)) return out;
  }
  return `${word}x`;
}

// ---------------------------------------------------------------------------------------------
// The inventory, seen simply (hosts, groups, vars), to aim patterns and deletions.

interface InvView {
  hosts: string[];
  groups: Map<string, { hosts: string[]; children: string[] }>;
  patroni: string[];
  vars: Map<string, unknown>;
}

/** The inventory's hosts, groups and every variable (inventory, group and host level). */
function invView(inv: Document): InvView {
  const js = (inv.toJS() ?? {}) as {
    hosts?: Record<string, { patroni?: unknown; vars?: Record<string, unknown> } | null>;
    groups?: Record<string, { hosts?: string[]; children?: string[]; vars?: Record<string, unknown> } | null>;
    vars?: Record<string, unknown>;
  };
  const vars = new Map<string, unknown>(Object.entries(js.vars ?? {}));
  const groups = new Map<string, { hosts: string[]; children: string[] }>();
  for (const [g, def] of Object.entries(js.groups ?? {})) {
    groups.set(g, { hosts: def?.hosts ?? [], children: def?.children ?? [] });
    for (const [k, v] of Object.entries(def?.vars ?? {})) if (!vars.has(k)) vars.set(k, v);
  }
  const hosts = Object.keys(js.hosts ?? {});
  for (const h of hosts)
    for (const [k, v] of Object.entries(js.hosts?.[h]?.vars ?? {})) if (!vars.has(k)) vars.set(k, v);
  const patroni = hosts.filter((h) => js.hosts?.[h]?.patroni);
  return { hosts, groups, patroni, vars };
}

/** Hosts of a group, children expanded (cycles cut). */
function groupHosts(view: InvView, g: string, seen: string[] = []): string[] {
  const def = view.groups.get(g);
  if (!def || seen.includes(g)) return [];
  return [...new Set([...def.hosts, ...def.children.flatMap((c) => groupHosts(view, c, [...seen, g]))])];
}

/** The hosts a pattern selects, the way src/inventory/patterns.ts reads it (dynamic groups: candidates). */
function resolvePattern(view: InvView, pattern: string): Set<string> {
  const term = (t: string): string[] => {
    if (t === 'all' || t === '*') return view.hosts;
    if (view.groups.has(t)) return groupHosts(view, t);
    if (t === 'patroni_leader' || t === 'patroni_replicas') return view.patroni;
    if (view.hosts.includes(t)) return [t];
    if (/[*?]/.test(t)) {
      const re = new RegExp(
        `^${t
          .replace(/[.+^${}()|[\]\\]/g, '\\$&')
          .replace(/\*/g, '.*')
          .replace(/\?/g, '.')}$`,
      );
      return view.hosts.filter((h) => re.test(h));
    }
    return [];
  };
  let selected = new Set<string>();
  for (const raw of pattern
    .split(/[,:]/)
    .map((t) => t.trim())
    .filter(Boolean)) {
    const op = raw[0] === '!' || raw[0] === '&' ? raw[0] : '';
    const hs = term(op ? raw.slice(1) : raw);
    if (op === '!') selected = new Set([...selected].filter((h) => !hs.includes(h)));
    else if (op === '&') selected = new Set([...selected].filter((h) => hs.includes(h)));
    else for (const h of hs) selected.add(h);
  }
  return selected;
}

/** Every `hosts:` in the playbook: plays, steps and blocks. */
function hostSites(doc: Document): { map: YAMLMap; path: Seg[]; value: string }[] {
  const out: { map: YAMLMap; path: Seg[]; value: string }[] = [];
  const add = (map: YAMLMap, path: Seg[]) => {
    const v = map.get('hosts');
    if (typeof v === 'string') out.push({ map, path: [...path, 'hosts'], value: v });
  };
  for (const p of plays(doc)) add(p.map, [p.index]);
  for (const s of allSteps(doc)) add(s.map, s.path);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Operators.

/** Wraps a mutation body into an Operator: parse, mutate, serialise (or undefined: not applicable). */
function op(name: string, neutral: boolean, body: (d: Draft, rng: Rng) => string | undefined): Operator {
  return {
    name,
    neutral,
    apply(seed, rng, index = 0) {
      const d = new Draft(seed);
      const note = body(d, rng);
      return note === undefined ? undefined : d.done(name, note, index);
    },
  };
}

/** Root variable names of an expression (not attributes, filters, tests or keywords). */
const rootNames = (toks: Tok[]) => toks.filter((t) => t.kind === 'name');

/** A name nothing defines: validation must see it (with an inventory), or the run renders it. */
const exprUndefinedName = op('expr.undefined-name', false, (d, rng) =>
  editExpression(d, rng, (expr, toks) => {
    const names = rootNames(toks);
    if (names.length === 0) return undefined;
    const t = rng.pick(names);
    return {
      expr: splice(expr, t.start, t.end, `nope_${t.text}`),
      what: `"${t.text}" renamed to an undefined name`,
    };
  }),
);

/** An attribute that does not exist: only the value can tell, at plan time or at run time. */
const exprUndefinedAttr = op('expr.undefined-attr', false, (d, rng) =>
  editExpression(d, rng, (expr, toks) => {
    const candidates = toks
      .map((t, k) => ({ t, k }))
      .filter(({ t }) => t.kind === 'name' || t.kind === 'attr');
    if (candidates.length === 0) return undefined;
    const { t, k } = rng.pick(candidates);
    const end = chainEnd(toks, k);
    return { expr: splice(expr, end, end, '.nope'), what: `attribute .nope appended after "${t.text}"` };
  }),
);

/** The commonest mistake: a misspelt variable (validation should suggest the right one). */
const exprTypo = op('expr.typo', false, (d, rng) =>
  editExpression(d, rng, (expr, toks) => {
    const names = rootNames(toks).filter((t) => t.text.length >= 3);
    if (names.length === 0) return undefined;
    const t = rng.pick(names);
    const wrong = typo(t.text, rng);
    return { expr: splice(expr, t.start, t.end, wrong), what: `typo "${t.text}" → "${wrong}"` };
  }),
);

/** Bracket access to a missing key: `vars[...]`, `hostvars[...]`, `groups[...]` hide the name from a root-name check. */
const exprMissingKey = op('expr.missing-key', false, (d, rng) =>
  editExpression(d, rng, (expr, toks) => {
    const candidates = toks.map((t, k) => ({ t, k })).filter(({ t }) => t.kind === 'name');
    if (candidates.length === 0) return undefined;
    const { t, k } = rng.pick(candidates);
    switch (rng.int(4)) {
      case 0:
        return {
          expr: splice(expr, t.start, t.end, `vars['nope_${t.text}']`),
          what: `vars['nope_${t.text}'] for "${t.text}"`,
        };
      case 1:
        return {
          expr: splice(expr, t.start, t.end, `hostvars['nohost'].${t.text}`),
          what: `hostvars['nohost'].${t.text} for "${t.text}"`,
        };
      case 2:
        return {
          expr: splice(expr, t.start, t.end, "groups['nogroup']"),
          what: `groups['nogroup'] for "${t.text}"`,
        };
      default: {
        const end = chainEnd(toks, k);
        return { expr: splice(expr, end, end, "['nope']"), what: `['nope'] appended after "${t.text}"` };
      }
    }
  }),
);

/** Syntax the expression language refuses (or a template left open, which is no template at all). */
const exprUnparsable = op('expr.unparsable', false, (d, rng) =>
  editExpression(d, rng, (expr, _toks, site) => {
    const e = expr.trim();
    const variants: ExprEdit[] = [
      { expr: ` (${e} `, what: 'unbalanced parenthesis' },
      { expr: ` ${e} + `, what: 'dangling operator' },
      { expr: ` ${e}. `, what: 'dangling dot' },
      { expr: ` ${e} | lenght `, what: 'unknown filter' },
      { expr: ` ${e} ? 1 : 2 `, what: 'a ?: conditional' },
      { expr: ` ${e} is defind `, what: 'unknown test' },
      { expr: ` ${e} ]`, what: 'stray bracket' },
    ];
    if (!site.bare) {
      variants.push({ expr, what: 'closing }} removed', close: 'drop' });
      variants.push({ expr: ' ', what: 'empty template' });
      variants.push({ expr: ` {{ ${e} `, what: 'nested {{' });
    }
    const v = rng.pick(variants);
    return site.bare ? { ...v, expr: v.expr.trim() } : v;
  }),
);

/** Where to insert a new step: after a step with side effects half the time, else anywhere. */
function insertionPoint(d: Draft, rng: Rng): { list: ListRef; at: number; after?: string } | undefined {
  const lists = stepLists(d.pb);
  if (lists.length === 0) return undefined;
  const effects = allSteps(d.pb).filter((s) => hasSideEffects(s.map));
  if (effects.length > 0 && rng.chance(0.5)) {
    const s = rng.pick(effects);
    return { list: s.list, at: s.index + 1, after: `${titleOf(s.map)} (changes the host)` };
  }
  const list = rng.pick(lists);
  return { list, at: rng.int(list.seq.items.length + 1) };
}

/** Inserts a step at a chosen point; returns where, for the note. */
function insertStep(d: Draft, rng: Rng, step: Record<string, unknown>): string | undefined {
  const point = insertionPoint(d, rng);
  if (!point) return undefined;
  point.list.seq.items.splice(point.at, 0, d.pb.createNode(step));
  d.pbChanged = true;
  const where = dotted([...point.list.path, point.at]);
  return point.after ? `${where} (right after "${point.after}")` : where;
}

/** Play variable names of the play a list belongs to (plain values only: no templates). */
function plainPlayVars(d: Draft, play: number): string[] {
  const vars = playAt(d.pb, play)?.get('vars', true);
  if (!isMap(vars)) return [];
  return vars.items.flatMap((p) => {
    const k = keyOf(p);
    const v = isScalar(p.value) ? p.value.value : undefined;
    return k && (typeof v === 'number' || (typeof v === 'string' && !v.includes('{{'))) ? [k] : [];
  });
}

/** A new step that cannot render, placed where a failure must unwind what ran before it. */
const stepInsertUndefined = op('step.insert-undefined', false, (d, rng) => {
  const names = [...d.view().vars.keys()];
  const expr = rng.pick([
    'host.nope',
    'nope_var',
    "vars['nope']",
    "hostvars['nohost'].who",
    "groups['nogroup'] | length",
    'run.nope',
    ...(names.length ? [`${rng.pick(names)}.nope`] : []),
  ]);
  const step: Record<string, unknown> = rng.chance(0.5) ? { name: `fuzz echo ${expr}` } : {};
  step.shell = `echo {{ ${expr} }}`;
  const where = insertStep(d, rng, step);
  return where && `inserted shell "echo {{ ${expr} }}" at ${where}`;
});

/** (neutral) A new step that renders names always defined there. */
const neutralEchoDefined = op('neutral.echo-defined', true, (d, rng) => {
  const lists = stepLists(d.pb);
  if (lists.length === 0) return undefined;
  const list = rng.pick(lists);
  const expr = rng.pick(['host.name', 'run.id', 'groups | length', ...plainPlayVars(d, list.play)]);
  const at = rng.int(list.seq.items.length + 1);
  list.seq.items.splice(at, 0, d.pb.createNode({ shell: `echo {{ ${expr} }}` }));
  d.pbChanged = true;
  return `inserted shell "echo {{ ${expr} }}" at ${dotted([...list.path, at])}`;
});

/** A condition over an undefined name or attribute: evaluated per host, skipped or failed? */
const whenUndefined = op('when.undefined', false, (d, rng) => {
  const steps = allSteps(d.pb);
  if (steps.length === 0) return undefined;
  const withWhen = steps.filter((s) => typeof s.map.get('when') === 'string');
  const s = withWhen.length > 0 && rng.chance(0.6) ? rng.pick(withWhen) : rng.pick(steps);
  const old = s.map.get('when');
  const playVars = plainPlayVars(d, s.list.play);
  const expr = rng.pick([
    'nope_flag',
    'host.nope',
    "hostvars['nohost'].role == 'primary'",
    "vars['nope_flag']",
    'host.name == nope_host',
    ...(typeof old === 'string' ? [`${old} and nope_flag`, `(${old}) or host.nope`] : []),
    ...(playVars.length ? [`${rng.pick(playVars)}.nope`] : []),
  ]);
  s.map.set('when', expr);
  d.pbChanged = true;
  return `${dotted([...s.path, 'when'])}: ${typeof old === 'string' ? JSON.stringify(old) : '(none)'} → ${JSON.stringify(expr)}`;
});

/** Picks a name, preferring those the playbook mentions (deleting an unused one is less telling). */
function pickUsed(d: Draft, rng: Rng, names: readonly string[]): string {
  const used = names.filter((n) => mentions(d.pbRead.contents, n));
  return used.length > 0 && rng.chance(0.8) ? rng.pick(used) : rng.pick(names);
}

/** A play variable gone: its users now depend on the inventory or -e. */
const deletePlayVar = op('delete.play-var', false, (d, rng) => {
  const withVars = plays(d.pb).flatMap((p) => {
    const vars = p.map.get('vars', true);
    return isMap(vars) && vars.items.length > 0 ? [{ p, vars }] : [];
  });
  if (withVars.length === 0) return undefined;
  const { p, vars } = rng.pick(withVars);
  const name = pickUsed(
    d,
    rng,
    vars.items.flatMap((i) => keyOf(i) ?? []),
  );
  vars.delete(name);
  d.pbChanged = true;
  return `deleted play variable ${dotted([p.index, 'vars', name])}`;
});

/** A declaration gone: a declared playbook then refuses every use of the name. */
const deleteDeclaration = op('delete.declaration', false, (d, rng) => {
  const decls = declarations(d.pb);
  const names = decls?.items.flatMap((i) => keyOf(i) ?? []) ?? [];
  if (!decls || names.length === 0) return undefined;
  const name = pickUsed(d, rng, names);
  decls.delete(name);
  d.pbChanged = true;
  return `deleted declaration variables.${name}`;
});

/** A declaration made stricter or contradictory: required, another type, a default of the wrong type. */
const retypeDeclaration = op('declaration.retype', false, (d, rng) => {
  const decls = declarations(d.pb);
  const entries =
    decls?.items.flatMap((i) => (keyOf(i) && isMap(i.value) ? [{ name: keyOf(i)!, map: i.value }] : [])) ??
    [];
  if (entries.length === 0) return undefined;
  const { name, map } = rng.pick(entries);
  const how = rng.int(3);
  if (how === 0) {
    map.set('required', true);
    map.delete('default');
    d.pbChanged = true;
    return `variables.${name}: required, no default`;
  }
  if (how === 1) {
    const t = rng.pick(['integer', 'boolean', 'path', 'host', 'list', 'mapping']);
    map.set('type', t);
    d.pbChanged = true;
    return `variables.${name}.type → ${t}`;
  }
  map.set('default', rng.pick([42, 'not-a-path', true, ['x']]));
  d.pbChanged = true;
  return `variables.${name}.default changed`;
});

/** An inventory variable gone at one level (inventory, group, host): others may still define it. */
const deleteInventoryVar = op('delete.inventory-var', false, (d, rng) => {
  const places: { map: YAMLMap; path: Seg[]; key: string }[] = [];
  const collect = (node: unknown, path: Seg[]) => {
    if (isMap(node))
      for (const pair of node.items) if (keyOf(pair)) places.push({ map: node, path, key: keyOf(pair)! });
  };
  collect(d.inv.get('vars', true), ['vars']);
  for (const kind of ['groups', 'hosts'] as const) {
    const m = d.inv.get(kind, true);
    if (isMap(m))
      for (const pair of m.items)
        if (isMap(pair.value) && keyOf(pair))
          collect(pair.value.get('vars', true), [kind, keyOf(pair)!, 'vars']);
  }
  if (places.length === 0) return undefined;
  const key = pickUsed(d, rng, [...new Set(places.map((p) => p.key))]);
  const place = rng.pick(places.filter((p) => p.key === key));
  place.map.delete(key);
  d.invChanged = true;
  return `deleted inventory variable ${dotted([...place.path, key])}`;
});

/** Removes a name from every group's `hosts` or `children` list; returns how many went. */
function unlinkFromGroups(d: Draft, list: 'hosts' | 'children', name: string): number {
  const groups = d.inv.get('groups', true);
  if (!isMap(groups)) return 0;
  let n = 0;
  for (const pair of groups.items) {
    const seq = isMap(pair.value) ? pair.value.get(list, true) : undefined;
    if (!isSeq(seq)) continue;
    const before = seq.items.length;
    seq.items = seq.items.filter((i) => !(isScalar(i) && i.value === name));
    n += before - seq.items.length;
  }
  return n;
}

/** A host gone: patterns, group lists and hostvars[...] naming it. */
const deleteHost = op('delete.host', false, (d, rng) => {
  const hosts = d.inv.get('hosts', true);
  if (!isMap(hosts) || hosts.items.length === 0) return undefined;
  const name = pickUsed(
    d,
    rng,
    hosts.items.flatMap((i) => keyOf(i) ?? []),
  );
  hosts.delete(name);
  d.invChanged = true;
  // Mostly a clean removal (patterns and hostvars then miss it); sometimes a dangling member.
  if (rng.chance(0.25)) return `deleted host hosts.${name} (still listed in its groups)`;
  const n = unlinkFromGroups(d, 'hosts', name);
  return `deleted host hosts.${name} and its ${n} group membership(s)`;
});

/** A group gone: patterns, groups[...] and parents naming it. */
const deleteGroup = op('delete.group', false, (d, rng) => {
  const groups = d.inv.get('groups', true);
  if (!isMap(groups) || groups.items.length === 0) return undefined;
  const name = pickUsed(
    d,
    rng,
    groups.items.flatMap((i) => keyOf(i) ?? []),
  );
  groups.delete(name);
  d.invChanged = true;
  if (rng.chance(0.25)) return `deleted group groups.${name} (still a child of its parents)`;
  const n = unlinkFromGroups(d, 'children', name);
  return `deleted group groups.${name} and ${n} reference(s) as a child`;
});

/** An -e var the seed is run with, forgotten on the command line. */
const deleteExtraVar = op('delete.extra-var', false, (d, rng) => {
  const names = Object.keys(d.extraVars);
  if (names.length === 0) return undefined;
  const name = rng.pick(names);
  delete d.extraVars[name];
  return `dropped -e ${name}=${JSON.stringify(d.seed.extraVars[name])}`;
});

/** A value of another type than v: string ↔ number ↔ list (and booleans and maps to those). */
function retype(v: unknown, rng: Rng): unknown {
  if (typeof v === 'string') return rng.pick<unknown>([42, ['a', 'b'], []]);
  if (typeof v === 'number') return rng.pick<unknown>(['abc', [v], '']);
  if (Array.isArray(v)) return rng.pick<unknown>(['abc', 7, v.length > 0 ? v[0] : 'x']);
  return rng.pick<unknown>(['abc', 3, ['x']]);
}

/** An -e var of another type: -e wins over play and inventory vars, so every use sees it. */
const extraVarRetype = op('extra-var.retype', false, (d, rng) => {
  // A given -e var, or any inventory/play variable: -e overrides both, so the type changes everywhere.
  const known = new Map<string, unknown>(d.view().vars);
  for (const p of plays(d.pbRead)) {
    const vars = p.map.get('vars', true);
    if (isMap(vars))
      for (const [k, v] of Object.entries(vars.toJSON() as Record<string, unknown>)) known.set(k, v);
  }
  for (const [k, v] of Object.entries(d.extraVars)) known.set(k, v);
  const names = [...known.keys()];
  if (names.length === 0) return undefined;
  const given = Object.keys(d.extraVars);
  const name = given.length > 0 && rng.chance(0.5) ? rng.pick(given) : pickUsed(d, rng, names);
  const value = retype(known.get(name), rng);
  d.extraVars[name] = value;
  return `-e ${name}=${JSON.stringify(value)} (was ${JSON.stringify(known.get(name))})`;
});

/** A host pattern site, adding `hosts:` to a step now and then (a narrowing that was not there). */
function pickHostSite(d: Draft, rng: Rng): { map: YAMLMap; path: Seg[]; value: string } | undefined {
  const sites = hostSites(d.pb);
  const steps = allSteps(d.pb).filter((s) => !s.map.has('hosts'));
  if (steps.length > 0 && (sites.length === 0 || rng.chance(0.25))) {
    const s = rng.pick(steps);
    const play = playAt(d.pb, s.list.play);
    return { map: s.map, path: [...s.path, 'hosts'], value: String(play?.get('hosts') ?? 'all') };
  }
  return sites.length > 0 ? rng.pick(sites) : undefined;
}

/** A host pattern with a term that matches nothing: validation must name it. */
const hostsUnknown = op('hosts.unknown', false, (d, rng) => {
  const site = pickHostSite(d, rng);
  if (!site) return undefined;
  const view = d.view();
  const names = [...view.hosts, ...view.groups.keys()];
  let misspelt = typo(rng.pick(names.length ? names : ['all']), rng);
  while (names.includes(misspelt)) misspelt = `${misspelt}x`;
  const pattern = rng.pick([
    'nogroup',
    misspelt,
    `${site.value}:nohost`,
    `${site.value}:&nogroup`,
    `${site.value}:!nohost`,
    'zz-nothing-*',
  ]);
  site.map.set('hosts', pattern);
  d.pbChanged = true;
  return `${dotted(site.path)}: ${JSON.stringify(site.value)} → ${JSON.stringify(pattern)}`;
});

/** A pattern of known names that selects no host: valid terms, empty result. */
const hostsMatchNothing = op('hosts.match-nothing', false, (d, rng) => {
  const site = pickHostSite(d, rng);
  if (!site) return undefined;
  const view = d.view();
  const selected = resolvePattern(view, site.value);
  const disjoint = [...view.hosts, ...view.groups.keys()].filter((n) =>
    [...resolvePattern(view, n)].every((h) => !selected.has(h)),
  );
  const single = selected.size === 1 ? [...selected][0]! : undefined;
  const pattern = rng.pick([
    `${site.value}:!all`,
    `all:!all`,
    ...(disjoint.length > 0 ? [`${site.value}:&${rng.pick(disjoint)}`] : []),
    ...(single ? [`${single}:!${single}`] : []),
    ...(view.patroni.length > 0 ? ['patroni_leader:&patroni_replicas'] : []),
  ]);
  site.map.set('hosts', pattern);
  d.pbChanged = true;
  return `${dotted(site.path)}: ${JSON.stringify(site.value)} → ${JSON.stringify(pattern)} (selects no host)`;
});

/** Leaf steps with their type. */
function leafSteps(d: Draft): (StepRef & { type: string })[] {
  return allSteps(d.pb).flatMap((s) => {
    const type = stepType(s.map);
    return type && registry.has(type) ? [{ ...s, type }] : [];
  });
}

/** A param to change: a key of the params map, or the shorthand value itself (params undefined). */
type ParamTarget = { s: StepRef & { type: string }; params: YAMLMap | undefined; key: string | undefined };

/** A param of the wrong type (the step type's schema must say so). */
const paramRetype = op('param.retype', false, (d, rng) => {
  const targets = leafSteps(d).flatMap((s): ParamTarget[] => {
    const params = s.map.get(s.type, true);
    if (isMap(params)) return params.items.flatMap((p) => (keyOf(p) ? [{ s, params, key: keyOf(p)! }] : []));
    if (isScalar(params) || isSeq(params)) return [{ s, params: undefined, key: undefined }];
    return [];
  });
  if (targets.length === 0) return undefined;
  const { s, params, key } = rng.pick(targets);
  const holder = params ?? s.map;
  const k = key ?? s.type;
  const node = holder.get(k, true);
  const old: unknown = (node as { toJSON?: () => unknown } | undefined)?.toJSON?.() ?? null;
  const value =
    typeof old === 'number' || typeof old === 'boolean'
      ? 'abc'
      : typeof old === 'string'
        ? rng.chance(0.5)
          ? [old]
          : 12
        : Array.isArray(old)
          ? old.map(String).join(' ')
          : 'abc';
  holder.set(k, value);
  d.pbChanged = true;
  return `${dotted([...s.path, s.type, ...(key ? [key] : [])])}: ${JSON.stringify(old)} → ${JSON.stringify(value)}`;
});

/** A required param missing. */
const paramDeleteRequired = op('param.delete-required', false, (d, rng) => {
  const targets = leafSteps(d).flatMap(
    (s): { s: StepRef & { type: string }; key: string; params: YAMLMap | undefined }[] => {
      const def = registry.get(s.type)!;
      const required = (def.params.required ?? []) as string[];
      const params = s.map.get(s.type, true);
      if (isMap(params)) return required.filter((r) => params.has(r)).map((r) => ({ s, key: r, params }));
      if ((isScalar(params) || isSeq(params)) && def.shorthand && required.includes(def.shorthand))
        return [{ s, key: def.shorthand, params: undefined }];
      return [];
    },
  );
  if (targets.length === 0) return undefined;
  const { s, key, params } = rng.pick(targets);
  if (params) params.delete(key);
  else s.map.set(s.type, d.pb.createNode({}));
  d.pbChanged = true;
  return `deleted required param ${dotted([...s.path, s.type, key])}${params ? '' : ' (the shorthand value)'}`;
});

/** A param (or a step key) the step type does not have. */
const paramUnknown = op('param.unknown', false, (d, rng) => {
  const steps = leafSteps(d);
  if (steps.length === 0) return undefined;
  const s = rng.pick(steps);
  if (rng.chance(0.25)) {
    const key = rng.pick(['regster', 'whn', 'ignore_error', 'nope']);
    s.map.set(key, key === 'whn' ? 'true' : 'x');
    d.pbChanged = true;
    return `added unknown step key ${dotted([...s.path, key])}`;
  }
  const params = s.map.get(s.type, true);
  const existing = isMap(params) ? params.items.flatMap((p) => keyOf(p) ?? []) : [];
  const key = existing.length > 0 && rng.chance(0.5) ? typo(rng.pick(existing), rng) : 'nope_param';
  if (isMap(params)) params.set(key, 1);
  else {
    const short = registry.get(s.type)?.shorthand;
    const value: Record<string, unknown> = {};
    if (short && (isScalar(params) || isSeq(params))) value[short] = params.toJSON();
    value[key] = 1;
    s.map.set(s.type, d.pb.createNode(value));
  }
  d.pbChanged = true;
  return `added unknown param ${dotted([...s.path, s.type, key])}`;
});

/** Names a step defines for later ones: its `id` and `register`. */
function definedNames(map: YAMLMap): string[] {
  return (['id', 'register'] as const).flatMap((k) => {
    const v = map.get(k);
    return typeof v === 'string' ? [v] : [];
  });
}

/** A registered name used before the step that registers it. */
const orderUseBeforeRegister = op('order.use-before-register', false, (d, rng) => {
  const pairs: { list: ListRef; from: number; to: number; name: string }[] = [];
  for (const list of stepLists(d.pb))
    list.seq.items.forEach((item, i) => {
      if (!isMap(item)) return;
      for (const name of definedNames(item))
        for (let j = i + 1; j < list.seq.items.length; j++)
          if (mentions(list.seq.items[j], name)) pairs.push({ list, from: i, to: j, name });
    });
  if (pairs.length === 0) return undefined;
  const { list, from, to, name } = rng.pick(pairs);
  const [moved] = list.seq.items.splice(from, 1);
  list.seq.items.splice(to, 0, moved);
  d.pbChanged = true;
  return `moved the step defining "${name}" from ${dotted([...list.path, from])} to after its user (now ${dotted([...list.path, to])})`;
});

/** Two steps with one id (ids name journal entries and registered values). */
const orderDuplicateId = op('order.duplicate-id', false, (d, rng) => {
  const withId = allSteps(d.pb).filter((s) => typeof s.map.get('id') === 'string');
  if (withId.length === 0) return undefined;
  const s = rng.pick(withId);
  const at = s.index + 1 + rng.int(s.list.seq.items.length - s.index);
  s.list.seq.items.splice(at, 0, s.map.clone());
  d.pbChanged = true;
  return `duplicated the step with id "${s.map.get('id')}" (${dotted(s.path)}) at ${dotted([...s.list.path, at])}`;
});

/** Two steps in the other order: may break a use-after-register, or nothing. */
const orderSwap = op('order.swap', false, (d, rng) => {
  const lists = stepLists(d.pb).filter((l) => l.seq.items.length >= 2);
  if (lists.length === 0) return undefined;
  const list = rng.pick(lists);
  const i = rng.int(list.seq.items.length);
  let j = rng.int(list.seq.items.length - 1);
  if (j >= i) j++;
  const items = list.seq.items;
  [items[i], items[j]] = [items[j]!, items[i]!];
  d.pbChanged = true;
  return `swapped ${dotted([...list.path, i])} and ${dotted([...list.path, j])}`;
});

/** A step gone: its registered name may still be used. */
const orderDeleteStep = op('order.delete-step', false, (d, rng) => {
  const steps = allSteps(d.pb);
  if (steps.length === 0) return undefined;
  const s = rng.pick(steps);
  s.list.seq.items.splice(s.index, 1);
  d.pbChanged = true;
  return `deleted ${dotted(s.path)} ("${titleOf(s.map)}")`;
});

/** A play twice: its ids twice, its hosts entering again. */
const playDuplicate = op('play.duplicate', false, (d, rng) => {
  const ps = plays(d.pb);
  const root = playList(d.pb);
  if (ps.length === 0 || !root) return undefined;
  const p = rng.pick(ps);
  const at = rng.chance(0.5) ? p.index + 1 : root.items.length;
  root.items.splice(at, 0, p.map.clone());
  d.pbChanged = true;
  return `duplicated play [${p.index}] ("${p.map.get('name')}") at [${at}]`;
});

/** (neutral) A play renamed. */
const neutralRenamePlay = op('neutral.rename-play', true, (d, rng) => {
  const ps = plays(d.pb);
  if (ps.length === 0) return undefined;
  const p = rng.pick(ps);
  const old = String(p.map.get('name'));
  const name = `${old} (fuzz ${rng.pick(['alpha', 'beta', 'gamma', 'delta'])})`;
  p.map.set('name', name);
  d.pbChanged = true;
  return `[${p.index}].name: ${JSON.stringify(old)} → ${JSON.stringify(name)}`;
});

/** (neutral) Keys of a mapping in another order: YAML mappings are unordered. */
const neutralReorderKeys = op('neutral.reorder-keys', true, (d, rng) => {
  // Only maps whose key order means nothing: plays, steps, step params (not set_fact: facts may
  // build on each other; not vars), an inventory host's settings.
  const maps: { map: YAMLMap; where: string; inv: boolean }[] = [];
  for (const p of plays(d.pb)) maps.push({ map: p.map, where: `[${p.index}]`, inv: false });
  for (const s of allSteps(d.pb)) {
    maps.push({ map: s.map, where: dotted(s.path), inv: false });
    const type = stepType(s.map);
    const params = type ? s.map.get(type, true) : undefined;
    if (type && type !== 'set_fact' && isMap(params))
      maps.push({ map: params, where: dotted([...s.path, type]), inv: false });
  }
  const hosts = d.inv.get('hosts', true);
  if (isMap(hosts))
    for (const pair of hosts.items)
      if (isMap(pair.value)) maps.push({ map: pair.value, where: `hosts.${keyOf(pair)}`, inv: true });
  const candidates = maps.filter((m) => m.map.items.length >= 2);
  if (candidates.length === 0) return undefined;
  const { map, where, inv } = rng.pick(candidates);
  const before = map.items.map((p) => keyOf(p) ?? '?');
  let items = rng.shuffle(map.items);
  if (items.every((p, i) => p === map.items[i])) items = [...items.slice(1), items[0]!];
  map.items = items;
  if (inv) d.invChanged = true;
  else d.pbChanged = true;
  return `${where}: keys ${before.join(',')} → ${items.map((p) => keyOf(p) ?? '?').join(',')}`;
});

/** (neutral) `shell: true` anywhere. */
const neutralAddNoop = op('neutral.add-noop-step', true, (d, rng) => {
  const lists = stepLists(d.pb);
  if (lists.length === 0) return undefined;
  const list = rng.pick(lists);
  const at = rng.int(list.seq.items.length + 1);
  const step = rng.chance(0.5) ? { name: 'fuzz no-op', shell: 'true' } : { shell: 'true' };
  list.seq.items.splice(at, 0, d.pb.createNode(step));
  d.pbChanged = true;
  return `inserted shell "true" at ${dotted([...list.path, at])}`;
});

/** (neutral) A new play variable and a step using it. */
const neutralAddVarAndUse = op('neutral.add-var-and-use', true, (d, rng) => {
  const lists = stepLists(d.pb);
  if (lists.length === 0) return undefined;
  const list = rng.pick(lists);
  const play = playAt(d.pb, list.play);
  if (!play) return undefined;
  const name = `fuzz_var_${rng.int(1000)}`;
  const value = rng.pick<unknown>(['fuzz-value', 7, ['p', 'q']]);
  varsOf(d, play).set(name, value);
  const at = rng.int(list.seq.items.length + 1);
  list.seq.items.splice(at, 0, d.pb.createNode({ name: `use {{ ${name} }}`, shell: `echo {{ ${name} }}` }));
  d.pbChanged = true;
  return `added ${dotted([list.play, 'vars', name])}=${JSON.stringify(value)} and a shell echoing it at ${dotted([...list.path, at])}`;
});

/** YAML anchors and aliases: harmless ones, a step repeated by alias, and an alias bomb. */
const yamlAlias = op('yaml.alias', false, (d, rng) => {
  const ps = plays(d.pb);
  if (ps.length === 0) return undefined;
  const p = rng.pick(ps);
  const vars = varsOf(d, p.map);
  const kind = rng.int(3);
  if (kind === 0) {
    // Nested aliases: a few lines of YAML that expand past the loader's alias limit.
    const l0 = d.pb.createNode(Array.from({ length: 10 }, () => 'x')) as YAMLSeq;
    l0.anchor = 'fuzz_l0';
    const l1 = d.pb.createNode([]) as YAMLSeq;
    l1.items = Array.from({ length: 10 }, () => new Alias('fuzz_l0'));
    l1.anchor = 'fuzz_l1';
    const l2 = d.pb.createNode([]) as YAMLSeq;
    l2.items = Array.from({ length: 10 }, () => new Alias('fuzz_l1'));
    vars.set('fuzz_l0', l0);
    vars.set('fuzz_l1', l1);
    vars.set('fuzz_l2', l2);
    d.pbChanged = true;
    return `[${p.index}].vars: fuzz_l0..2, three levels of 10 aliases (1,000 values from 21 nodes)`;
  }
  if (kind === 1) {
    // A step repeated through an alias further down its list (its id, if any, twice).
    const lists = stepLists(d.pb).filter((l) => l.play === p.index && l.seq.items.some(isMap));
    if (lists.length === 0) return undefined;
    const list = rng.pick(lists);
    const indexes = list.seq.items.flatMap((item, i) => (isMap(item) ? [i] : []));
    const i = rng.pick(indexes);
    (list.seq.items[i] as YAMLMap).anchor = 'fuzz_step';
    const at = i + 1 + rng.int(list.seq.items.length - i);
    list.seq.items.splice(at, 0, new Alias('fuzz_step'));
    d.pbChanged = true;
    return `${dotted([...list.path, i])} anchored &fuzz_step and repeated as *fuzz_step at ${dotted([...list.path, at])}`;
  }
  // A plain, harmless alias: a play variable that names another one's value.
  const first = vars.items.find((pair) => keyOf(pair) && isScalar(pair.value));
  const source = first ? (first.value as Scalar) : (d.pb.createNode('fuzz') as Scalar);
  if (!first) vars.set('fuzz_source', source);
  source.anchor = 'fuzz_a';
  vars.set('fuzz_alias', new Alias('fuzz_a'));
  d.pbChanged = true;
  return `[${p.index}].vars.fuzz_alias: *fuzz_a (the value of ${first ? keyOf(first) : 'fuzz_source'})`;
});

/** One text edit that breaks YAML (or its structure), at a line with content. */
function breakLine(text: string, rng: Rng): { text: string; what: string; line: number } | undefined {
  const lines = text.split('\n');
  const content = lines.flatMap((l, i) => (l.trim() && !l.trim().startsWith('#') ? [i] : []));
  if (content.length === 0) return undefined;
  const i = rng.pick(content);
  const line = lines[i]!;
  const indent = line.length - line.trimStart().length;
  const variants: { line: string[]; what: string }[] = [
    { line: [`\t${line}`], what: 'a tab before the indentation' },
    { line: [`${line} "unclosed`], what: 'an unclosed quote' },
    { line: [`${' '.repeat(indent + 1)}${line.trimStart()}`], what: 'one more space of indentation' },
    { line: [line.replace(/: /, ' ')], what: 'the first ": " removed' },
    { line: [`${line} ]`], what: 'a stray ]' },
    { line: [line, line], what: 'the line written twice' },
    { line: [line.replace(/^(\s*)/, '$1&fuzz_anchor_ ')], what: 'a dangling anchor' },
    { line: [`${line} *nowhere`], what: 'an alias to no anchor' },
  ];
  const v = rng.pick(variants.filter((x) => x.line.join('\n') !== line));
  lines.splice(i, 1, ...v.line);
  return { text: lines.join('\n'), what: v.what, line: i + 1 };
}

/** Text that is no longer (the same) YAML: the loader must locate the problem. */
const yamlSyntax = op('yaml.syntax', false, (d, rng) => {
  const inInventory = rng.chance(0.3);
  const broken = breakLine(inInventory ? d.seed.inventory.text : d.seed.playbook.text, rng);
  if (!broken) return undefined;
  if (inInventory) d.invText = broken.text;
  else d.pbText = broken.text;
  return `${inInventory ? 'inventory' : 'playbook'} line ${broken.line}: ${broken.what}`;
});

/** A structural key given a value of the wrong shape (what a schema must catch, never a crash). */
const shapePlaybook = op('shape.playbook', false, (d, rng) => {
  const ps = plays(d.pb);
  const steps = allSteps(d.pb);
  if (ps.length === 0) return undefined;
  const edits: { holder: YAMLMap; key: string; values: unknown[]; where: Seg[] }[] = [];
  const p = rng.pick(ps);
  const playEdits: [string, unknown[]][] = [
    ['hosts', [5, ['all'], null, '']],
    ['vars', [['x'], 'x']],
    ['steps', [{ shell: 'true' }, 'steps', null]],
    ['serial', [0, 'x', 1.5]],
    ['forks', [-1, 'x']],
    ['name', [null, 7, '']],
    ['tasks', [[{ shell: 'true' }]]],
  ];
  for (const [key, values] of playEdits) edits.push({ holder: p.map, key, values, where: [p.index, key] });
  if (steps.length > 0) {
    const s = rng.pick(steps);
    const stepEdits: [string, unknown[]][] = [
      ['when', [5, true, ['x']]],
      ['register', [7, '1bad', 'host', 'result']],
      ['id', ['bad id', 'vars', 3]],
      ['timeout', [0, -1, 'x']],
      ['retries', [1.5, -1]],
      ['ignore_errors', ['yes', 1]],
      ['undo', ['sometimes', true]],
      ['confirm', [0, '']],
      ['requires_leader', ['maybe']],
      ['until', ['', 3]],
      ['hosts', [7, ['a']]],
    ];
    if (s.map.has('block')) stepEdits.push(['block', ['x', {}, null]], ['rescue', ['x', { shell: 'true' }]]);
    for (const [key, values] of stepEdits)
      edits.push({ holder: s.map, key, values, where: [...s.path, key] });
  }
  const e = rng.pick(edits);
  if (steps.length > 0 && rng.chance(0.15)) {
    // The whole step replaced by something that is not a mapping.
    const s = rng.pick(steps);
    const value = rng.pick<unknown>([null, 'shell: true', [{ shell: 'true' }], 3]);
    s.list.seq.items[s.index] = d.pb.createNode(value);
    d.pbChanged = true;
    return `${dotted(s.path)}: the step replaced by ${JSON.stringify(value)}`;
  }
  const value = rng.pick(e.values);
  e.holder.set(e.key, d.pb.createNode(value));
  d.pbChanged = true;
  return `${dotted(e.where)}: set to ${JSON.stringify(value)}`;
});

/** The inventory's structure of the wrong shape (its schema must catch it, never a crash). */
const shapeInventory = op('shape.inventory', false, (d, rng) => {
  const view = d.view();
  const inv = d.inv;
  const host = view.hosts.length > 0 ? rng.pick(view.hosts) : undefined;
  const group = view.groups.size > 0 ? rng.pick([...view.groups.keys()]) : undefined;
  const edits: { path: Seg[]; values: unknown[] }[] = [
    { path: ['hosts'], values: [['a'], 'a'] },
    { path: ['vars'], values: [['x'], 'x'] },
    { path: ['defaults', 'transport'], values: ['telnet', 1] },
    { path: ['groups', 'patroni_leader'], values: [{ hosts: host ? [host] : [] }] },
  ];
  if (host) {
    edits.push(
      { path: ['hosts', host], values: ['x', []] },
      { path: ['hosts', host, 'transport'], values: ['telnet'] },
      { path: ['hosts', host, 'vars'], values: [['x'], 'x'] },
      { path: ['hosts', host, 'pg', 'port'], values: ['abc', 70000] },
      { path: ['groups', host], values: [{ hosts: [host] }] },
    );
  }
  if (group) {
    edits.push(
      { path: ['groups', group], values: [null, 'x'] },
      { path: ['groups', group, 'hosts'], values: ['a', [7], ['nohost']] },
      { path: ['groups', group, 'children'], values: ['x', ['nogroup'], [group]] },
      { path: ['groups', group, 'vars'], values: [['x']] },
    );
  }
  const e = rng.pick(edits);
  const value = rng.pick(e.values);
  inv.setIn(e.path, inv.createNode(value));
  d.invChanged = true;
  return `inventory ${dotted(e.path)}: set to ${JSON.stringify(value)}`;
});

/** Every operator, in a fixed order (the generator cycles through them). */

// Hostile input (issue 11): text appended to the playbook (a new play) or the inventory (a new
// top-level key) that a loader must bound and locate, never crash or hang on.

/** An integer in [lo, hi]. */
const between = (rng: Rng, lo: number, hi: number) => lo + rng.int(hi - lo + 1);

/** Appends `play` (YAML lines of a play, at column 0) to the playbook, or `key` to the inventory. */
function appendHostile(d: Draft, rng: Rng, play: string, key?: string): string {
  const inInventory = key !== undefined && rng.chance(0.3);
  const base = (inInventory ? d.seed.inventory.text : d.seed.playbook.text).replace(/\n*$/, '\n');
  if (inInventory) d.invText = base + key;
  else d.pbText = base + play;
  return inInventory ? 'inventory' : 'playbook';
}

const hostileUndefinedAlias = op('hostile.undefined-alias', false, (d, rng) => {
  const name = rng.pick(['nope', 'a', 'x_1', 's']);
  const where = appendHostile(
    d,
    rng,
    `- name: hostile\n  hosts: all\n  vars: { a: *${name} }\n  steps: []\n`,
    `hostile_x: *${name}\n`,
  );
  return `${where}: alias *${name} with no anchor`;
});

const hostileBillionLaughs = op('hostile.billion-laughs', false, (d, rng) => {
  const width = between(rng, 3, 10);
  const depth = between(rng, 2, 9);
  let vars = `    a0: &a0 [${Array(width).fill('"lol"').join(',')}]\n`;
  for (let i = 1; i <= depth; i++)
    vars += `    a${i}: &a${i} [${Array(width)
      .fill(`*a${i - 1}`)
      .join(',')}]\n`;
  const where = appendHostile(d, rng, `- name: hostile\n  hosts: all\n  vars:\n${vars}  steps: []\n`);
  return `${where}: ${width} wide, ${depth} deep alias expansion`;
});

const hostileAliasReuse = op('hostile.alias-reuse', false, (d, rng) => {
  const n = between(rng, 95, 110);
  const where = appendHostile(
    d,
    rng,
    `- name: hostile\n  hosts: all\n  steps:\n    - &s\n      shell: "true"\n${'    - *s\n'.repeat(n)}`,
  );
  return `${where}: one step reused ${n} times through - *s`;
});

const hostileRecursiveAlias = op('hostile.recursive-alias', false, (d, rng) => {
  const form = rng.pick(['&v {x: *v}', '&v [*v]', '&v {x: [1, {y: *v}]}']);
  const where = appendHostile(
    d,
    rng,
    `- name: hostile\n  hosts: all\n  vars: ${form}\n  steps: []\n`,
    `hostile_x: ${form}\n`,
  );
  return `${where}: recursive alias ${form}`;
});

const hostileDeepNesting = op('hostile.deep-nesting', false, (d, rng) => {
  const n = rng.pick([between(rng, 20, 70), between(rng, 60, 2000), between(rng, 2000, 100_000)]);
  const form = between(rng, 0, 2);
  const value =
    form === 0
      ? `${'['.repeat(n)}${']'.repeat(n)}`
      : form === 1
        ? `${'{a: '.repeat(n)}1${'}'.repeat(n)}`
        : `\n${Array.from({ length: Math.min(n, 300) }, (_, i) => `${' '.repeat(4 + i)}k${i}:`).join('\n')} 1`;
  const where = appendHostile(
    d,
    rng,
    `- name: hostile\n  hosts: all\n  vars:\n    deep: ${value}\n  steps: []\n`,
    `hostile_x: ${value}\n`,
  );
  return `${where}: nesting ${form === 2 ? Math.min(n, 300) : n} deep (${['flow list', 'flow map', 'block map'][form]})`;
});

const hostileLongExpression = op('hostile.long-expression', false, (d, rng) => {
  const n = rng.pick([between(rng, 2, 80), between(rng, 80, 600), 4000]);
  const expr = rng.pick([
    () => Array(n).fill('1').join(' + '),
    () => Array(n).fill('x').join(' and '),
    () => `${'('.repeat(n)}1${')'.repeat(n)}`,
    () => `${'not '.repeat(n)}true`,
  ])();
  const where = appendHostile(
    d,
    rng,
    `- name: hostile\n  hosts: all\n  vars:\n    x: true\n  steps:\n    - shell: "echo {{ ${expr} }}"\n`,
  );
  return `${where}: an expression of ${n} terms (${expr.length} characters)`;
});

const hostileLargeFile = op('hostile.large-file', false, (d, rng) => {
  const bytes = rng.pick([
    between(rng, 10_000, 900_000),
    between(rng, 1_000_000, 1_100_000),
    between(rng, 2_000_000, 3_000_000),
  ]);
  const form = between(rng, 0, 2);
  const body =
    form === 0
      ? `    big: "${'x'.repeat(bytes)}"\n`
      : form === 1
        ? `    # ${'c'.repeat(bytes)}\n`
        : Array.from({ length: Math.ceil(bytes / 12) }, (_, i) => `    v${i}: 1\n`).join('');
  const where = appendHostile(d, rng, `- name: hostile\n  hosts: all\n  vars:\n${body}  steps: []\n`);
  return `${where}: ~${bytes} bytes as ${['one long scalar', 'one long comment', 'many small vars'][form]}`;
});

export const OPERATORS: readonly Operator[] = [
  exprUndefinedName,
  exprUndefinedAttr,
  exprTypo,
  exprMissingKey,
  exprUnparsable,
  stepInsertUndefined,
  whenUndefined,
  deletePlayVar,
  deleteDeclaration,
  retypeDeclaration,
  deleteInventoryVar,
  deleteHost,
  deleteGroup,
  deleteExtraVar,
  extraVarRetype,
  hostsUnknown,
  hostsMatchNothing,
  paramRetype,
  paramDeleteRequired,
  paramUnknown,
  orderUseBeforeRegister,
  orderDuplicateId,
  orderSwap,
  orderDeleteStep,
  playDuplicate,
  yamlAlias,
  yamlSyntax,
  shapePlaybook,
  shapeInventory,
  neutralEchoDefined,
  neutralRenamePlay,
  neutralReorderKeys,
  neutralAddNoop,
  neutralAddVarAndUse,
  hostileUndefinedAlias,
  hostileBillionLaughs,
  hostileAliasReuse,
  hostileRecursiveAlias,
  hostileDeepNesting,
  hostileLongExpression,
  hostileLargeFile,
];

// Whole-file validation of a playbook: envelope, then each step type's own schema, then names.
import { createHash } from 'node:crypto';
import { distance } from 'fastest-levenshtein';
import type { Problem } from '../errors.js';
import type { Inventory } from '../inventory/inventory.js';
import { matchHosts } from '../inventory/patterns.js';
import { registry, stepTypes } from '../steps/registry.js';
import { describe, didYouMean, schemaProblems, typoHint } from '../util/schema-errors.js';
import { declarationProblems, inventoryProblems, parseDeclarations } from './declarations.js';
import {
  ExpressionError,
  expressionProblems,
  isWholeTemplate,
  type NameRef,
  parseExpression,
  referencedNames,
  templateExpressions,
} from './expressions.js';
import { loadSource, type PathSeg, type SourceDoc } from './load.js';
import {
  BlockSchema,
  BUILTIN_NAMES,
  COMMON_KEYS,
  CommonSchema,
  type Node,
  type Play,
  type Playbook,
  PlaySchema,
  playNodes,
  RESERVED_NAMES,
  walk,
  walkNodes,
} from './model.js';
import { shellInputProblems, variableFlowProblems } from './shell-inputs.js';
import { argvTemplateProblems, shellMode, shellTemplateProblems } from './shell-template.js';
import type { VariableDecl } from './variables.js';

export { BUILTIN_NAMES } from './model.js';

/** What validation knows besides the file: an inventory and `-e` variables, both optional. */
export interface ValidateOptions {
  inventory?: Inventory;
  extraVars?: Record<string, unknown>;
  /** --limit: the hosts a declared variable must be set on are the run's */
  limit?: string;
}

/** A validated playbook, or every problem found; `unchecked` lists names left to the inventory. */
export interface ValidateResult {
  playbook?: Playbook;
  problems: Problem[];
  unchecked: string[];
}

/** Loads and validates a playbook file, collecting every problem. */
export function loadPlaybook(file: string, opts: ValidateOptions = {}): ValidateResult {
  const { doc, problems } = loadSource(file);
  if (!doc) return { problems, unchecked: [] };
  return validatePlaybook(doc, opts);
}

/** Validates an already-parsed playbook document. */
export function validatePlaybook(doc: SourceDoc, opts: ValidateOptions = {}): ValidateResult {
  const problems: Problem[] = [];
  // A list of plays, or a mapping of `variables:` (declarations) and `plays:`.
  const top = parseDeclarations(doc, problems);
  const root = top.plays;
  if (!Array.isArray(root) || root.length === 0) {
    // A mapping without plays: has been told so already.
    if (root !== undefined || !top.playsPath.length)
      problems.push(
        doc.problem(
          top.playsPath.length ? top.playsPath : [],
          `expected a non-empty list of plays${top.playsPath.length ? '' : ' (or a mapping of variables: and plays:)'}, got ${describe(root)}`,
        ),
      );
    problems.sort((a, b) => a.line - b.line || a.col - b.col);
    return { problems, unchecked: [] };
  }
  const plays: Play[] = [];
  root.forEach((raw, i) => {
    const path: PathSeg[] = [...top.playsPath, i];
    const envelope = schemaProblems(PlaySchema, raw, doc, path);
    problems.push(...envelope);
    if (!raw || typeof raw !== 'object' || Array.isArray(raw)) return;
    const p = raw as Record<string, unknown>;
    const list = (key: string): Node[] =>
      Array.isArray(p[key])
        ? parseList(p[key] as unknown[], [...path, key], `p${i}.${key}`, doc, problems)
        : [];
    plays.push({
      index: i,
      path,
      name: typeof p.name === 'string' ? p.name : `play ${i + 1}`,
      hosts: typeof p.hosts === 'string' ? p.hosts : '',
      vars: (p.vars && typeof p.vars === 'object' ? p.vars : {}) as Record<string, unknown>,
      forks: typeof p.forks === 'number' ? p.forks : 10,
      serial: typeof p.serial === 'number' ? p.serial : undefined,
      steps: list('steps'),
      rescue: list('rescue'),
      always: list('always'),
    });
  });
  for (const play of plays) {
    // Hosts are resolved before any variable exists; narrowing belongs to --limit.
    if (play.hosts.includes('{{')) {
      problems.push(
        doc.problem(
          [...play.path, 'hosts'],
          'expected a host pattern without templates (narrow a run with --limit)',
        ),
      );
    }
  }
  const unchecked = checkNames(plays, doc, opts, problems, top.variables);
  if (top.variables)
    problems.push(
      ...declarationProblems(
        doc,
        top.variables,
        top.sound,
        plays,
        opts.extraVars ?? {},
        opts.inventory ? new Set(opts.inventory.hosts.keys()) : undefined,
      ),
    );
  if (opts.inventory) {
    checkHostPatterns(plays, doc, opts.inventory, problems);
    if (top.variables)
      problems.push(
        ...inventoryProblems(doc, top.sound, plays, opts.inventory, opts.extraVars ?? {}, opts.limit),
      );
  }
  // The playbook's problems in file order, then the inventory's.
  problems.sort(
    (a, b) => Number(a.file !== doc.file) - Number(b.file !== doc.file) || a.line - b.line || a.col - b.col,
  );
  if (problems.length > 0) return { problems, unchecked };
  const sha256 = createHash('sha256').update(doc.text).digest('hex');
  return {
    playbook: { file: doc.file, doc, sha256, plays, variables: top.variables },
    problems,
    unchecked,
  };
}

function parseList(
  items: unknown[],
  path: PathSeg[],
  address: string,
  doc: SourceDoc,
  out: Problem[],
): Node[] {
  const nodes: Node[] = [];
  items.forEach((item, i) => {
    const n = parseNode(item, [...path, i], `${address}.${i}`, doc, out);
    if (n) nodes.push(n);
  });
  return nodes;
}

function parseNode(
  raw: unknown,
  path: PathSeg[],
  address: string,
  doc: SourceDoc,
  out: Problem[],
): Node | undefined {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) {
    out.push(
      doc.problem(
        path,
        `expected a step (a mapping with one step type, e.g. shell: …), got ${describe(raw)}`,
      ),
    );
    return undefined;
  }
  const obj = raw as Record<string, unknown>;
  if ('block' in obj) {
    out.push(...schemaProblems(BlockSchema, obj, doc, path));
    const list = (k: string) =>
      Array.isArray(obj[k]) ? parseList(obj[k] as unknown[], [...path, k], `${address}.${k}`, doc, out) : [];
    return {
      kind: 'block',
      address,
      path,
      title: typeof obj.name === 'string' ? obj.name : 'block',
      when: typeof obj.when === 'string' ? obj.when : undefined,
      hosts: typeof obj.hosts === 'string' ? obj.hosts : undefined,
      block: list('block'),
      rescue: list('rescue'),
      always: list('always'),
    };
  }
  const typeKeys = Object.keys(obj).filter((k) => !COMMON_KEYS.includes(k));
  const common = Object.fromEntries(Object.entries(obj).filter(([k]) => COMMON_KEYS.includes(k)));
  out.push(...schemaProblems(CommonSchema, common, doc, path));
  if (typeKeys.length === 0) {
    out.push(doc.problem(path, `expected one step type key (${stepTypes.join(', ')}), found none`));
    return undefined;
  }
  const known = typeKeys.filter((k) => registry.has(k));
  for (const k of typeKeys.filter((k) => !registry.has(k))) {
    const hint = didYouMean(k, [...stepTypes, ...COMMON_KEYS]);
    const what = known.length > 0 ? `unknown key "${k}"${hint}` : `unknown step type "${k}"${hint}`;
    out.push(doc.problem([...path, k], what, { key: true }));
  }
  if (known.length > 1) {
    out.push(
      doc.problem(
        path,
        `a step has exactly one step type, found ${known.join(' and ')}; split it into separate steps`,
      ),
    );
    return undefined;
  }
  const type = known[0];
  if (!type) return undefined;
  const def = registry.get(type)!;
  let params = obj[type];
  if (params === null || params === undefined) params = {};
  if (def.shorthand && (typeof params === 'string' || Array.isArray(params)))
    params = { [def.shorthand]: params };
  out.push(...schemaProblems(def.params, params, doc, [...path, type], { allowTemplates: true }));
  return {
    kind: 'step',
    address,
    path,
    type,
    params,
    common,
    title: typeof common.name === 'string' ? common.name : type,
  };
}

/** Strings inside a value with their paths. */
function* strings(v: unknown, path: PathSeg[]): Generator<[string, PathSeg[]]> {
  if (typeof v === 'string') yield [v, path];
  else if (Array.isArray(v)) for (let i = 0; i < v.length; i++) yield* strings(v[i], [...path, i]);
  else if (v && typeof v === 'object')
    for (const [k, x] of Object.entries(v)) yield* strings(x, [...path, k]);
}

function checkNames(
  plays: Play[],
  doc: SourceDoc,
  opts: ValidateOptions,
  out: Problem[],
  declared?: Record<string, VariableDecl>,
): string[] {
  const unchecked = new Set<string>();
  // Where every id/register is defined, to tell "later" from "never".
  const definedAt = new Map<string, PathSeg[]>();
  const ids = new Map<string, PathSeg[]>();
  const factNames = new Set<string>();
  for (const play of plays) {
    for (const s of walk(playNodes(play))) {
      const id = s.common.id;
      if (typeof id === 'string') {
        const first = ids.get(id);
        if (first)
          out.push(
            doc.problem(
              [...s.path, 'id'],
              `duplicate step id "${id}" (first used at line ${doc.locate(first).line})`,
            ),
          );
        else ids.set(id, [...s.path, 'id']);
      }
      for (const key of ['id', 'register'] as const) {
        const name = s.common[key];
        if (typeof name !== 'string') continue;
        if (isReserved(name))
          out.push(
            doc.problem(
              [...s.path, key],
              reservedMessage(name, key === 'id' ? 'a step id' : 'a register name'),
            ),
          );
        if (!definedAt.has(name)) definedAt.set(name, [...s.path, key]);
      }
      if (registry.get(s.type)?.setsFacts && s.params && typeof s.params === 'object')
        for (const k of Object.keys(s.params)) {
          factNames.add(k);
          if (isReserved(k))
            out.push(
              doc.problem([...s.path, s.type, k], reservedMessage(k, 'a set_fact name'), { key: true }),
            );
        }
    }
    for (const k of Object.keys(play.vars))
      if (isReserved(k))
        out.push(
          doc.problem([...play.path, 'vars', k], reservedMessage(k, 'a play variable'), { key: true }),
        );
  }
  const inventoryVars = new Set<string>();
  if (opts.inventory)
    for (const h of opts.inventory.hosts.values()) for (const k of Object.keys(h.vars)) inventoryVars.add(k);
  // A playbook that declares its variables reads those alone from the inventory and -e.
  const known = new Set<string>(
    declared
      ? [...BUILTIN_NAMES, ...Object.keys(declared)]
      : [...BUILTIN_NAMES, ...Object.keys(opts.extraVars ?? {}), ...inventoryVars],
  );

  // The hint for a name, found once while the known names stay the same (they only grow):
  // a name used in every play must not cost a search of every id in the playbook each time.
  // The nearest candidate is kept per name and brought up to date with the names added since,
  // in the order didYouMean(root, [...known, ...definedAt.keys()]) would see them.
  const knownList = [...known];
  const addKnown = (k: string) => {
    if (known.has(k)) return;
    known.add(k);
    knownList.push(k);
  };
  type Best = { name: string; d: number } | undefined;
  const nearest = (root: string, names: Iterable<string>, best: Best): Best => {
    for (const name of names) {
      const d = distance(root, name);
      if (!best || d < best.d) best = { name, d };
    }
    return best;
  };
  const hints = new Map<string, { seen: number; known: Best; defined: Best }>();
  const hintFor = (root: string): string => {
    let c = hints.get(root);
    if (!c) {
      c = { seen: 0, known: undefined, defined: nearest(root, definedAt.keys(), undefined) };
      hints.set(root, c);
    }
    if (c.seen < knownList.length) {
      c.known = nearest(root, knownList.slice(c.seen), c.known);
      c.seen = knownList.length;
    }
    const best = !c.defined || (c.known && c.known.d <= c.defined.d) ? c.known : c.defined;
    return best ? typoHint(root, best.name) : '';
  };
  const check = (expr: string, path: PathSeg[], extra: readonly string[] = []) => {
    const bad = expressionProblems(expr, didYouMean);
    if (bad.length > 0) {
      for (const m of bad) out.push(doc.problem(path, m));
      return;
    }
    let refs: NameRef[];
    try {
      parseExpression(expr);
      refs = referencedNames(expr);
    } catch (err) {
      if (err instanceof ExpressionError) out.push(doc.problem(path, err.message));
      return;
    }
    for (const { root, optional } of refs) {
      // `x | default(…)` and `x is defined` read x too: declared playbooks declare those as well.
      if ((optional && !declared) || known.has(root) || extra.includes(root)) continue;
      const later = definedAt.get(root);
      if (later) {
        out.push(
          doc.problem(
            path,
            `"${root}" is used before it exists: it is registered by a later step (line ${doc.locate(later).line})`,
          ),
        );
        continue;
      }
      const hint = hintFor(root);
      if (declared)
        out.push(
          doc.problem(
            path,
            `"${root}" is not declared${hint}: declare it under variables: (type, description, required or default), or set it in the play's vars`,
          ),
        );
      else if (opts.inventory || hint) out.push(doc.problem(path, `undefined name "${root}"${hint}`));
      else unchecked.add(root);
    }
  };
  const checkTemplates = (v: unknown, path: PathSeg[]) => {
    for (const [s, p] of strings(v, path)) for (const e of templateExpressions(s)) check(e, p);
  };
  // An sh script: `| raw` is allowed, and every template must sit where it can be quoted.
  const checkShell = (script: string, path: PathSeg[], play: Play) => {
    for (const e of templateExpressions(script)) check(shellMode(e).expr, path);
    for (const p of shellTemplateProblems(script))
      out.push(doc.problemAt(path, script, p.index, p.text, p.message));
    for (const p of variableFlowProblems(script))
      out.push(doc.problemAt(path, script, p.index, p.text, p.message));
    if (isWholeTemplate(script)) {
      const { expr, mode } = shellMode(templateExpressions(script)[0]!);
      if (mode === 'quoted' && isStringExpr(expr, play, opts.extraVars ?? {}, definedAt, factNames))
        out.push(
          doc.problem(
            path,
            `a command from a variable must be an argv list, or marked | raw: {{ ${expr} }} is a string; write {{ ${expr} | raw }} to run it as shell code`,
          ),
        );
    }
  };

  for (const play of plays) {
    for (const k of Object.keys(play.vars)) addKnown(k);
    checkTemplates(play.vars, [...play.path, 'vars']);
    for (const { node: n } of walkNodes(playNodes(play))) {
      if (n.kind === 'block') {
        if (n.when) check(n.when, [...n.path, 'when']);
        continue;
      }
      const def = registry.get(n.type)!;
      const params = (n.params ?? {}) as Record<string, unknown>;
      for (const [k, v] of Object.entries(params)) {
        const p = [...n.path, n.type, k];
        if (def.rawParams?.includes(k)) for (const [s, sp] of strings(v, p)) check(s, sp);
        else if (def.shellParams?.includes(k) && typeof v === 'string') checkShell(v, p, play);
        else {
          checkTemplates(v, p);
          // An argv list is quoted element by element, but a `sh -c` element is code again.
          if (def.shellParams?.includes(k) && Array.isArray(v))
            for (const a of argvTemplateProblems(v)) out.push(doc.problem([...p, a.element], a.message));
        }
      }
      if (def.shellInputs)
        for (const p of shellInputProblems({ commands: def.shellParams ?? [], ...def.shellInputs }, params))
          out.push(doc.problem([...n.path, n.type, ...p.path], p.message));
      if (typeof n.common.when === 'string') check(n.common.when, [...n.path, 'when']);
      if (typeof n.common.until === 'string') check(n.common.until, [...n.path, 'until'], ['result']);
      if (typeof n.common.confirm === 'string') checkTemplates(n.common.confirm, [...n.path, 'confirm']);
      if (typeof n.common.name === 'string') checkTemplates(n.common.name, [...n.path, 'name']);
      for (const key of ['id', 'register'] as const)
        if (typeof n.common[key] === 'string') addKnown(n.common[key]);
      if (def.setsFacts) for (const k of Object.keys(params)) addKnown(k);
    }
  }
  return [...unchecked].sort();
}

function isReserved(name: string): boolean {
  return (RESERVED_NAMES as readonly string[]).includes(name);
}

function reservedMessage(name: string, what: string): string {
  return `"${name}" cannot be ${what}: ${RESERVED_NAMES.join(', ')} are reserved (set by pgrunbook); choose another name`;
}

const STRING_FILTERS = new Set(['string', 'lower', 'upper', 'trim', 'join', 'json', 'replace']);

/** Whether an expression surely evaluates to a string (a literal, a string filter, a string var). */
function isStringExpr(
  expr: string,
  play: Play,
  extraVars: Record<string, unknown>,
  registered: Map<string, unknown>,
  facts: Set<string>,
): boolean {
  let ast: ReturnType<typeof parseExpression>;
  try {
    ast = parseExpression(expr);
  } catch {
    return false;
  }
  if (ast.type === 'Literal') return typeof ast.value === 'string';
  if (ast.type === 'BinaryExpression' && ast.operator === '|') {
    const f = ast.right as { type: string; name?: string; callee?: { name?: string } };
    const name = f.type === 'Identifier' ? f.name : f.callee?.name;
    return STRING_FILTERS.has(name ?? '');
  }
  if (ast.type !== 'Identifier') return false;
  const name = ast.name as string;
  if (Object.hasOwn(extraVars, name)) return typeof extraVars[name] === 'string';
  if (registered.has(name) || facts.has(name) || !Object.hasOwn(play.vars, name)) return false;
  const v = play.vars[name];
  return typeof v === 'string' && !isWholeTemplate(v);
}

function checkHostPatterns(plays: Play[], doc: SourceDoc, inventory: Inventory, out: Problem[]): void {
  const checkPattern = (pattern: string, path: PathSeg[]) => {
    const m = matchHosts(inventory, pattern);
    for (const t of m.unmatched) {
      const hint = didYouMean(t, [...inventory.hosts.keys(), ...inventory.groups.keys()]);
      out.push(doc.problem(path, `host pattern "${t}" matches no host or group in ${inventory.file}${hint}`));
    }
  };
  for (const play of plays) {
    if (play.hosts && !play.hosts.includes('{{')) checkPattern(play.hosts, [...play.path, 'hosts']);
    for (const { node: n } of walkNodes(playNodes(play))) {
      const hosts = n.kind === 'step' ? n.common.hosts : n.hosts;
      if (typeof hosts === 'string') checkPattern(hosts, [...n.path, 'hosts']);
    }
  }
}

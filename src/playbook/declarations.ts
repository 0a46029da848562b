// Reading and checking `variables:` declarations: the playbook's own (a default of the wrong type,
// an unknown -e), and against an inventory (a required variable a host lacks, a value of the wrong
// type), each reported where it is declared and where the inventory sets it (or should).
import { Value } from '@sinclair/typebox/value';
import type { Problem } from '../errors.js';
import type { Inventory } from '../inventory/inventory.js';
import { matchHosts } from '../inventory/patterns.js';
import { didYouMean, schemaProblems } from '../util/schema-errors.js';
import { isTemplate } from './expressions.js';
import type { PathSeg, SourceDoc } from './load.js';
import { BUILTIN_NAMES, type Play, RESERVED_NAMES } from './model.js';
import { typeProblem, type VariableDecl, VariableDeclSchema, VariablesSchema } from './variables.js';

/** The file's plays (a list, or `plays:` of a mapping) and its declarations, if any. */
export function parseDeclarations(
  doc: SourceDoc,
  out: Problem[],
): {
  plays: unknown;
  playsPath: PathSeg[];
  variables?: Record<string, VariableDecl>;
  /** only these declarations passed their schema, and are checked against -e and an inventory */
  sound: Record<string, VariableDecl>;
} {
  const root = doc.value;
  if (!root || typeof root !== 'object' || Array.isArray(root))
    return { plays: root, playsPath: [], sound: {} };
  const m = root as Record<string, unknown>;
  for (const k of Object.keys(m))
    if (k !== 'variables' && k !== 'plays')
      out.push(
        doc.problem(
          [k],
          `unknown key "${k}"${didYouMean(k, ['variables', 'plays'])}: a playbook is a list of plays, or a mapping of variables: and plays:`,
          { key: true },
        ),
      );
  if (!('plays' in m)) out.push(doc.problem([], 'expected plays: (the list of plays) beside variables:'));
  let variables: Record<string, VariableDecl> | undefined;
  const sound: Record<string, VariableDecl> = {};
  if ('variables' in m) {
    const bad = schemaProblems(VariablesSchema, m.variables ?? {}, doc, ['variables']);
    out.push(...bad);
    // The names count as declared even when a declaration is malformed (its problem is reported):
    // their uses are not reported again as undeclared.
    variables = (
      m.variables && typeof m.variables === 'object' && !Array.isArray(m.variables) ? m.variables : {}
    ) as Record<string, VariableDecl>;
    // A malformed declaration has its problem; the checks below would misread it.
    for (const [k, d] of Object.entries(variables))
      if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(k) && Value.Check(VariableDeclSchema, d)) sound[k] = d;
  }
  return { plays: m.plays, playsPath: ['plays'], variables, sound };
}

/** What is wrong with the declarations themselves, and -e variables nobody declared. */
export function declarationProblems(
  doc: SourceDoc,
  decls: Record<string, VariableDecl>,
  sound: Record<string, VariableDecl>,
  plays: Play[],
  extraVars: Record<string, unknown>,
  hostNames?: ReadonlySet<string>,
): Problem[] {
  const out: Problem[] = [];
  const playVars = new Set(plays.flatMap((p) => Object.keys(p.vars)));
  for (const [name, d] of Object.entries(sound)) {
    const at: PathSeg[] = ['variables', name];
    if (
      (RESERVED_NAMES as readonly string[]).includes(name) ||
      (BUILTIN_NAMES as readonly string[]).includes(name)
    )
      out.push(doc.problem(at, `"${name}" is set by pgrunbook and cannot be declared`, { key: true }));
    if (playVars.has(name))
      out.push(
        doc.problem(
          at,
          `"${name}" is also a play variable, which would hide the inventory's and -e's value: rename one`,
          { key: true },
        ),
      );
    if (d.required && d.default !== undefined)
      out.push(
        doc.problem([...at, 'required'], 'a variable with a default is not required: drop one of them'),
      );
    if (d.default !== undefined && !(typeof d.default === 'string' && isTemplate(d.default))) {
      const bad = typeProblem(d, d.default);
      if (bad) out.push(doc.problem([...at, 'default'], `the default does not fit the declaration: ${bad}`));
    }
    if (d.choices)
      for (const [i, c] of d.choices.entries()) {
        const bad = typeProblem({ type: d.type }, c);
        if (bad) out.push(doc.problem([...at, 'choices', i], `a choice does not fit the type: ${bad}`));
      }
  }
  // A typo in -e would otherwise be ignored, and the default used.
  for (const [k, v] of Object.entries(extraVars)) {
    // Own keys only: `-e constructor=…` is not declared by Object's prototype.
    const declared = Object.hasOwn(decls, k);
    if (!declared && playVars.has(k)) continue; // -e overrides a play variable: allowed, as ever
    if (!declared) {
      out.push(
        doc.problem(
          ['variables'],
          `-e ${k}: the playbook declares no variable "${k}"${didYouMean(k, Object.keys(decls))}`,
          { key: true },
        ),
      );
      continue;
    }
    const sd = Object.hasOwn(sound, k) ? sound[k] : undefined;
    const bad = !sd || (typeof v === 'string' && isTemplate(v)) ? undefined : typeProblem(sd, v, hostNames);
    if (bad) out.push(doc.problem(['variables', k], `-e ${k}: ${bad}`, { key: true }));
  }
  return out;
}

/** Up to this many hosts are named per problem, and as many problems made in the inventory. */
const MAX_HOSTS_NAMED = 5;

/**
 * Each declared variable on every host it applies to: a required one missing, or a value of the
 * wrong type, reported at the declaration and in the inventory (the host, or the value).
 */
export function inventoryProblems(
  doc: SourceDoc,
  decls: Record<string, VariableDecl>,
  plays: Play[],
  inventory: Inventory,
  extraVars: Record<string, unknown>,
  limit?: string,
): Problem[] {
  const out: Problem[] = [];
  // The hosts the run works on: every play's, narrowed by --limit.
  const allowed = limit ? new Set(matchHosts(inventory, limit).hosts) : undefined;
  const runsOn = new Set(
    plays.flatMap((p) => matchHosts(inventory, p.hosts).hosts).filter((h) => !allowed || allowed.has(h)),
  );
  const hostNames = new Set(inventory.hosts.keys());
  const named = (hs: string[]) =>
    hs.length > MAX_HOSTS_NAMED
      ? `${hs.slice(0, MAX_HOSTS_NAMED).join(', ')} and ${hs.length - MAX_HOSTS_NAMED} more`
      : hs.join(', ');
  for (const [name, d] of Object.entries(decls)) {
    if (!d || typeof d !== 'object') continue;
    const at: PathSeg[] = ['variables', name];
    const matched = d.hosts ? matchHosts(inventory, d.hosts) : undefined;
    // A typo there would quietly make a required variable required nowhere.
    for (const t of matched?.unmatched ?? [])
      out.push(
        doc.problem(
          [...at, 'hosts'],
          `host pattern "${t}" matches no host or group in ${inventory.file}${didYouMean(t, [...inventory.hosts.keys(), ...inventory.groups.keys()])}`,
        ),
      );
    const where = matched ? new Set(matched.hosts) : undefined;
    const hosts = [...runsOn].filter((h) => !where || where.has(h));
    if (Object.hasOwn(extraVars, name)) continue; // -e: one value, checked with the declarations
    const missing: string[] = [];
    const wrong: { host: string; why: string }[] = [];
    for (const h of hosts) {
      const vars = inventory.hosts.get(h)!.vars;
      // A null (`name:` with nothing after it) is a value: it would hide the default.
      if (!Object.hasOwn(vars, name)) {
        if (d.required) missing.push(h);
        continue;
      }
      const v = vars[name];
      if (typeof v === 'string' && isTemplate(v)) continue;
      const why = typeProblem(d, v, hostNames);
      if (why) wrong.push({ host: h, why });
    }
    const what = `"${name}" (${d.description})`;
    // Set on no host: a value for the run (-e), not an inventory's omission on some hosts.
    if (missing.length && missing.length === hosts.length) {
      out.push(
        doc.problem(
          at,
          `required variable ${what} is not set: give -e ${name}=VALUE, or set it in ${inventory.file}'s vars (of the hosts, a group, or all)`,
          { key: true },
        ),
      );
    } else if (missing.length) {
      out.push(
        doc.problem(
          at,
          `required variable ${what} is not set for ${named(missing)} in ${inventory.file}: set it in the inventory's vars (of the host, a group, or all) or give -e ${name}=VALUE`,
          { key: true },
        ),
      );
      for (const h of missing.slice(0, MAX_HOSTS_NAMED))
        out.push(
          inventory.doc.problem(
            ['hosts', h],
            `host ${h} has no "${name}", which ${doc.file} requires (declared at line ${doc.locate(at).line}): ${d.description}`,
            { key: true },
          ),
        );
    }
    if (wrong.length) {
      out.push(
        doc.problem(
          at,
          `${what} has a value of the wrong type for ${named(wrong.map((w) => w.host))} in ${inventory.file}: ${wrong[0]!.why}`,
          { key: true },
        ),
      );
      const seen = new Set<string>();
      for (const w of wrong) {
        const path = valuePath(inventory, w.host, name);
        const key = path.join('\u0000');
        if (seen.has(key) || seen.size >= MAX_HOSTS_NAMED) continue;
        seen.add(key);
        out.push(
          inventory.doc.problem(
            path,
            `${name}: ${w.why} (${doc.file} declares it ${d.type}${d.choices ? ` of ${d.choices.join(', ')}` : ''} at line ${doc.locate(at).line})`,
          ),
        );
      }
    }
  }
  return out;
}

/** Where the inventory sets a host's variable: the host's vars, else a group's, else the top vars. */
function valuePath(inventory: Inventory, host: string, name: string): PathSeg[] {
  const raw = (inventory.doc.value ?? {}) as {
    hosts?: Record<string, { vars?: Record<string, unknown> } | null>;
    groups?: Record<string, { vars?: Record<string, unknown> } | null>;
  };
  if (raw.hosts?.[host]?.vars && Object.hasOwn(raw.hosts[host]!.vars!, name))
    return ['hosts', host, 'vars', name];
  // The group whose value the host got: the last in vars order that sets it (children last).
  const mine = new Set(inventory.hosts.get(host)?.groups ?? []);
  let found: string | undefined;
  for (const [g, def] of Object.entries(raw.groups ?? {}))
    if (mine.has(g) && def?.vars && Object.hasOwn(def.vars, name)) found = g;
  if (found) return ['groups', found, 'vars', name];
  return ['vars', name];
}

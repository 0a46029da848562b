// Host patterns, Ansible-shaped: `all`, names, groups, globs, `a:b` union, `a:&b` and `a:!b`.
import { DYNAMIC_GROUPS, type Inventory, PGBOUNCERS } from './inventory.js';

/** Result of matching a pattern: hosts in inventory order, and the terms that matched nothing. */
export interface PatternMatch {
  hosts: string[];
  unmatched: string[];
  /** Dynamic groups named but not resolved yet: their candidates (hosts with Patroni) stand in. */
  unresolved: string[];
}

function globToRegExp(glob: string): RegExp {
  return new RegExp(
    `^${glob
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
  );
}

// Results per inventory and pattern, while its groups stay as they are (the dynamic groups are
// entered anew when resolved): a plan matches the same few patterns for every play and step, and
// each match walks every host.
const memo = new WeakMap<Inventory, { dynamic: Inventory['dynamic']; results: Map<string, PatternMatch> }>();

/** Resolves `pattern` against the inventory. */
export function matchHosts(inventory: Inventory, pattern: string): PatternMatch {
  let m = memo.get(inventory);
  if (!m || m.dynamic !== inventory.dynamic) {
    m = { dynamic: inventory.dynamic, results: new Map() };
    memo.set(inventory, m);
  }
  let r = m.results.get(pattern);
  if (!r) {
    r = match(inventory, pattern);
    m.results.set(pattern, r);
  }
  // Copies: callers may narrow or extend what they get.
  return { hosts: [...r.hosts], unmatched: [...r.unmatched], unresolved: [...r.unresolved] };
}

function match(inventory: Inventory, pattern: string): PatternMatch {
  const all = [...inventory.hosts.keys()];
  const unresolved: string[] = [];
  const termHosts = (term: string): string[] => {
    if (term === 'all' || term === '*') return all;
    if (inventory.groups.has(term)) return inventory.groups.get(term)!;
    if (DYNAMIC_GROUPS.includes(term)) {
      unresolved.push(term);
      return all.filter((h) => inventory.hosts.get(h)!.patroni);
    }
    if (inventory.hosts.has(term)) return [term];
    if (/[*?]/.test(term)) {
      const re = globToRegExp(term);
      const groupHits = new Set([...inventory.groups].filter(([g]) => re.test(g)).flatMap(([, hs]) => hs));
      return all.filter((h) => re.test(h) || groupHits.has(h));
    }
    return [];
  };
  let selected = new Set<string>();
  const unmatched: string[] = [];
  const terms = pattern
    .split(/[,:]/)
    .map((t) => t.trim())
    .filter(Boolean);
  for (const t of terms) {
    const op = t[0] === '!' || t[0] === '&' ? t[0] : '';
    const name = op ? t.slice(1) : t;
    const hs = termHosts(name);
    const dynamic = DYNAMIC_GROUPS.includes(name);
    // Excluding a dynamic group that holds no host (no Patroni here) is no mistake, nor is naming
    // the derived `pgbouncers` of an inventory without PgBouncer (the upgrade pauses none).
    if (hs.length === 0 && !(op === '!' && dynamic) && name !== PGBOUNCERS) unmatched.push(name);
    // Unresolved, a dynamic group stands for every host it may turn out to hold: excluding it
    // then excludes nothing, so the plan shows every host the run may select (a superset).
    if (op === '!' && dynamic && !inventory.groups.has(name)) continue;
    // A set: `all:!db*` on thousands of hosts must not compare every host with every other.
    const hit = new Set(hs);
    if (op === '!') selected = new Set([...selected].filter((h) => !hit.has(h)));
    else if (op === '&') selected = new Set([...selected].filter((h) => hit.has(h)));
    else for (const h of hs) selected.add(h);
  }
  return { hosts: all.filter((h) => selected.has(h)), unmatched, unresolved };
}

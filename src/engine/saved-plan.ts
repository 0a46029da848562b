// Saved plans: `plan --out PLAN.json` writes the plan with a digest of everything it was built
// from (playbook, inventory, -e, --limit, and the facts asked from the cluster); `run --plan`
// runs it only if all of that is still the same, and names what changed otherwise. A reviewer's
// approval of the Markdown (which shows the digest) and the run are tied together.
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { PgrunbookError, UsageError } from '../errors.js';
import type { PatroniGroups } from '../inventory/inventory.js';
import { FileReadError, readRegularText } from '../util/read-file.js';
import type { Plan } from './model.js';
import type { EngineInputs } from './pass.js';

/** `run --plan` refused: what the plan was built from has changed (exit 2, nothing ran). */
export class PlanChangedError extends PgrunbookError {
  override name = 'PlanChangedError';
}

/** What a plan was built from; each part is compared on its own so a refusal can name it. */
export interface PlanBasis {
  /** sha256 of the playbook file's bytes */
  playbook: string;
  /** sha256 of the inventory file's bytes */
  inventory: string;
  /** -e variables, as given */
  extraVars: Record<string, unknown>;
  limit: string | null;
  /** patroni_leader / patroni_replicas the plan was built on (asked, or assumed with --assume-leader) */
  groups: Record<string, string[]> | null;
  /** PostgreSQL facts per host from --check: version and role */
  pg: Record<string, { versionNum: number; inRecovery: boolean }> | null;
}

/** The file `plan --out` writes. */
export interface SavedPlan {
  format: 'pgrunbook-plan/1';
  digest: string;
  created_at: string;
  playbook: string;
  inventory: string;
  /** how the facts were learned: offline, --assume-leader, or --check */
  facts: 'offline' | 'assumed' | 'checked';
  basis: PlanBasis;
  plan: Plan;
}

/** JSON with keys sorted at every level: the same value always hashes the same. */
export function canonical(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (v && typeof v === 'object')
    return `{${Object.keys(v)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`)
      .join(',')}}`;
  return JSON.stringify(v ?? null);
}

const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

/** What the plan on these inputs and facts was built from. */
export function basisOf(inputs: EngineInputs, groups: PatroniGroups | undefined, plan: Plan): PlanBasis {
  const pg = Object.fromEntries(
    Object.entries(plan.facts)
      .filter(([, f]) => f.pg)
      .map(([h, f]) => [h, { versionNum: f.pg!.versionNum, inRecovery: f.pg!.inRecovery }]),
  );
  return {
    playbook: inputs.playbook.sha256,
    inventory: sha256(inputs.inventory.doc.text),
    extraVars: inputs.extraVars,
    limit: inputs.limit ?? null,
    groups: (groups ?? inputs.inventory.dynamic)?.groups ?? null,
    pg: plan.checked ? pg : null,
  };
}

/** `sha256:` of the canonical basis: the plan's identity, shown in every rendering. */
export function digestOf(basis: PlanBasis): string {
  return `sha256:${sha256(canonical(basis))}`;
}

/** Writes the saved plan (mode 0600: -e values are in it). */
export function writeSavedPlan(path: string, saved: SavedPlan): void {
  writeFileSync(path, `${JSON.stringify(saved, null, 2)}\n`, { mode: 0o600 });
}

/** Reads a saved plan; a file that is not one is a usage error naming it. */
export function readSavedPlan(path: string): SavedPlan {
  let text: string;
  try {
    text = readRegularText(path, 256 * 1024 * 1024);
  } catch (err) {
    if (!(err instanceof FileReadError)) throw err;
    throw new UsageError(`--plan ${path}: ${err.reason}`);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`--plan ${path}: not JSON (${(err as Error).message})`);
  }
  const s = v as Partial<SavedPlan>;
  if (!s || s.format !== 'pgrunbook-plan/1' || typeof s.digest !== 'string' || !s.basis || !s.playbook)
    throw new UsageError(
      `--plan ${path}: not a plan written by "pgrunbook plan --out" (format pgrunbook-plan/1)`,
    );
  if (digestOf(s.basis) !== s.digest)
    throw new UsageError(`--plan ${path}: its digest does not match its contents (edited by hand?)`);
  return { ...s, playbook: resolve(s.playbook), inventory: resolve(s.inventory ?? '') } as SavedPlan;
}

/** What differs between the saved basis and the one just computed, one line each. */
export function basisChanges(saved: PlanBasis, now: PlanBasis): string[] {
  const out: string[] = [];
  if (saved.playbook !== now.playbook)
    out.push(`the playbook changed (sha256 ${saved.playbook.slice(0, 12)} → ${now.playbook.slice(0, 12)})`);
  if (saved.inventory !== now.inventory)
    out.push(
      `the inventory changed (sha256 ${saved.inventory.slice(0, 12)} → ${now.inventory.slice(0, 12)})`,
    );
  const keys = new Set([...Object.keys(saved.extraVars), ...Object.keys(now.extraVars)]);
  for (const k of [...keys].sort())
    if (canonical(saved.extraVars[k]) !== canonical(now.extraVars[k]))
      out.push(`-e ${k}: planned ${show(saved.extraVars[k])}, now ${show(now.extraVars[k])}`);
  if (saved.limit !== now.limit)
    out.push(`--limit: planned ${saved.limit ?? '(none)'}, now ${now.limit ?? '(none)'}`);
  if (canonical(saved.groups) !== canonical(now.groups)) {
    for (const g of new Set([...Object.keys(saved.groups ?? {}), ...Object.keys(now.groups ?? {})]))
      if (canonical(saved.groups?.[g]) !== canonical(now.groups?.[g]))
        out.push(
          `${g}: planned ${(saved.groups?.[g] ?? []).join(', ') || '(none)'}, Patroni says ${(now.groups?.[g] ?? []).join(', ') || '(none)'} now (a switchover or failover since the plan?)`,
        );
  }
  if (saved.pg && canonical(saved.pg) !== canonical(now.pg)) {
    for (const h of new Set([...Object.keys(saved.pg), ...Object.keys(now.pg ?? {})])) {
      const [a, b] = [saved.pg[h], now.pg?.[h]];
      if (canonical(a) !== canonical(b)) out.push(`${h}: planned ${pgText(a)}, now ${pgText(b)}`);
    }
  }
  return out;
}

function show(v: unknown): string {
  return v === undefined ? '(not given)' : JSON.stringify(v);
}

function pgText(f: { versionNum: number; inRecovery: boolean } | undefined): string {
  return f ? `PostgreSQL ${f.versionNum} ${f.inRecovery ? 'standby' : 'primary'}` : '(not asked)';
}

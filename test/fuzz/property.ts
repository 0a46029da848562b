// The property `validate -i` and `run` must hold together, checked on one mutant through the real
// commands in this process (src/cli/dispatch.ts, the same code the CLI runs):
//   - validate accepts ⇒ the run never fails on rendering a value the plan knew before apply;
//   - validate rejects ⇒ run exits 2 and executes nothing (no journal, no file, no connection);
//   - neither command crashes (exit 70).
// Runs that would reach servers are never started: only mutants of seeds whose every host is
// local and whose steps need no server are run when validate accepts them; rejected mutants of
// the others are run (they must stop before connecting) with every address in their inventory
// turned into a closed loopback port first, so even a broken promise sends nothing off the machine.
import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { prepare } from '../../src/engine/engine.js';
import { type HostStepPlan, type Plan, playSteps } from '../../src/engine/model.js';
import { loadInventory } from '../../src/inventory/inventory.js';
import { loadPlaybook } from '../../src/playbook/validate.js';
import { registry } from '../../src/steps/registry.js';
import { command } from './in-process.js';
import { extraVarArgs, type Mutant, writeMutant } from './mutants.js';

/** A broken promise, with what is needed to reproduce it. */
export interface Finding {
  id: string;
  problem: string;
}

/** Every address of an inventory turned into a closed port on the loopback (see the header). */
export function loopbackOnly(inventory: string): string {
  return inventory
    .replace(/\b(?!127\.)\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b/g, '127.0.0.1')
    .replace(/(https?:\/\/)[^/:"'\s]+(:\d+)?/g, '$1127.0.0.1:9')
    .replace(/(\bhost:\s*)(?!127\.0\.0\.1\b)[A-Za-z][\w.-]*/g, '$1127.0.0.1');
}

/** The plan of a step on a host, by address. */
function planned(plan: Plan, address: string, host: string): HostStepPlan | undefined {
  for (const p of plan.plays)
    for (const { step } of playSteps(p))
      if (step.address === address) return step.hosts.find((h) => h.host === host);
  return undefined;
}

/** The offline plan, as validate builds it, for telling knowable values from run-time ones. */
async function offlinePlan(files: { playbook: string; inventory: string }, m: Mutant): Promise<Plan> {
  const inv = loadInventory(files.inventory);
  const pb = loadPlaybook(files.playbook, { inventory: inv.inventory, extraVars: m.extraVars });
  const { plan } = await prepare(
    { playbook: pb.playbook!, inventory: inv.inventory!, steps: registry, extraVars: m.extraVars },
    { mode: 'offline' },
  );
  return plan;
}

/** What happened to one mutant: the exit codes, what the run left in its directory, findings. */
export interface Checked {
  findings: Finding[];
  validate: number;
  /** the run's exit code; undefined when it was not run (accepted, needs servers) */
  run?: number;
  /** files the run left in its empty working directory (a journal means it started) */
  left: string[];
  /** steps the run finished ok */
  stepsOk: number;
}

/** Checks the property on one mutant in `dir` (created); `runnable`: its seed runs without servers. */
export async function checkMutant(m: Mutant, dir: string, runnable: boolean): Promise<Checked> {
  const findings: Finding[] = [];
  const found = (problem: string) => findings.push({ id: m.id, problem });
  const safe = runnable ? m : { ...m, inventory: loopbackOnly(m.inventory) };
  const files = writeMutant(join(dir, 'in'), safe);
  const args = [files.playbook, '-i', files.inventory, ...extraVarArgs(m.extraVars)];
  const v = await command(['validate', ...args], dir);
  if (v.code === 70) found(`validate crashed (exit 70): ${v.stderr.split('\n').slice(0, 3).join(' ')}`);
  if (v.code === 0 && !runnable) return { findings, validate: v.code, left: [], stepsOk: 0 };
  if (v.code !== 0 && v.code !== 2) found(`validate exited ${v.code}`);
  const cwd = join(dir, 'cwd');
  mkdirSync(cwd, { recursive: true });
  const r = await command(['run', ...args, '--yes', '--output', 'json'], cwd);
  if (r.code === 70) found(`run crashed (exit 70): ${r.stderr.split('\n').slice(0, 3).join(' ')}`);
  const left = readdirSync(cwd);
  const result = { findings, validate: v.code, run: r.code, left, stepsOk: 0 };
  if (v.code === 2) {
    if (r.code !== 2) found(`validate exited 2 but run exited ${r.code}`);
    if (left.length > 0) found(`validate exited 2 but run left ${left.join(', ')} behind (it executed)`);
    return result;
  }
  // Accepted: a step may fail (a seed's own `false`, an assert), but never on rendering a value
  // the plan had known: only values that were unknown before apply can fail to render in a run.
  const plan = await offlinePlan(files, m);
  for (const line of r.stdout.split('\n')) {
    if (!line.startsWith('{')) continue;
    const e = JSON.parse(line) as {
      type: string;
      status?: string;
      stage?: string;
      address: string;
      host: string;
      error?: string;
    };
    if (e.type === 'step_finished' && e.status === 'ok') result.stepsOk++;
    if (e.type !== 'step_finished' || e.stage !== 'render') continue;
    const p = planned(plan, e.address, e.host);
    const knowable = p && p.status !== 'conditional' && !(p.unknownParams?.length ?? 0);
    if (knowable)
      found(`run failed rendering ${e.address} on ${e.host}, which the plan knew (${p.status}): ${e.error}`);
  }
  return result;
}

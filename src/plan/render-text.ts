// The plan as a reviewer reads it in a terminal: per play, per step, per host, the exact operations.

import type { HostStepPlan, Plan, PlanBlock, PlanNode } from '../engine/model.js';
import { formatProblem } from '../errors.js';
import type { Operation, StepPlan } from '../steps/define.js';
import { redactValue } from '../util/secret.js';

/** One operation as text lines (no indentation). */
export function operationLines(op: Operation): string[] {
  switch (op.kind) {
    case 'command': {
      const lines = op.line.split('\n');
      const out = [`$ ${lines[0]}`, ...lines.slice(1).map((l) => `  ${l}`)];
      if (op.stdin !== undefined) out.push(`  (stdin: ${Buffer.byteLength(op.stdin)} bytes)`);
      return out;
    }
    case 'sql': {
      const out = op.sql
        .trim()
        .split('\n')
        .map((l, i) => (i === 0 ? `SQL: ${l}` : `     ${l}`));
      if (op.params?.length) out.push(`     params: ${JSON.stringify(op.params)}`);
      return out;
    }
    case 'http':
      return [`HTTP ${op.method} ${op.url}${op.body === undefined ? '' : ` ${JSON.stringify(op.body)}`}`];
    case 'wait':
      return [`wait up to ${op.timeoutSeconds}s until ${op.what}`];
    case 'note':
      return [op.text];
  }
}

/** A host's plan for a step as text lines; identical hosts are grouped by the caller. */
function hostLines(h: HostStepPlan): string[] {
  if (h.status === 'skipped') return [`skipped: when ${h.when} is false`];
  if (h.status === 'error') return [`ERROR: ${h.error}`];
  const p = h.plan as StepPlan;
  const out: string[] = [];
  if (h.status === 'conditional') out.push(`runs only if ${h.when} (known after apply)`);
  if (p.noop) out.push(`no-op: ${p.noop}`);
  out.push(`${p.action}:`);
  for (const op of p.ops) out.push(...operationLines(op).map((l) => `  ${l}`));
  if (p.undo) {
    out.push(`undo on failure: ${p.undo.action}`);
    for (const op of p.undo.ops) out.push(...operationLines(op).map((l) => `  ${l}`));
  }
  out.push(...previewLines(h));
  out.push(...(h.unchecked ?? []).map((u) => `not checked before the run: ${u}`));
  return out;
}

/** What `plan --check` learned from the host about this step (e.g. chef-client --why-run). */
export function previewLines(h: HostStepPlan): string[] {
  if (!h.preview) return [];
  if ('error' in h.preview) return [`preview: ${h.preview.error}`];
  return [
    `preview (asked the host, nothing changed): ${h.preview.summary}`,
    ...h.preview.lines.map((l) => `  ${l}`),
  ];
}

/** Hosts whose plan text is identical, grouped, in first-seen order. */
export function groupHosts(hosts: HostStepPlan[]): { hosts: string[]; lines: string[] }[] {
  const groups: { hosts: string[]; lines: string[] }[] = [];
  for (const h of hosts) {
    const lines = hostLines(h);
    const key = lines.join('\n');
    const g = groups.find((x) => x.lines.join('\n') === key);
    if (g) g.hosts.push(h.host);
    else groups.push({ hosts: [h.host], lines });
  }
  return groups;
}

function stepHeader(n: Extract<PlanNode, { kind: 'step' }>): string {
  const tags: string[] = [n.type];
  if (n.pointOfNoReturn) tags.push('POINT OF NO RETURN');
  if (n.downtime) tags.push('downtime');
  if (n.confirm) tags.push('needs approval');
  if (n.rawShell) tags.push('| raw: values run as shell code');
  if (n.requiresLeader) tags.push('only while this host is the Patroni leader');
  if (n.retries) tags.push(`retries ${n.retries}`);
  if (n.timeout) tags.push(`timeout ${n.timeout}s`);
  if (n.ignoreErrors) tags.push('errors ignored');
  if (n.mutating && n.undoMode === 'never') tags.push('undo: never');
  return `${n.title} [${tags.join(', ')}]`;
}

function nodeLines(nodes: PlanNode[], depth: number, out: string[], counter: { n: number }): void {
  const pad = '  '.repeat(depth);
  for (const n of nodes) {
    if (n.kind === 'block') {
      out.push(`${pad}block: ${n.title}${blockWhen(n)}`);
      nodeLines(n.block, depth + 1, out, counter);
      if (n.rescue.length) {
        out.push(`${pad}rescue (runs on hosts where the block failed):`);
        nodeLines(n.rescue, depth + 1, out, counter);
      }
      if (n.always.length) {
        out.push(`${pad}always:`);
        nodeLines(n.always, depth + 1, out, counter);
      }
      continue;
    }
    counter.n++;
    out.push(`${pad}${counter.n}. ${stepHeader(n)}`);
    if (n.confirm) out.push(`${pad}   approval: ${n.confirm}`);
    if (n.pointOfNoReturn)
      out.push(
        `${pad}   point of no return: steps before this one are undone automatically only if the run fails before it${typeof n.pointOfNoReturn === 'string' ? `; after it, recovery is ${n.pointOfNoReturn}` : ''}`,
      );
    if (n.recovery) out.push(`${pad}   once done, recovery from a failure is: ${n.recovery}`);
    for (const r of n.rawShell ?? [])
      out.push(`${pad}   | raw: ${r} goes into the script unquoted and runs as shell code`);
    if (n.requiresLeader)
      out.push(
        `${pad}   guard: GET /patroni and GET /cluster just before; refused if the host no longer leads`,
      );
    if (n.hosts.length === 0) out.push(`${pad}   (no hosts)`);
    for (const g of groupHosts(n.hosts)) {
      out.push(`${pad}   on ${g.hosts.join(', ')}:`);
      for (const l of g.lines) out.push(`${pad}     ${l}`);
    }
  }
}

/** The plan as plain text. */
export function renderPlanText(raw: Plan): string {
  // Values are masked before they are formatted (fenced, quoted, escaped), structure is kept:
  // scrubbing the formatted text again would mask a path segment that happens to equal a secret.
  const plan = redactValue(raw) as Plan;
  const out: string[] = [];
  out.push(
    `Plan for ${plan.playbook} with ${plan.inventory}${plan.checked ? ' (facts checked on the hosts)' : ' (offline: no connection made)'}`,
  );
  for (const [h, f] of Object.entries(plan.facts)) {
    if (f.pg)
      out.push(
        `  ${h}: PostgreSQL ${f.pg.version} (${f.pg.versionNum}), ${f.pg.inRecovery ? 'in recovery (standby)' : 'primary'}`,
      );
  }
  for (const l of plan.dynamicGroups?.lines ?? []) out.push(`  ${l}`);
  if (plan.digest) out.push(`  plan digest: ${plan.digest}`);
  plan.plays.forEach((play, i) => {
    out.push('');
    out.push(`PLAY ${i + 1}: ${play.name}`);
    out.push(
      `  hosts: ${play.pattern}${plan.limit ? ` (--limit ${plan.limit})` : ''} → ${play.hosts.join(', ') || '(none)'}${play.batches.length > 1 ? `  (${play.batches.length} batches: ${play.batches.map((b) => b.join(',')).join(' | ')})` : ''}`,
    );
    const counter = { n: 0 };
    nodeLines(play.steps, 1, out, counter);
    if (play.rescue.length) {
      out.push('  rescue (runs if the play fails):');
      nodeLines(play.rescue, 2, out, counter);
    }
    if (play.always.length) {
      out.push('  always (runs at the end, also after a failure or Ctrl-C):');
      nodeLines(play.always, 2, out, counter);
    }
  });
  if (plan.problems.length) {
    out.push('', 'PROBLEMS:');
    for (const p of plan.problems) out.push(`  ${formatProblem(p)}`);
  }
  return `${out.join('\n')}\n`;
}

/** A block's `when`, and the hosts where it is already known to be false. */
export function blockWhen(b: PlanBlock): string {
  if (!b.when) return '';
  return ` (when ${b.when}${b.skippedHosts?.length ? `; false on ${b.skippedHosts.join(', ')}` : ''})`;
}

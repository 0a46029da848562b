// The plan as a change-request checklist: one checkbox per step and host, ready to paste in an issue.

import { type Plan, type PlanNode, playSteps } from '../engine/model.js';
import { formatProblem } from '../errors.js';
import { redactValue } from '../util/secret.js';
import { blockWhen, groupHosts } from './render-text.js';

function fence(lines: string[]): string[] {
  const body = lines.join('\n');
  const ticks = body.includes('```') ? '````' : '```';
  return [`${ticks}text`, ...lines, ticks];
}

/** A Markdown code span that survives backticks in `s` (CommonMark: a longer backtick run). */
function codeSpan(s: string): string {
  const longest = Math.max(0, ...[...s.matchAll(/`+/g)].map((m) => m[0].length));
  const ticks = '`'.repeat(longest + 1);
  return longest ? `${ticks} ${s} ${ticks}` : `${ticks}${s}${ticks}`;
}

function nodes(list: PlanNode[], out: string[], counter: { n: number }, prefix = ''): void {
  for (const n of list) {
    if (n.kind === 'block') {
      out.push(`${prefix}**Block: ${n.title}**${blockWhen(n)}`, '');
      nodes(n.block, out, counter, prefix);
      if (n.rescue.length) {
        out.push(`${prefix}*Rescue (only where the block failed):*`, '');
        nodes(n.rescue, out, counter, prefix);
      }
      if (n.always.length) {
        out.push(`${prefix}*Always:*`, '');
        nodes(n.always, out, counter, prefix);
      }
      continue;
    }
    counter.n++;
    const flags = [
      n.type,
      n.downtime ? 'downtime' : '',
      n.confirm ? 'needs approval' : '',
      n.rawShell ? '| raw' : '',
      n.requiresLeader ? 'requires leader' : '',
      n.mutating && n.undoMode === 'never' ? 'undo: never' : '',
    ]
      .filter(Boolean)
      .join(', ');
    out.push(`#### ${counter.n}. ${n.downtime ? '⏱ ' : ''}${n.title} (\`${flags}\`)`, '');
    if (n.pointOfNoReturn)
      out.push(
        `> **⚠ Point of no return.** A failure before this step undoes everything above automatically; from this step on nothing before it is undone${typeof n.pointOfNoReturn === 'string' ? `, and recovery is ${n.pointOfNoReturn}` : ''}.`,
        '',
      );
    if (n.confirm) out.push(`Approval asked: *${n.confirm}*`, '');
    if (n.rawShell)
      out.push(
        `> **⚠ Shell code from values (\`| raw\`).** These go into the script unquoted and run as shell code: ${n.rawShell.map(codeSpan).join(', ')}. The command each host runs is below.`,
        '',
      );
    if (n.recovery) out.push(`Once done, recovery from a failure is: ${n.recovery}`, '');
    for (const h of n.hosts) out.push(`- [ ] \`${h.host}\` — ${h.status === 'runs' ? 'done' : h.status}`);
    out.push('');
    for (const g of groupHosts(n.hosts)) {
      out.push(`On ${g.hosts.map((h) => `\`${h}\``).join(', ')}:`, '');
      out.push(...fence(g.lines), '');
    }
  }
}

/** The plan as GitHub/GitLab-flavoured Markdown. */
export function renderPlanMarkdown(raw: Plan): string {
  // Values are masked before they are formatted (fenced, quoted, escaped), structure is kept:
  // scrubbing the formatted text again would mask a path segment that happens to equal a secret.
  const plan = redactValue(raw) as Plan;
  const out: string[] = [];
  out.push(`## Change plan: \`${plan.playbook}\``, '');
  out.push(`- Inventory: \`${plan.inventory}\``);
  out.push(
    `- Facts: ${plan.checked ? 'checked read-only on the hosts' : 'offline plan, no connection made'}`,
  );
  for (const [h, f] of Object.entries(plan.facts)) {
    if (f.pg) out.push(`- \`${h}\`: PostgreSQL ${f.pg.version}, ${f.pg.inRecovery ? 'standby' : 'primary'}`);
  }
  for (const l of plan.dynamicGroups?.lines ?? []) out.push(`- ${l}`);
  if (plan.digest)
    out.push(
      `- Plan digest: \`${plan.digest}\` — \`pgrunbook run --plan\` of the saved plan refuses to run if it no longer matches`,
    );
  const marked = plan.plays.flatMap((p) => [...playSteps(p)].map((x) => x.step));
  const down = marked.filter((n) => n.downtime).length;
  if (down)
    out.push(
      `- Downtime: the ${down} step(s) marked ⏱ run while clients cannot write (writes stopped, or held by a paused PgBouncer)`,
    );
  const rawSteps = marked.filter((n) => n.rawShell).length;
  if (rawSteps)
    out.push(
      `- Shell code from values: the ${rawSteps} step(s) marked \`| raw\` run a value as shell code, unquoted`,
    );
  const ponr = marked.find((n) => n.pointOfNoReturn);
  if (ponr)
    out.push(
      `- Point of no return: "${ponr.title}"; before it a failure is undone automatically${typeof ponr.pointOfNoReturn === 'string' ? `, after it recovery is ${ponr.pointOfNoReturn}` : ''}`,
    );
  out.push('');
  plan.plays.forEach((play, i) => {
    out.push(`### Play ${i + 1}: ${play.name}`, '');
    out.push(
      `Hosts: \`${play.pattern}\`${plan.limit ? ` (--limit \`${plan.limit}\`)` : ''} → ${play.hosts.map((h) => `\`${h}\``).join(', ') || '(none)'}`,
      '',
    );
    const counter = { n: 0 };
    nodes(play.steps, out, counter);
    if (play.rescue.length) {
      out.push('**Rescue (if the play fails):**', '');
      nodes(play.rescue, out, counter);
    }
    if (play.always.length) {
      out.push('**Always (also after a failure or interruption):**', '');
      nodes(play.always, out, counter);
    }
  });
  if (plan.problems.length)
    out.push('### Problems', '', ...plan.problems.map((p) => `- ${formatProblem(p)}`), '');
  return `${out.join('\n')}\n`;
}

// `point_of_no_return:` and `downtime:` — the gate, what the plan shows, and what the real runner
// does around it (in process, local transport, shell steps whose `revert:` leaves a trace): before
// the point a failure unwinds as usual; past it nothing before it is undone and the summary names
// the recovery; without --yes and a terminal nothing runs at all.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCommand } from '../../../src/cli/commands/run.js';
import { confirmOf } from '../../../src/engine/gates.js';
import type { Plan, PlanNode } from '../../../src/engine/model.js';
import { formatProblem, PgrunbookError } from '../../../src/errors.js';
import { type Inventory, loadInventory } from '../../../src/inventory/inventory.js';
import { renderPlanMarkdown } from '../../../src/plan/render-markdown.js';
import { renderPlanText } from '../../../src/plan/render-text.js';
import { parseSource } from '../../../src/playbook/load.js';
import type { Playbook } from '../../../src/playbook/model.js';
import { validatePlaybook } from '../../../src/playbook/validate.js';
import { plainLines } from '../../../src/report/plain.js';
import { ConnectionPool } from '../../../src/runner/connections.js';
import { EventBus, type RunEvent } from '../../../src/runner/events.js';
import { Executor } from '../../../src/runner/executor.js';
import { registry } from '../../../src/steps/registry.js';
import { planOf } from '../helpers/plan.js';

const root = mkdtempSync(join(tmpdir(), 'pgrb-ponr-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const scratch = () => mkdtempSync(join(root, 'case-'));

const INV = 'hosts:\n  a: { transport: local }\n  b: { transport: local }\n';

function inventoryIn(dir: string): Inventory {
  writeFileSync(join(dir, 'inv.yml'), INV);
  const r = loadInventory(join(dir, 'inv.yml'));
  expect(r.problems.map(formatProblem)).toEqual([]);
  return r.inventory!;
}

function playbookOf(text: string, inventory: Inventory): Playbook {
  const { doc, problems } = parseSource('pb.yml', text);
  expect(problems).toEqual([]);
  const r = validatePlaybook(doc!, { inventory });
  expect(r.problems.map(formatProblem)).toEqual([]);
  return r.playbook!;
}

type Ev = RunEvent & { ts: string };

/**
 * Runs `steps` (YAML, indented for a play's steps) on host a through the real Executor. Each
 * shell step appends to LOG; `{{ log }}` is that file.
 */
async function run(steps: string, opts: { yes?: boolean; answer?: string; hosts?: string } = {}) {
  const dir = scratch();
  const log = join(dir, 'log');
  const inventory = inventoryIn(dir);
  const playbook = playbookOf(
    `- name: upgrade\n  hosts: ${opts.hosts ?? 'a'}\n  vars: { log: ${log} }\n  steps:\n${steps}`,
    inventory,
  );
  const bus = new EventBus();
  const ev: Ev[] = [];
  bus.subscribe((e) => ev.push(e));
  const asked: string[] = [];
  const plan = planOf(playbook, inventory);
  expect(plan.problems.map(formatProblem)).toEqual([]);
  const executor = new Executor({
    inputs: { playbook, inventory, steps: registry, extraVars: {} },
    plan,
    run: { id: 'test', started_at: new Date().toISOString(), check: false },
    bus,
    connections: new ConnectionPool(),
    prompter: {
      interactive: opts.answer !== undefined,
      ask: async (q) => {
        asked.push(q);
        return opts.answer ?? '';
      },
    },
    yes: opts.yes ?? true,
  });
  const outcome = await executor.execute();
  const finished = ev.find((e) => e.type === 'run_finished') as Extract<Ev, { type: 'run_finished' }>;
  const trace = existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n') : [];
  return { outcome, ev, summary: finished.summary, trace, asked, log };
}

/** A shell step that appends NAME (and undo-NAME when reverted) to the log. */
const step = (name: string, extra = '') =>
  `    - name: ${name}\n      shell: { cmd: "echo ${name} >> {{ log }}", revert: "echo undo-${name} >> {{ log }}" }\n${extra}`;
const failing = (name: string, extra = '') =>
  `    - name: ${name}\n      shell: "echo ${name} >> {{ log }}; exit 3"\n${extra}`;
const RECOVERY = 'playbooks/pg-major-upgrade-rollback.yml';
const ponr = (name: string, recovery = RECOVERY) =>
  step(name, `      point_of_no_return: ${recovery}\n      downtime: true\n`);

const types = (ev: Ev[]) => ev.map((e) => e.type);

describe('confirmOf with point_of_no_return', () => {
  const shell = registry.get('shell')!;
  const switchover = registry.get('patroni.switchover')!;

  it('true or a recovery text implies a gate naming the point of no return', () => {
    expect(confirmOf(shell, { point_of_no_return: true }, {})).toBe(
      'POINT OF NO RETURN: once this step starts, nothing before it is undone automatically. Proceed',
    );
    expect(confirmOf(shell, { point_of_no_return: RECOVERY }, {})).toBe(
      `POINT OF NO RETURN: once this step starts, nothing before it is undone automatically; a failure from here on is recovered by ${RECOVERY}. Proceed`,
    );
  });

  it('confirm: false or true does not lift or blur it; a confirm question comes first but cannot hide it; false means none', () => {
    expect(confirmOf(shell, { point_of_no_return: true, confirm: false }, {})).toMatch(/^POINT OF NO RETURN/);
    expect(confirmOf(shell, { point_of_no_return: true, confirm: true }, {})).toMatch(/^POINT OF NO RETURN/);
    expect(confirmOf(shell, { point_of_no_return: true, confirm: 'Cut over now?' }, {})).toMatch(
      /^Cut over now\. POINT OF NO RETURN: once this step starts/,
    );
    expect(confirmOf(shell, { point_of_no_return: false }, {})).toBeUndefined();
    // It also outranks a step type's own question.
    expect(confirmOf(switchover, { point_of_no_return: true }, { candidate: 'pg2' })).toMatch(
      /^POINT OF NO RETURN/,
    );
  });
});

describe('the plan shows the point of no return and the downtime steps', () => {
  const steps = (nodes: PlanNode[]): Extract<PlanNode, { kind: 'step' }>[] =>
    nodes.flatMap((n) =>
      n.kind === 'step' ? [n] : [...steps(n.block), ...steps(n.rescue), ...steps(n.always)],
    );
  let plan: Plan;

  it('as data', () => {
    const dir = scratch();
    const inventory = inventoryIn(dir);
    const pb = playbookOf(
      `- name: upgrade\n  hosts: a\n  vars: { log: /tmp/x }\n  steps:\n${step('snapshot')}${step('stop', '      downtime: true\n')}${ponr('sync')}${step('plain', '      point_of_no_return: true\n')}`,
      inventory,
    );
    plan = planOf(pb, inventory);
    expect(plan.problems).toEqual([]);
    const [snapshot, stop, sync, plain] = steps(plan.plays[0]!.steps);
    expect([snapshot!.downtime, snapshot!.pointOfNoReturn, snapshot!.confirm]).toEqual([
      undefined,
      undefined,
      undefined,
    ]);
    expect([stop!.downtime, stop!.pointOfNoReturn, stop!.confirm]).toEqual([true, undefined, undefined]);
    expect(sync!.downtime).toBe(true);
    expect(sync!.pointOfNoReturn).toBe(RECOVERY);
    expect(sync!.confirm).toMatch(
      /^POINT OF NO RETURN: .*recovered by playbooks\/pg-major-upgrade-rollback.yml/,
    );
    expect(plain!.pointOfNoReturn).toBe(true);
  });

  it('as text: tags, the approval and the recovery', () => {
    const text = renderPlanText(plan);
    expect(text).toContain('2. stop [shell, downtime]');
    expect(text).toContain('3. sync [shell, POINT OF NO RETURN, downtime, needs approval]');
    expect(text).toContain(
      `     approval: POINT OF NO RETURN: once this step starts, nothing before it is undone automatically; a failure from here on is recovered by ${RECOVERY}. Proceed`,
    );
    expect(text).toContain(
      `     point of no return: steps before this one are undone automatically only if the run fails before it; after it, recovery is ${RECOVERY}`,
    );
    expect(text).toContain(
      '     point of no return: steps before this one are undone automatically only if the run fails before it\n',
    );
    expect(text).toContain('1. snapshot [shell]');
  });

  it('as Markdown: ⏱ on downtime steps, the ⚠ note, the approval, and the summary lines', () => {
    const md = renderPlanMarkdown(plan);
    expect(md).toContain('#### 2. ⏱ stop (`shell, downtime`)');
    expect(md).toContain('#### 3. ⏱ sync (`shell, downtime, needs approval`)');
    expect(md).toContain(
      `> **⚠ Point of no return.** A failure before this step undoes everything above automatically; from this step on nothing before it is undone, and recovery is ${RECOVERY}.`,
    );
    expect(md).toContain('Approval asked: *POINT OF NO RETURN: once this step starts');
    expect(md).toContain(
      '- Downtime: the 2 step(s) marked ⏱ run while clients cannot write (writes stopped, or held by a paused PgBouncer)',
    );
    // The first point of no return is the one the summary names.
    expect(md).toContain(
      `- Point of no return: "sync"; before it a failure is undone automatically, after it recovery is ${RECOVERY}`,
    );
    expect(md).toContain('#### 1. snapshot (`shell`)');
  });
});

describe('running through a point of no return', () => {
  it('a failure before it unwinds every earlier step, most recent first', async () => {
    const r = await run(`${step('A')}${step('B')}${failing('C')}${ponr('P')}${step('D')}`);
    expect(r.outcome).toEqual({ status: 'failed', exitCode: 1 });
    expect(r.trace).toEqual(['A', 'B', 'C', 'undo-B', 'undo-A']);
    expect(types(r.ev)).not.toContain('point_of_no_return');
    // The gate of a step never reached is never asked.
    expect(types(r.ev)).not.toContain('approval');
    expect(r.summary.join('\n')).not.toMatch(/point of no return/i);
    expect(r.summary).toContain(
      'Undone, most recent first: a: B (run the revert command); a: A (run the revert command).',
    );
    // Everything was undone: the last line is a fresh run, not resume.
    expect(r.summary.at(-1)).toMatch(
      /^Next \(nothing is left to resume: start again\), .*: pgrunbook run pb\.yml -i \S+inv\.yml$/,
    );
  });

  it('a failure after it undoes nothing before it; exit 1; the summary names the recovery', async () => {
    const r = await run(`${step('A')}${step('B')}${ponr('P')}${failing('X')}`);
    expect(r.outcome).toEqual({ status: 'failed', exitCode: 1 });
    // P's own undo was pushed after the point: it is not "before it", so it still runs.
    expect(r.trace).toEqual(['A', 'B', 'P', 'X', 'undo-P']);
    const s = r.summary.join('\n');
    expect(s).toContain(
      `The run had passed its point of no return ("P"): steps before it were not undone. Recover with ${RECOVERY}.`,
    );
    expect(s).toContain(
      'Changes that remain (no automatic undo): a: "A" (kept: past the point of no return at "P"); a: "B" (kept: past the point of no return at "P").',
    );
    const pe = r.ev.find((e) => e.type === 'point_of_no_return') as Extract<
      Ev,
      { type: 'point_of_no_return' }
    >;
    expect(pe).toMatchObject({ title: 'P', dropped: 2, recovery: RECOVERY });
    // The last line is the recovery, never resume (A and B remain, but resume cannot take them back).
    expect(r.summary.at(-1)).toMatch(new RegExp(`^Next, .*: ${RECOVERY}$`));
    expect(s).not.toContain('pgrunbook resume');
    // Approved (by --yes) first, crossed next, then the step runs.
    const order = types(r.ev).filter((t) => ['approval', 'point_of_no_return', 'step_started'].includes(t));
    expect(order.slice(-4)).toEqual(['approval', 'point_of_no_return', 'step_started', 'step_started']);
    expect(plainLines(pe)).toEqual([
      expect.stringMatching(
        /POINT OF NO RETURN at "P": 2 earlier change\(s\) will not be undone automatically; recovery from here: playbooks\/pg-major-upgrade-rollback.yml$/,
      ),
    ]);
  });

  it('a failure of the point-of-no-return step itself undoes nothing before it', async () => {
    const r = await run(
      `${step('A')}    - name: P\n      shell: "echo P >> {{ log }}; exit 4"\n      point_of_no_return: true\n`,
    );
    expect(r.outcome.exitCode).toBe(1);
    expect(r.trace).toEqual(['A', 'P']);
    const s = r.summary.join('\n');
    expect(s).toContain('The run had passed its point of no return ("P"): steps before it were not undone.');
    expect(s).not.toContain('Recover with');
    // No recovery named, and A stands: resume is the way on.
    expect(r.summary.at(-1)).toMatch(/^Next, .*: pgrunbook resume test$/);
  });

  it('a success past it is an ordinary success: no PONR line in the summary', async () => {
    const r = await run(`${step('A')}${ponr('P')}${step('B')}`);
    expect(r.outcome).toEqual({ status: 'ok', exitCode: 0 });
    expect(r.trace).toEqual(['A', 'P', 'B']);
    expect(r.summary[0]).toBe('All steps succeeded.');
    expect(r.summary.join('\n')).not.toMatch(/point of no return/i);
  });

  it('declined at the prompt: the run stops there and earlier steps are undone', async () => {
    const r = await run(`${step('A')}${ponr('P')}${step('B')}`, { yes: false, answer: 'n' });
    expect(r.outcome.exitCode).toBe(1);
    expect(r.asked).toHaveLength(1);
    expect(r.asked[0]).toMatch(/^POINT OF NO RETURN: .* Proceed — on a\? \[y\/N\] $/);
    expect(r.trace).toEqual(['A', 'undo-A']);
    expect(types(r.ev)).not.toContain('point_of_no_return');
    expect(r.summary.join('\n')).toContain('"P" was not approved by the operator');
  });

  it('approved at the prompt ("y"): crossed once for every host of the step', async () => {
    const r = await run(`${step('A')}${ponr('P')}${failing('X')}`, { yes: false, answer: 'y', hosts: 'all' });
    expect(r.asked).toEqual([expect.stringMatching(/ — on a, b\? \[y\/N\] $/)]);
    const crossed = r.ev.filter((e) => e.type === 'point_of_no_return');
    expect(crossed).toEqual([expect.objectContaining({ dropped: 2 })]);
    // Both hosts' P undos ran (they came after the point), neither host's A undo did.
    expect(r.trace.filter((l) => l.startsWith('undo-'))).toEqual(['undo-P', 'undo-P']);
  });

  // The point is crossed when the step starts on a host: skipped everywhere by `when`, it is not.
  it('a point-of-no-return step skipped by `when` on every host is not crossed', async () => {
    const r = await run(`${step('A')}${ponr('P', RECOVERY)}      when: "1 == 2"\n${failing('X')}`);
    expect(r.ev.filter((e) => e.type === 'step_finished').map((e) => `${e.title}:${e.status}`)).toContain(
      'P:skipped',
    );
    expect(r.trace).toEqual(['A', 'X', 'undo-A']);
    expect(r.summary.join('\n')).not.toContain('passed its point of no return');
  });

  it('without --yes and no terminal, `run` refuses before anything runs', async () => {
    const dir = scratch();
    inventoryIn(dir);
    const log = join(dir, 'log');
    writeFileSync(
      join(dir, 'pb.yml'),
      `- name: upgrade\n  hosts: a\n  vars: { log: ${log} }\n  steps:\n${step('A')}${ponr('P')}`,
    );
    const tty = Object.getOwnPropertyDescriptor(process.stdin, 'isTTY');
    const cwd = process.cwd();
    Object.defineProperty(process.stdin, 'isTTY', { value: undefined, configurable: true });
    process.chdir(dir);
    let err: unknown;
    try {
      await runCommand(join(dir, 'pb.yml'), {
        inventory: join(dir, 'inv.yml'),
        extraVars: {},
        yes: false,
      }).then(
        () => undefined,
        (e: unknown) => {
          err = e;
        },
      );
    } finally {
      process.chdir(cwd);
      if (tty) Object.defineProperty(process.stdin, 'isTTY', tty);
      else delete (process.stdin as { isTTY?: boolean }).isTTY;
    }
    expect(err).toBeInstanceOf(PgrunbookError);
    const m = (err as Error).message;
    expect(m).toContain(
      'this playbook needs an operator at these steps, but standard input is not a terminal',
    );
    expect(m).toMatch(/pb\.yml:\d+:\d+: P \(confirm\)/);
    expect(m).toContain('Nothing was run.');
    expect(existsSync(log)).toBe(false);
    expect(existsSync(join(dir, '.pgrunbook'))).toBe(false);
  });
});

describe('recovery: the way back changes as the run goes on', () => {
  it('once a step with recovery: has succeeded, a later failure names it; before, the point of no return still does', async () => {
    const later = await run(
      `${ponr('sync')}${step('writable', '      recovery: fix forward and resume\n')}${failing('vacuum')}`,
    );
    expect(later.outcome.exitCode).toBe(1);
    expect(later.summary.join('\n')).toContain('Recover with fix forward and resume.');
    expect(later.summary.join('\n')).not.toContain(RECOVERY);
    // The step carrying it fails itself: the way back is still the point of no return's.
    const itself = await run(
      `${ponr('sync')}${failing('writable', '      recovery: fix forward and resume\n')}`,
    );
    expect(itself.summary.join('\n')).toContain(`Recover with ${RECOVERY}.`);
  });
});

// `resume` on damaged journals, through the real CLI (issue 11, "Journal and resume" and item 5):
// a failed run's journal is damaged the ways the issue found (and their neighbours); each resume
// is refused with exit 2 and a message saying what is wrong and where, runs nothing, and leaves the
// journal as it was. The same journal undamaged resumes, skipping what was done.
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { runCli, runIds, startCli, waitUntil, workdir } from './cli.js';

const INV = 'hosts:\n  a: { transport: local }\n';

let cwd: string;
let log: string;
let flag: string;
let runId: string;
let pristine: string;

beforeAll(async () => {
  const dir = workdir();
  log = join(dir, 'log');
  flag = join(dir, 'flag');
  cwd = workdir({
    'inv.yml': INV,
    'pb.yml': `
- name: resumable
  hosts: a
  steps:
    - name: kept change
      shell: "echo kept >> ${log}"
    - name: needs flag
      shell: "test -f ${flag}"
`,
  });
  const first = await runCli(['run', 'pb.yml', '-i', 'inv.yml'], { cwd });
  expect(first.code).toBe(1);
  runId = runIds(cwd)[0]!;
  pristine = join(cwd, 'pristine');
  cpSync(join(cwd, '.pgrunbook', 'runs', runId), pristine, { recursive: true });
  // From now on every resume could succeed: only the journal can stop it.
  writeFileSync(flag, '');
}, 60_000);

const journalPath = () => join(cwd, '.pgrunbook', 'runs', runId, 'journal.jsonl');
const pristineText = () => readFileSync(join(pristine, 'journal.jsonl'), 'utf8');

/** Restores the failed run's directory, damages it with `damage`, and resumes it. */
async function resumeDamaged(damage: (path: string, text: string) => void, id = runId) {
  const dir = join(cwd, '.pgrunbook', 'runs', runId);
  rmSync(dir, { recursive: true, force: true });
  cpSync(pristine, dir, { recursive: true });
  damage(journalPath(), pristineText());
  const before =
    existsSync(journalPath()) && statSync(journalPath()).isFile()
      ? readFileSync(journalPath(), 'utf8')
      : undefined;
  const r = await runCli(['resume', id], { cwd });
  expect(readFileSync(log, 'utf8'), 'a step ran').toBe('kept\n');
  if (before !== undefined)
    expect(readFileSync(journalPath(), 'utf8'), 'the journal was written').toBe(before);
  expect(r.stderr).not.toMatch(/internal error|\n\s+at /);
  return r;
}

const lines = (text: string) => text.split('\n').slice(0, -1);
const join_ = (ls: string[]) => ls.map((l) => `${l}\n`).join('');

describe('resume refuses a damaged journal (issue 11)', () => {
  it('issue 11: a journal truncated mid-line no longer re-runs completed steps and exits 0', async () => {
    const r = await resumeDamaged((path, text) => {
      // Cut in the middle of the line that says "kept change" finished.
      const ls = lines(text);
      const i = ls.findIndex((l) => l.includes('"step_finished"') && l.includes('kept change'));
      const at = join_(ls.slice(0, i)).length + 40;
      writeFileSync(path, text.slice(0, at));
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /journal\.jsonl:\d+: the journal is damaged at line \d+ \(byte \d+\): it ends without an end of line \(40 bytes\): the journal was cut in the middle of a line/,
    );
  });

  it('issue 11: a journal cut at a line boundary is refused too (its head file says how long it was)', async () => {
    const r = await resumeDamaged((path, text) => {
      const ls = lines(text);
      const i = ls.findIndex((l) => l.includes('"step_finished"') && l.includes('kept change'));
      writeFileSync(path, join_(ls.slice(0, i)));
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/the journal was cut: it has \d+ lines, but \d+ were on disk/);
  });

  it('issue 11: garbage lines are refused, not ignored', async () => {
    const r = await resumeDamaged((path, text) => {
      const ls = lines(text);
      writeFileSync(path, join_([...ls.slice(0, 2), 'this is not an event', ...ls.slice(2)]));
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('journal.jsonl:3: the journal is damaged at line 3 (byte');
    expect(r.stderr).toContain('it is not a journal line (no checksum): "this is not an event"');
  });

  it('issue 11: a null line gives exit 2 with a clear message, not exit 70', async () => {
    const r = await resumeDamaged((path, text) => writeFileSync(path, `${text}null\n`));
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(
      /journal\.jsonl:\d+: the journal is damaged at line \d+ .*it is not a journal line \(no checksum\): "null"/,
    );
  });

  it('issue 11: a directory in place of the journal gives exit 2 with a clear message, not exit 70', async () => {
    const r = await resumeDamaged((path) => {
      rmSync(path);
      mkdirSync(path);
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('journal.jsonl: the journal is not a regular file (it is a directory)');
  });

  it('reordered lines are refused, naming the first line out of place', async () => {
    const r = await resumeDamaged((path, text) => {
      const ls = lines(text);
      [ls[3], ls[4]] = [ls[4]!, ls[3]!];
      writeFileSync(path, join_(ls));
    });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('journal.jsonl:4: the journal is damaged at line 4 (byte');
    expect(r.stderr).toContain(
      'its checksum does not follow line 3: lines were changed, removed, inserted or reordered',
    );
  });

  it('a failed step edited into a success is refused', async () => {
    const r = await resumeDamaged((path, text) =>
      writeFileSync(path, text.replace('"status":"failed"', '"status":"ok"')),
    );
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('its checksum does not follow line');
  });

  it('a journal copied from another run is refused, naming the run it belongs to', async () => {
    const other = '20991231-235959-copy';
    const dir = join(cwd, '.pgrunbook', 'runs', other);
    rmSync(dir, { recursive: true, force: true });
    cpSync(pristine, dir, { recursive: true });
    const r = await resumeDamaged(() => {}, other);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      `this journal belongs to run "${runId}", not to run ${other} (its directory): it was copied or moved from another run`,
    );
  });

  it('a run id that is not one is refused before any path is built from it', async () => {
    const r = await runCli(['resume', '../../etc'], { cwd });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('not a run id: "../../etc"');
  });

  // Last: it changes the run for good.
  it('the same journal undamaged resumes, skipping the step that completed', async () => {
    const dir = join(cwd, '.pgrunbook', 'runs', runId);
    rmSync(dir, { recursive: true, force: true });
    cpSync(pristine, dir, { recursive: true });
    const r = await runCli(['resume', runId], { cwd });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('ALREADY DONE kept change');
    expect(r.stdout).toContain('OK needs flag');
    expect(readFileSync(log, 'utf8')).toBe('kept\n');
    const again = await runCli(['resume', runId], { cwd });
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('already finished successfully');
  });
});

describe('resume after kill -9 mid-step (issue 11, item 6)', () => {
  it('issue 11: a killed step that changes things and has no undo is not run again without --rerun-unfinished', async () => {
    const dir = workdir();
    const log = join(dir, 'log');
    const flag = join(dir, 'flag');
    const pidFile = join(dir, 'pid');
    const cwd = workdir({
      'inv.yml': INV,
      'pb.yml': `
- name: killed
  hosts: a
  steps:
    - name: first change
      shell: "echo first >> ${log}"
    - name: slow change
      shell: "echo slow >> ${log}; test -f ${flag} && exit 0; echo $$ > ${pidFile}; exec sleep 60"
`,
    });
    const { child, done } = startCli(['run', 'pb.yml', '-i', 'inv.yml'], { cwd });
    try {
      await waitUntil(
        'the slow step never started',
        () => existsSync(pidFile) && readFileSync(pidFile, 'utf8').endsWith('\n'),
      );
      child.kill('SIGKILL');
      await done;
    } finally {
      // kill -9 of the runner leaves its child (issue 11, item 6, first half): end it here.
      try {
        process.kill(Number(readFileSync(pidFile, 'utf8')), 'SIGKILL');
      } catch {
        // already gone
      }
    }
    writeFileSync(flag, '');
    const id = runIds(cwd)[0]!;
    const refused = await runCli(['resume', id], { cwd });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('these steps were started and never finished (the runner was killed)');
    expect(refused.stderr).toMatch(/a: "slow change" \(p0\.steps\.1\), started \d{4}-/);
    expect(refused.stderr).not.toContain('first change');
    expect(refused.stderr).toContain('--rerun-unfinished');
    expect(readFileSync(log, 'utf8')).toBe('first\nslow\n');

    const again = await runCli(['resume', id, '--rerun-unfinished'], { cwd });
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('ALREADY DONE first change');
    expect(readFileSync(log, 'utf8')).toBe('first\nslow\nslow\n');
    // Once it finished, nothing is left to ask about.
    expect((await runCli(['resume', id], { cwd })).stdout).toContain('already finished successfully');
  }, 60_000);
});

// Partial artifacts (issue 12 item 5): an `fs.snapshot` stopped mid-copy leaves a partial
// destination. The truth is read from the disk (the sshd here runs on this machine, so the host's
// files are this machine's) and compared with what the run, its journal and `resume` say.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, type SshServer, startSshd } from '../../tools/testenv/index.js';
import { CLI, events, journalOf, runCli, runIds, sshInventory, waitUntil, workdir } from './cli.js';

/** Every file under `dir`, relative, sorted; [] when it does not exist. */
function files(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return (readdirSync(dir, { recursive: true, withFileTypes: true }) as import('node:fs').Dirent[])
    .filter((d) => d.isFile())
    .map((d) => join(d.parentPath, d.name).slice(dir.length + 1))
    .sort();
}

/** Enough small files that copying them takes seconds: a window to stop the copy in. */
function makeSource(dir: string): number {
  let n = 0;
  for (let d = 0; d < 200; d++) {
    mkdirSync(join(dir, `d${d}`), { recursive: true });
    for (let f = 0; f < 150; f++, n++) writeFileSync(join(dir, `d${d}`, `f${f}`), `${d}/${f}\n`.repeat(64));
  }
  return n;
}

const snapshotStep = (source: string, to: string, extra = '') =>
  `    - name: Copy the data directory\n      fs.snapshot: { provider: copy, source: ${source}, to: ${to} }\n${extra}`;

describe('an fs.snapshot stopped mid-copy', () => {
  let sshd: SshServer;
  let root: string;
  let source: string;
  let total: number;
  beforeAll(async () => {
    sshd = await startSshd();
    root = await makeTempDir('pgrb-artifacts');
    source = join(root, 'pgdata');
    total = makeSource(source);
  }, 120_000);
  afterAll(async () => {
    await sshd?.stop();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  /** Starts the run, waits until the copy has written some files, kills the runner with SIGKILL. */
  async function killMidCopy(cwd: string, data: string): Promise<void> {
    const runner = spawn(process.execPath, [CLI, 'run', 'pb.yml', '-i', 'inv.yml', '--yes'], {
      cwd,
      stdio: 'ignore',
    });
    const exited = new Promise((r) => runner.on('exit', r));
    await waitUntil('the copy did not start', () => files(data).length > 200, 60_000);
    runner.kill('SIGKILL');
    await exited;
    // The remote copy ends with the runner's connection (issue 11): what is there stays partial.
    await new Promise((r) => setTimeout(r, 1500));
  }

  it('kill -9: the journal names the partial copy before it was written; resume removes it, then copies afresh', async () => {
    const to = join(root, 'b1.snap');
    const cwd = workdir({
      'inv.yml': sshInventory(sshd, ['db1']),
      'pb.yml': `- name: backup\n  hosts: db1\n  steps:\n${snapshotStep(source, to)}`,
    });
    await killMidCopy(cwd, join(to, 'data'));
    // The truth on disk: a partial copy, without labels.
    const partial = files(join(to, 'data'));
    expect(partial.length).toBeGreaterThan(0);
    expect(partial.length).toBeLessThan(total);
    expect(files(join(to, 'data'))).toEqual(partial); // nothing copies any more
    const j = journalOf(cwd);
    const named = j.find((e) => e.type === 'artifact');
    expect(named).toMatchObject({ host: 'db1', paths: [join(to, 'data'), join(to, 'tablespaces')] });
    expect(j.some((e) => e.type === 'step_finished')).toBe(false);
    expect(j.some((e) => e.type === 'run_finished')).toBe(false);

    // The source moves on between the attempts (PGDATA does): a file the partial copy holds is
    // deleted. Copying over the partial copy would keep it; removing the partial copy first does not.
    const gone = partial[0]!;
    rmSync(join(source, gone));
    const [runId] = runIds(cwd);
    const r = await runCli(['resume', runId!, '--yes', '--output', 'json'], { cwd });
    expect(r.code, r.stderr).toBe(0);
    const ev = events(r.stdout);
    const removed = ev.findIndex((e) => e.type === 'artifact_removed');
    const copied = ev.findIndex((e) => e.type === 'step_finished' && e.status === 'ok');
    expect(ev[removed]).toMatchObject({
      host: 'db1',
      ok: true,
      paths: [join(to, 'data'), join(to, 'tablespaces')],
    });
    expect(removed).toBeLessThan(copied);
    const fin = ev.at(-1) as { type: string; summary: string[] };
    expect(fin.type).toBe('run_finished');
    expect(fin.summary.join('\n')).toContain(
      `Partial artifacts removed (made by steps that did not succeed): db1: ${join(to, 'data')}`,
    );
    // The truth again: exactly the source's files, the deleted one not carried over.
    expect(files(join(to, 'data'))).toEqual(files(source));
    expect(existsSync(join(to, 'data', gone))).toBe(false);
    writeFileSync(join(source, gone), 'back\n');
  }, 180_000);

  it('kill -9 after a change with an undo: resume refuses, and names the partial copy with the command that removes it', async () => {
    const to = join(root, 'b2.snap');
    const marker = join(root, 'b2.marker');
    const cwd = workdir({
      'inv.yml': sshInventory(sshd, ['db1']),
      'pb.yml': `- name: backup\n  hosts: db1\n  steps:\n    - file.write: { path: ${marker}, content: "x" }\n${snapshotStep(source, to)}`,
    });
    await killMidCopy(cwd, join(to, 'data'));
    const partial = files(join(to, 'data'));
    expect(partial.length).toBeGreaterThan(0);
    expect(partial.length).toBeLessThan(total);
    const [runId] = runIds(cwd);
    const r = await runCli(['resume', runId!, '--yes'], { cwd });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(
      `db1: ${join(to, 'data')}, ${join(to, 'tablespaces')} (left by "Copy the data directory", p0.steps.1), partial — to remove: rm -rf -- ${join(to, 'data')} ${join(to, 'tablespaces')}; `,
    );
    expect(r.stderr).toContain('db1: "file.write" — to undo: remove the file it created');
    // It ends with the exact command to start again.
    expect(r.stderr.trimEnd().split('\n').at(-1)).toBe(
      `  pgrunbook run ${join(cwd, 'pb.yml')} -i ${join(cwd, 'inv.yml')}`,
    );
    // Refused: nothing was touched.
    expect(files(join(to, 'data'))).toEqual(partial);
  }, 180_000);

  it('stopped by its timeout: the runner removes the partial copy and the summary lists it', async () => {
    const to = join(root, 'b3.snap');
    const cwd = workdir({
      'inv.yml': sshInventory(sshd, ['db1']),
      'pb.yml': `- name: backup\n  hosts: db1\n  steps:\n${snapshotStep(source, to, '      timeout: 1\n')}`,
    });
    const r = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--yes'], { cwd });
    expect(r.code, r.stdout).toBe(1);
    const lines = r.stdout.trimEnd().split('\n');
    expect(r.stdout).toContain(
      `Partial artifacts removed (made by steps that did not succeed): db1: ${join(to, 'data')}, ${join(to, 'tablespaces')}`,
    );
    // The copy was the step's only change and it is gone: no "state unknown", nothing remains,
    // so the next command is a fresh run, not resume.
    expect(lines.at(-1)).toMatch(
      /^ {2}Next \(nothing is left to resume: start again\), once the cause is fixed: pgrunbook run \S+pb\.yml -i \S+inv\.yml$/,
    );
    expect(r.stdout).not.toContain('pgrunbook resume');
    expect(r.stdout).not.toContain('State unknown');
    // The truth: no partial copy, and none reappears (the copy really stopped).
    expect(existsSync(join(to, 'data'))).toBe(false);
    await new Promise((res) => setTimeout(res, 1500));
    expect(existsSync(join(to, 'data'))).toBe(false);
  }, 120_000);
});

// The labels' server is the copied directory: two real PostgreSQL 15 servers (two system
// identifiers), and inventories or playbooks that pair one server's backup session with the
// other's data directory. Each is refused before any label is written, naming both sides.
import { execSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PgServer, startPostgres } from '../../tools/testenv/index.js';
import { events, journalOf, runCli, workdir } from './cli.js';

let a: PgServer;
let b: PgServer;
const sysid: Record<'a' | 'b', string> = { a: '', b: '' };

beforeAll(async () => {
  [a, b] = await Promise.all([startPostgres({ version: 15 }), startPostgres({ version: 15 })]);
  for (const [k, s] of [
    ['a', a],
    ['b', b],
  ] as const) {
    const c = new pg.Client({ host: s.host, port: s.port, user: 'postgres', database: 'postgres' });
    await c.connect();
    sysid[k] = String(
      (await c.query('select system_identifier::text as id from pg_control_system()')).rows[0].id,
    );
    await c.end();
  }
  // Independent initdb runs: the premise of every test here.
  expect(sysid.a).not.toBe(sysid.b);
}, 60_000);
afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
});

function scratchRoot(): string {
  const d = mkdtempSync(join(tmpdir(), 'pgrb-identity-'));
  chmodSync(d, 0o755);
  return d;
}

const SHIPPED = fileURLToPath(new URL('../../playbooks/snapshot-backup.yml', import.meta.url));

/** A host whose pg: settings reach `server` and whose pgdata is `pgdata`. */
const shippedInventory = (server: PgServer, pgdata: string, root: string) => `
hosts:
  db:
    transport: local
    pg: { host: 127.0.0.1, port: ${server.port}, user: postgres, sslmode: disable }
    vars:
      pgdata: ${pgdata}
      backup_root: ${root}
      archive_dir: ${server.archiveDir}
      verify: false
`;

/** Every file under the backup root whose name is a label's. */
function labelsUnder(root: string): string[] {
  return execSync(`find ${root} \\( -name backup_label -o -name tablespace_map \\) -print`)
    .toString()
    .split('\n')
    .filter(Boolean);
}

describe('an inventory whose pg: settings reach another server than its pgdata', () => {
  it('plan --check reports the pairing as a problem naming both servers and directories', async () => {
    const root = scratchRoot();
    const r = await runCli(['plan', SHIPPED, '-i', 'inv.yml', '--check'], {
      cwd: workdir({ 'inv.yml': shippedInventory(b, a.dataDir, root) }),
    });
    expect(r.code).toBe(2);
    const problem = r.stderr.split('\n').find((l) => l.includes('pairs') || l.includes('pgdata'))!;
    expect(problem).toContain(`the backup session is on server ${sysid.b} with data_directory ${b.dataDir}`);
    expect(problem).toContain(`the inventory's pgdata is ${a.dataDir}, whose pg_control says ${sysid.a}`);
    // Located at the step that needs the pairing, in the shipped playbook.
    expect(problem).toMatch(/snapshot-backup\.yml:\d+:\d+: /);
  });

  it('run refuses before anything runs: no label, no manifest, no copy', async () => {
    const root = scratchRoot();
    const cwd = workdir({ 'inv.yml': shippedInventory(b, a.dataDir, root) });
    const r = await runCli(['run', SHIPPED, '-i', 'inv.yml'], { cwd });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`server ${sysid.b} with data_directory ${b.dataDir}`);
    expect(r.stderr).toContain(`${a.dataDir}, whose pg_control says ${sysid.a}`);
    expect(labelsUnder(root)).toEqual([]);
    expect(existsSync(join(root, 'db-'))).toBe(false);
  });

  it('the same inventory with pgdata a symlink to the right directory is paired, shown, and backed up', async () => {
    const root = scratchRoot();
    const link = join(root, 'pgdata-link');
    symlinkSync(a.dataDir, link);
    const cwd = workdir({ 'inv.yml': shippedInventory(a, link, root) });
    const plan = await runCli(['plan', SHIPPED, '-i', 'inv.yml', '--check'], { cwd });
    expect(plan.stderr).toBe('');
    expect(plan.code).toBe(0);
    // The pairing plan --check will use: the server, its data_directory, what pgdata resolves to.
    expect(plan.stdout).toContain(`server ${sysid.a}, data_directory ${a.dataDir}`);
    expect(plan.stdout).toContain(
      `the inventory's pgdata is ${link} (${a.dataDir}): pg_control says ${sysid.a} — same server`,
    );
    const r = await runCli(['run', SHIPPED, '-i', 'inv.yml', '--output', 'json'], { cwd });
    expect(r.code).toBe(0);
    const [labels] = labelsUnder(root);
    const m = JSON.parse(readFileSync(join(labels!, '..', 'manifest.json'), 'utf8'));
    expect(m.status).toBe('complete');
    expect(m.identity.system_identifier).toBe(sysid.a);
    expect(m.identity.data_directory).toBe(a.dataDir);
    // Both the inventory's pgdata and the copy were read: the copy's pg_control is server a's.
    expect(m.identity.checked.map((c: { system_identifier: string }) => c.system_identifier)).toEqual([
      sysid.a,
      sysid.a,
    ]);
    const copy = m.identity.checked[1];
    expect(copy.pg_control).toMatch(/\.snap\/data\/global\/pg_control$/);
    expect(copy.realpath).toBe(a.dataDir);
    void events(r.stdout);
  });
});

/**
 * A held session on server a and fs.snapshot copying server b's directory (the slip the issue
 * tried), with the source known only when run: the preflight cannot see it, the steps must.
 */
const slipPlaybook = (stopSees: boolean) => `
- name: slip
  hosts: db
  steps:
    - id: start
      pg.backup_start: { label: "slip" }
    - id: where
      shell: "echo {{ other }}"
    - id: snap
      fs.snapshot: { provider: copy, source: "{{ where.stdout | trim }}", to: "{{ root }}/slip.snap" }
    - id: stop
      pg.backup_stop: { archive_dir: "{{ archive }}"${stopSees ? ', snapshots: ["{{ snap }}"]' : ''} }
    - backup.write_labels: { to: "{{ root }}/slip", from: "{{ stop }}", snapshots: ["{{ snap }}"] }
`;

const slipInventory = (root: string) => `
hosts:
  db:
    transport: local
    pg: { host: 127.0.0.1, port: ${a.port}, user: postgres, sslmode: disable }
    vars: { root: ${root}, archive: ${a.archiveDir}, other: ${b.dataDir} }
`;

describe('a backup session on one server and a copy of another server', () => {
  it('backup.write_labels refuses before writing, naming both; nothing claims a backup', async () => {
    const root = scratchRoot();
    const cwd = workdir({ 'pb.yml': slipPlaybook(false), 'inv.yml': slipInventory(root) });
    const r = await runCli(['run', 'pb.yml', '-i', 'inv.yml'], { cwd });
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(
      'refusing to write backup_label: the labels describe another server than what was copied',
    );
    expect(r.stdout).toContain(
      `the backup session is on server ${sysid.a} with data_directory ${a.dataDir}, but fs.snapshot (copy) copied ${b.dataDir}, whose pg_control says ${sysid.b}`,
    );
    expect(labelsUnder(root)).toEqual([]);
    expect(existsSync(join(root, 'slip', 'manifest.json'))).toBe(false);
    // The run unwound: the copy removed, the backup stopped void.
    expect(existsSync(join(root, 'slip.snap', 'data'))).toBe(false);
    const undone = journalOf(cwd)
      .filter((e) => e.type === 'undo_finished')
      .map((e) => e.title);
    expect(undone).toEqual(['fs.snapshot', 'pg.backup_start']);
  });

  it('pg.backup_stop given the snapshots refuses before PostgreSQL hands out labels', async () => {
    const root = scratchRoot();
    const cwd = workdir({ 'pb.yml': slipPlaybook(true), 'inv.yml': slipInventory(root) });
    const r = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json'], { cwd });
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('refusing to stop the backup with labels');
    expect(r.stdout).toContain(
      `the backup session is on server ${sysid.a} with data_directory ${a.dataDir}, but fs.snapshot (copy) copied ${b.dataDir}, whose pg_control says ${sysid.b}`,
    );
    const ev = events(r.stdout);
    // The stop never returned labels: no output of it, the write never ran.
    const stop = ev.find((e) => e.type === 'step_finished' && e.stepType === 'pg.backup_stop');
    expect(stop).toMatchObject({ status: 'failed' });
    expect(stop?.outputs).toBeUndefined();
    expect(ev.some((e) => e.type === 'step_started' && e.stepType === 'backup.write_labels')).toBe(false);
    expect(labelsUnder(root)).toEqual([]);
    expect(existsSync(join(root, 'slip', 'manifest.json'))).toBe(false);
    // pg.backup_start's undo stopped the backup on its session, void.
    expect(r.stdout).toMatch(/backup \\?"slip\\?" stopped and void/);
  });

  it('the same playbook copying the session server’s own directory keeps the labels', async () => {
    const root = scratchRoot();
    const inv = slipInventory(root).replace(`other: ${b.dataDir}`, `other: ${a.dataDir}`);
    const cwd = workdir({ 'pb.yml': slipPlaybook(true), 'inv.yml': inv });
    const r = await runCli(['run', 'pb.yml', '-i', 'inv.yml'], { cwd });
    expect(r.code).toBe(0);
    const m = JSON.parse(readFileSync(join(root, 'slip', 'manifest.json'), 'utf8'));
    expect(m.status).toBe('complete');
    expect(m.identity.checked).toEqual([
      expect.objectContaining({ dir: a.dataDir, realpath: a.dataDir, system_identifier: sysid.a }),
    ]);
  });
});

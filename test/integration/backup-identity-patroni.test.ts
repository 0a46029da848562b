// A Patroni replica has its leader's system identifier: pairing a backup session on one member
// with the other member's directory is caught by data_directory (symlinks resolved), not by
// pg_control. Real Patroni, etcd and PostgreSQL 15.
import { execSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import type { PatroniCluster, PatroniMember } from '../../tools/testenv/index.js';
import { runCli, workdir } from './cli.js';
import { usePatroniCluster } from './patroni-cluster.js';

let cluster: PatroniCluster;
usePatroniCluster((lab) => {
  ({ cluster } = lab);
});

let leader: PatroniMember;
let replica: PatroniMember;
let sysid = '';
beforeAll(async () => {
  const name = await cluster.leader();
  leader = cluster.members.find((m) => m.name === name)!;
  replica = cluster.members.find((m) => m.name !== name)!;
  const ids: string[] = [];
  for (const m of [leader, replica]) {
    const c = new pg.Client({ host: m.socketDir, port: m.pgPort, user: 'postgres', database: 'postgres' });
    await c.connect();
    ids.push(
      String((await c.query('select system_identifier::text as id from pg_control_system()')).rows[0].id),
    );
    await c.end();
  }
  // The premise: pg_control alone cannot tell them apart.
  expect(ids[0]).toBe(ids[1]);
  sysid = ids[0]!;
}, 30_000);

function scratchRoot(): string {
  const d = mkdtempSync(join(tmpdir(), 'pgrb-identity-'));
  chmodSync(d, 0o755);
  return d;
}

const labelsUnder = (root: string) =>
  execSync(`find ${root} \\( -name backup_label -o -name manifest.json \\) -print`)
    .toString()
    .split('\n')
    .filter(Boolean);

const SHIPPED = fileURLToPath(new URL('../../playbooks/snapshot-backup.yml', import.meta.url));

describe('an inventory whose pg: settings reach the replica while pgdata is the leader’s', () => {
  const inventory = (root: string) => `
hosts:
  db:
    transport: local
    pg: { host: ${replica.socketDir}, port: ${replica.pgPort}, user: postgres, sslmode: disable }
    vars: { pgdata: ${leader.dataDir}, backup_root: ${root}, archive_dir: ${cluster.archiveDir}, verify: false }
`;

  it('plan --check and run refuse before anything runs, naming both directories and the one system identifier', async () => {
    const root = scratchRoot();
    const cwd = workdir({ 'inv.yml': inventory(root) });
    const expected = `the backup session is on server ${sysid} with data_directory ${replica.dataDir}, but the inventory's pgdata is ${leader.dataDir}, whose pg_control says ${sysid} (another directory than the server's data_directory)`;
    const plan = await runCli(['plan', SHIPPED, '-i', 'inv.yml', '--check'], { cwd });
    expect(plan.code).toBe(2);
    expect(plan.stderr).toContain(expected);
    const r = await runCli(['run', SHIPPED, '-i', 'inv.yml'], { cwd });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(expected);
    expect(labelsUnder(root)).toEqual([]);
  });
});

describe('a backup session on the leader and a copy of the replica’s directory', () => {
  it('is refused before PostgreSQL hands out labels: same system identifier, another directory', async () => {
    const root = scratchRoot();
    const cwd = workdir({
      'inv.yml': `
hosts:
  db:
    transport: local
    pg: { host: ${leader.socketDir}, port: ${leader.pgPort}, user: postgres, sslmode: disable }
    vars: { root: ${root}, archive: ${cluster.archiveDir}, other: ${replica.dataDir} }
`,
      // The source is known only when run: the preflight cannot pair it, the steps do.
      'pb.yml': `
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
      pg.backup_stop: { archive_dir: "{{ archive }}", snapshots: ["{{ snap }}"] }
    - backup.write_labels: { to: "{{ root }}/slip", from: "{{ stop }}", snapshots: ["{{ snap }}"] }
`,
    });
    const r = await runCli(['run', 'pb.yml', '-i', 'inv.yml'], { cwd });
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('refusing to stop the backup with labels');
    expect(r.stdout).toContain(
      `the backup session is on server ${sysid} with data_directory ${leader.dataDir}, but fs.snapshot (copy) copied ${replica.dataDir}, whose pg_control says ${sysid} (another directory than the server's data_directory)`,
    );
    expect(labelsUnder(root)).toEqual([]);
    expect(existsSync(join(root, 'slip.snap', 'data'))).toBe(false);
  });
});

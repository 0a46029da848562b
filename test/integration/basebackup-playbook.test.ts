// playbooks/basebackup.yml on a real two-member Patroni cluster (PostgreSQL 15, etcd) under a
// pgbench load: the leader's backup (the default) and a chained one from the replica
// (-e backup_from=REPLICA) are each kept with labels and a manifest and proven to restore to
// consistency; asked afterwards of the files on disk, the archive and the servers. A copy changed
// afterwards fails restore-verify.yml's proof and is kept, marked verify_failed.
import {
  appendFileSync,
  chmodSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { sql } from '../../tools/testenv/checks.js';
import { initPgbench, type PatroniCluster, SERVER_USER, startPgbench } from '../../tools/testenv/index.js';
import { events, outputsOf, runCli, workdir } from './cli.js';
import { usePatroniCluster } from './patroni-cluster.js';

const PLAYBOOK = fileURLToPath(new URL('../../playbooks/basebackup.yml', import.meta.url));
const RESTORE_VERIFY = fileURLToPath(new URL('../../playbooks/restore-verify.yml', import.meta.url));
let cluster: PatroniCluster;
usePatroniCluster((lab) => {
  ({ cluster } = lab);
});

const root = mkdtempSync(join(tmpdir(), 'pgrb-bbpb-'));
chmodSync(root, 0o777);
afterAll(() => rmSync(root, { recursive: true, force: true }));

const env = () => ({ SUPER_PW: cluster.superuser.password, REPL_PW: cluster.replication.password });

function inventory(): string {
  return `hosts:
${cluster.members
  .map(
    (m) => `  ${m.name}:
    transport: local
    pg: { host: 127.0.0.1, port: ${m.pgPort}, user: postgres, password: { env: SUPER_PW }, sslmode: disable, replication_user: replicator, replication_password: { env: REPL_PW } }
    patroni: { url: "${m.restUrl}", timeout: 2 }
    vars: { backup_root: ${root}/${m.name}, pg_bin_dir: ${cluster.binDir}, pg_os_user: ${SERVER_USER}, archive_dir: ${cluster.archiveDir} }`,
  )
  .join('\n')}
`;
}

interface Manifest {
  status: string;
  backup_from: string;
  source_host: string;
  history_file?: string;
  wal_archived: boolean;
  start_lsn: string;
  stop_lsn: string;
  system_identifier: string;
  snapshots: { provider: string; data: string }[];
  files: { backup_label: { sha256: string } };
}

async function backup(args: string[] = []) {
  const cwd = workdir({ 'inv.yml': inventory() });
  const r = await runCli(['run', PLAYBOOK, '-i', 'inv.yml', '--output', 'json', ...args], {
    cwd,
    env: env(),
  });
  return { ...r, ev: events(r.stdout) };
}

describe('playbooks/basebackup.yml on a Patroni cluster under pgbench', () => {
  it('backs up the leader and, chained, the replica; each restores to consistency; no password anywhere', async () => {
    const leader = await cluster.leader();
    const replica = cluster.members.find((m) => m.name !== leader)!.name;
    const lc = cluster.clientConfig(leader);
    const target = {
      host: '127.0.0.1',
      port: Number(lc.port),
      user: 'postgres',
      password: cluster.superuser.password,
    };
    await initPgbench(target);
    const load = startPgbench(target, 2);
    try {
      // The plan says what will run, and on which host only.
      const plan = await runCli(['plan', PLAYBOOK, '-i', 'inv.yml', '-e', `backup_from=${replica}`], {
        cwd: workdir({ 'inv.yml': inventory() }),
        env: env(),
      });
      expect(plan.code, plan.stderr).toBe(0);
      // pg_basebackup runs on the replica alone; the block is false on the leader.
      expect(plan.stdout).toMatch(new RegExp(`\\[pg\\.basebackup\\]\\n\\s+on ${replica}:`));
      expect(plan.stdout).toContain('--wal-method=stream');
      expect(plan.stdout).toMatch(new RegExp(`false on ${leader}\\)`));
      expect(plan.stdout).not.toContain(cluster.replication.password);

      const backups = (host: string) =>
        existsSync(join(root, host))
          ? readdirSync(join(root, host)).filter((d) => !d.endsWith('.verify'))
          : [];
      const first = await backup();
      expect(first.code, first.stdout.slice(-3000) + first.stderr).toBe(0);
      // By default the leader alone backs itself up, not the replica.
      expect(backups(leader)).toHaveLength(1);
      expect(backups(replica)).toEqual([]);
      const second = await backup(['-e', `backup_from=${replica}`]);
      expect(second.code, second.stdout.slice(-3000) + second.stderr).toBe(0);
      expect(backups(leader)).toHaveLength(1);
      expect(backups(replica)).toHaveLength(1);

      for (const [r, host, from] of [
        [first, leader, 'primary'],
        [second, replica, 'standby'],
      ] as const) {
        const base = outputsOf(r.ev, 'base') as Record<string, unknown>;
        const kept = outputsOf(r.ev, 'kept') as { dir: string };
        const verify = outputsOf(r.ev, 'proof') as {
          consistent_lsn: string;
          checks: Record<string, unknown[]>;
        };
        expect(base.backup_from).toBe(from);
        const m = JSON.parse(readFileSync(join(kept.dir, 'manifest.json'), 'utf8')) as Manifest;
        expect(m.status).toBe('complete');
        expect(m.backup_from).toBe(from);
        expect(m.source_host).toBe(host);
        expect(m.snapshots[0]!.provider).toBe('pg_basebackup');
        // The stored label is the copy's, byte for byte, and PostgreSQL says where it came from.
        const label = readFileSync(join(kept.dir, 'backup_label'), 'utf8');
        expect(readFileSync(join(kept.dir, 'data', 'backup_label'), 'utf8')).toBe(label);
        expect(label).toContain(`BACKUP FROM: ${from}`);
        // Both members have the leader's system identifier: the copy is of this cluster.
        const sysid = (
          await sql<{ s: string }>(lc, 'select system_identifier::text as s from pg_control_system()')
        )[0]!.s;
        expect(m.system_identifier).toBe(sysid);
        if (from === 'primary') {
          // The leader archives the backup history file; the step waited for it.
          expect(m.history_file).toMatch(/^[0-9A-F]{24}\.[0-9A-F]{8}\.backup$/);
          expect(m.wal_archived).toBe(true);
          expect(existsSync(join(cluster.archiveDir, m.history_file!))).toBe(true);
        } else {
          // A standby writes none; the copy carries its WAL.
          expect(m.history_file).toBeUndefined();
        }
        // Recovery reached consistency at or past the backup's stop point.
        const lsn = (x: string) => {
          const [hi, lo] = x.split('/');
          return (BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`);
        };
        expect(lsn(verify.consistent_lsn) >= lsn(m.stop_lsn)).toBe(true);
        expect(verify.checks.databases).toContainEqual({ datname: 'postgres' });
        // The proof cleaned up after itself; the copy is kept.
        expect(existsSync(`${kept.dir}.verify`)).toBe(false);
        expect(existsSync(join(kept.dir, 'data', 'PG_VERSION'))).toBe(true);
        const log = r.ev
          .filter((e) => e.type === 'step_output' && e.stream === 'log')
          .map((e) => String(e.text));
        expect(log.some((l) => /^pg_verifybackup .*: backup successfully verified/.test(l))).toBe(true);
        expect(r.stdout + r.stderr).not.toContain(cluster.replication.password);
        expect(r.stdout + r.stderr).not.toContain(cluster.superuser.password);
      }
      // A copy changed after the fact: restore-verify.yml refuses it (pg_verifybackup against
      // pg_basebackup's own manifest), keeps it, and marks it verify_failed with the reason.
      const kept = outputsOf(first.ev, 'kept') as { dir: string };
      appendFileSync(join(kept.dir, 'data', 'PG_VERSION'), ' ');
      const proof = await runCli(
        [
          'run',
          RESTORE_VERIFY,
          '-i',
          'inv.yml',
          '--limit',
          leader,
          '-e',
          `backup_dir=${kept.dir}`,
          '--output',
          'json',
        ],
        { cwd: workdir({ 'inv.yml': inventory() }), env: env() },
      );
      expect(proof.code, proof.stdout.slice(-2000)).toBe(1);
      const after = JSON.parse(readFileSync(join(kept.dir, 'manifest.json'), 'utf8')) as Manifest & {
        verify: { status: string; reason: string };
      };
      expect(after.status).toBe('verify_failed');
      expect(after.verify.reason).toMatch(
        /pg_verifybackup failed on the copy in .* \(a file differs from its backup_manifest, or could not be read\)/,
      );
      expect(after.verify.reason).toContain('PG_VERSION');
      expect(existsSync(join(kept.dir, 'data', 'PG_VERSION'))).toBe(true);

      // Nothing is left on the servers: no slot, no walsender of ours.
      for (const m of cluster.members) {
        const c = cluster.clientConfig(m.name);
        expect(
          await sql(
            c,
            "select slot_name from pg_replication_slots where not active or slot_type = 'logical'",
          ),
        ).toEqual([]);
        expect(
          await sql(
            c,
            "select pid from pg_stat_activity where backend_type = 'walsender' and application_name = 'pg_basebackup'",
          ),
        ).toEqual([]);
      }
    } finally {
      const r = await load.stop();
      expect(r.failures).toEqual([]);
    }
  }, 240_000);
});

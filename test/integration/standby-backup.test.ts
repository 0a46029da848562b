// A backup taken from a standby under a write load: the copy provider copies global/pg_control
// last (a standby writes no end-of-backup WAL record; the control file copied last carries the
// minimum recovery point that makes the copy consistent), and the backup restores to consistency
// with the leader's WAL archive.
import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { type PatroniCluster, SERVER_USER } from '../../tools/testenv/index.js';
import { events, outputsOf, runCli, waitUntil, workdir } from './cli.js';
import { usePatroniCluster } from './patroni-cluster.js';

let cluster: PatroniCluster;
// A standby's backup needs the standby itself to archive (archive_mode=always): pg_backup_stop on a
// standby waits for its own archiver, and the preflight refuses `on`.
usePatroniCluster(
  (lab) => {
    ({ cluster } = lab);
  },
  { archiveMode: 'always' },
);

async function sql(config: pg.ClientConfig, text: string): Promise<Record<string, unknown>[]> {
  const c = new pg.Client(config);
  await c.connect();
  try {
    return (await c.query(text)).rows;
  } finally {
    await c.end();
  }
}

/** pgbench against the leader, as the server user, until stopped. */
function pgbench(args: string[], config: pg.ClientConfig): ChildProcess {
  return spawn(
    join(cluster.binDir, 'pgbench'),
    ['-h', String(config.host), '-p', String(config.port), '-U', String(config.user), ...args, 'postgres'],
    { env: { ...process.env, PGPASSWORD: String(config.password) }, stdio: 'ignore' },
  );
}

describe('a backup from a standby under pgbench', () => {
  it('copies global/pg_control last and restores to consistency', async () => {
    const leader = await cluster.leader();
    const replica = cluster.members.find((m) => m.name !== leader)!;
    const lc = cluster.clientConfig(leader);
    const init = pgbench(['-i', '-s', '2', '-q'], lc);
    expect(await new Promise((r) => init.on('close', r))).toBe(0);
    const root = mkdtempSync(join(tmpdir(), 'pgrb-standby-'));
    chmodSync(root, 0o755);
    const inv = `hosts:
  ${replica.name}:
    transport: local
    pg: { host: ${replica.socketDir}, port: ${replica.pgPort}, user: postgres, sslmode: disable }
    vars:
      backup_dir: ${root}/b
      archive_dir: ${cluster.archiveDir}
      bin_dir: ${cluster.binDir}
`;
    const pb = `
- name: backup of the standby
  hosts: ${replica.name}
  steps:
    - id: start
      pg.backup_start: { label: "standby-{{ run.id }}" }
    - id: snap
      fs.snapshot: { provider: copy, to: "{{ backup_dir }}" }
    - id: stop
      pg.backup_stop: { archive_dir: "{{ archive_dir }}" }
    - id: labels
      backup.write_labels: { to: "{{ backup_dir }}", from: "{{ stop }}", snapshots: ["{{ snap }}"] }
`;
    const load = pgbench(['-c', '4', '-T', '60', '-n'], lc);
    let r: Awaited<ReturnType<typeof runCli>>;
    try {
      // Writes are flowing through the standby's replay before the backup starts.
      await new Promise((res) => setTimeout(res, 2000));
      r = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json'], {
        cwd: workdir({ 'pb.yml': pb, 'inv.yml': inv }),
      });
    } finally {
      load.kill('SIGINT');
    }
    expect(r.code, r.stdout.slice(-3000) + r.stderr).toBe(0);
    const ev = events(r.stdout);
    // PostgreSQL itself says the backup was taken from a standby.
    expect(readFileSync(join(root, 'b', 'backup_label'), 'utf8')).toContain('BACKUP FROM: standby');
    // The step's log: the control file came last.
    const snapAt = ev.find(
      (e) => e.type === 'step_finished' && (e.names as string[]).includes('snap'),
    )!.address;
    const log = ev
      .filter((e) => e.type === 'step_output' && e.address === snapAt && e.stream === 'log')
      .map((e) => String(e.text));
    expect(log).toContain('global/pg_control copied last, after the data directory and 0 tablespace(s)');
    expect(existsSync(join(root, 'b', 'data', 'global', 'pg_control'))).toBe(true);

    // The WAL the copy needs is in the leader's archive once the leader has switched segments.
    const f = String((await sql(lc, 'select pg_walfile_name(pg_switch_wal()) as f'))[0]!.f);
    await waitUntil(`${f} archived`, () => existsSync(join(cluster.archiveDir, f)), 30_000);
    const verify = await runCli(['run', 'v.yml', '-i', 'inv.yml', '--output', 'json'], {
      cwd: workdir({
        'inv.yml': inv,
        'v.yml': `
- name: prove it
  hosts: ${replica.name}
  steps:
    - id: v
      backup.verify:
        from: "{{ backup_dir }}"
        scratch: "{{ backup_dir }}.verify"
        archive_dir: "{{ archive_dir }}"
        bin_dir: "{{ bin_dir }}"
        run_as: ${SERVER_USER}
        checks:
          rows: "select count(*) as n from pgbench_history"
`,
      }),
    });
    expect(verify.code, verify.stdout.slice(-3000) + verify.stderr).toBe(0);
    const out = outputsOf<{ consistent_lsn: string; checks: { rows: { n: string }[] } }>(
      events(verify.stdout),
      'v',
    );
    expect(out.consistent_lsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    // Consistent no earlier than where the standby's backup stopped: the pg_control copied last
    // carried a minimum recovery point at least that late.
    const stopLsn = outputsOf<{ lsn: string }>(ev, 'stop').lsn;
    const lsnNum = (l: string) => {
      const [hi, lo] = l.split('/');
      return BigInt(`0x${hi}`) * 2n ** 32n + BigInt(`0x${lo}`);
    };
    expect(lsnNum(out.consistent_lsn) >= lsnNum(stopLsn), `${out.consistent_lsn} >= ${stopLsn}`).toBe(true);
    // pgbench wrote while the backup was taken: the restored copy holds some of it.
    expect(Number(out.checks.rows[0]!.n)).toBeGreaterThan(0);
  }, 180_000);
});

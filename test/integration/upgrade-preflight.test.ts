// playbooks/pg-major-upgrade.yml's pre-flight refusals on a real two-member Patroni 13 cluster
// (etcd, Debian's 13 and 15 binaries, a real sshd as the server user): what review found missing
// in issue 16. Each run stops in the pre-flight, so one cluster serves every case, and each test
// checks that nothing changed (13 on both, Patroni not paused, no new data directory, no backup).
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, renameSync, symlinkSync } from 'node:fs';
import { chmod, chown, lchown } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from '../../tools/testenv/checks.js';
import {
  type EtcdServer,
  httpRequest,
  lookupUser,
  type PatroniCluster,
  peerSsh,
  pgBinDir,
  SERVER_USER,
  type SshServer,
  startEtcd,
  startPatroniCluster,
  startSshd,
} from '../../tools/testenv/index.js';
import { events, runCli, workdir } from './cli.js';

const PLAYBOOK = fileURLToPath(new URL('../../playbooks/pg-major-upgrade.yml', import.meta.url));

let etcd: EtcdServer;
let sshd: SshServer;
let cluster: PatroniCluster;
let leader: string;
let replica: string;
let root: string;

beforeAll(async () => {
  [etcd, sshd] = await Promise.all([startEtcd(), startSshd()]);
  // wal_level logical: a logical slot can be made on the leader; a preloaded library to check.
  cluster = await startPatroniCluster({
    etcd,
    members: 2,
    version: 13,
    parameters: { wal_level: 'logical', shared_preload_libraries: 'pg_stat_statements' },
  });
  leader = await cluster.leader();
  replica = cluster.members.find((m) => m.name !== leader)!.name;
  const { uid, gid } = await lookupUser(SERVER_USER);
  root = mkdtempSync(join(tmpdir(), 'pgrb-upgrade-preflight-'));
  await chmod(root, 0o755);
  await chown(root, uid, gid);
  // An extension with a shared library, in a database other than the connection's.
  await sql(cluster.clientConfig(leader), 'create database app');
  await sql({ ...cluster.clientConfig(leader), database: 'app' }, 'create extension pgcrypto');
  const until = Date.now() + 30_000;
  for (;;) {
    const seen = await sql<{ n: number }>(
      { ...cluster.clientConfig(replica), database: 'app' },
      "select count(*)::int as n from pg_extension where extname = 'pgcrypto'",
    ).catch(() => [{ n: 0 }]);
    if (seen[0]!.n === 1) break;
    if (Date.now() > until) throw new Error(`${replica} never replayed create extension pgcrypto`);
    await new Promise((r) => setTimeout(r, 250));
  }
}, 120_000);
afterAll(async () => {
  await cluster?.stop();
  await sshd?.stop();
  await etcd?.stop();
});

/** The inventory of upgrade.test.ts, with extra vars for one host. */
async function inventory(hostVars: Record<string, Record<string, string>> = {}): Promise<string> {
  const peer = await peerSsh(sshd);
  const hosts = cluster.members
    .map(
      (m) => `  ${m.name}:
    ssh: { host: 127.0.0.1, port: ${sshd.port}, user: ${SERVER_USER}, identity_file: ${sshd.identityFile}, known_hosts: ${sshd.knownHostsFile} }
    pg: { host: ${m.socketDir}, port: ${m.pgPort}, user: postgres, sslmode: disable }
    patroni: { url: "${m.restUrl}", timeout: 2, config: ${m.configFile} }
    vars:
      pgdata: ${m.dataDir}
      pgdata_new: ${m.memberDir}/data15
      pg_socket_dir: ${m.socketDir}
      patroni_stop_command: ${m.serviceScript} stop
      patroni_start_command: ${m.serviceScript} start${Object.entries(hostVars[m.name] ?? {})
        .map(([k, v]) => `\n      ${k}: ${v}`)
        .join('')}`,
    )
    .join('\n');
  return workdir({
    'inv.yml': `vars:
  pg_bin_old: ${pgBinDir(13)}
  pg_bin_new: ${pgBinDir(15)}
  pg_os_user: ${SERVER_USER}
  backup_root: ${root}/backups
  archive_dir: ${cluster.archiveDir}
  rsync_ssh: ${JSON.stringify(peer.sshCommand)}
  patroni_ttl: 20
  patroni_loop_wait: 2
hosts:
${hosts}
groups:
  patroni: { hosts: [${cluster.members.map((m) => m.name).join(', ')}] }
`,
  });
}

const failures = (stdout: string) =>
  stdout
    .split('\n')
    .filter((l) => l.includes('"failed"') || l.includes('run_finished'))
    .join('\n');

/** Nothing changed: both on 13 as before, Patroni running and not paused, no data15, no backup. */
async function unchanged(): Promise<void> {
  for (const m of cluster.members) {
    const [v] = await sql<{ v: string; standby: boolean }>(
      cluster.clientConfig(m.name),
      "select current_setting('server_version_num') as v, pg_is_in_recovery() as standby",
    );
    expect(v!.v.slice(0, 2), m.name).toBe('13');
    expect(v!.standby, m.name).toBe(m.name !== leader);
    const st = JSON.parse((await httpRequest('GET', `${m.restUrl}/patroni`)).body);
    expect(st.state, m.name).toBe('running');
    expect(st.pause, m.name).toBeFalsy();
    expect(readdirSync(m.memberDir), m.name).not.toContain('data15');
  }
  expect(await cluster.leader()).toBe(leader);
  expect(readdirSync(root)).not.toContain('backups');
}

describe('pg-major-upgrade.yml pre-flight: refusals that change nothing', () => {
  it('an extension library missing on a replica only: refused naming host, extension, database and file', async () => {
    // The replica's PostgreSQL 15 lib directory: the installed one (links) without pgcrypto.so.
    const lib = join(root, 'lib15-without-pgcrypto');
    mkdirSync(lib);
    const real = join(pgBinDir(15), '..', 'lib');
    // pg_stat_statements.so (preloaded) left out too.
    for (const f of readdirSync(real))
      if (f !== 'pgcrypto.so' && f !== 'pg_stat_statements.so') symlinkSync(join(real, f), join(lib, f));
    const cwd = await inventory({ [replica]: { pg_lib_new: lib } });
    const started = Date.now();
    const r = await runCli(['run', PLAYBOOK, '-i', 'inv.yml', '--yes', '--output', 'json'], { cwd });
    expect(r.code, failures(r.stdout) + r.stderr).toBe(1);
    const ev = events(r.stdout);
    const done = ev.filter((e) => e.type === 'step_finished' && e.stepType === 'pg.check_extensions');
    // The leader has every file; the replica lacks one, named with its database and path.
    expect(done.find((e) => e.host === leader)?.status).toBe('ok');
    const failed = ev.filter((e) => e.type === 'step_finished' && e.status === 'failed');
    expect(failed, failures(r.stdout)).toHaveLength(1);
    expect(failed[0]).toMatchObject({ stepType: 'pg.check_extensions', host: replica });
    const error = String(failed[0]!.error);
    expect(error).toContain(replica);
    expect(error).toContain(
      `extension pgcrypto (database app) needs $libdir/pgcrypto: ${lib}/pgcrypto.so is missing`,
    );
    // Once, although both its C functions and its control file's module_pathname name it.
    expect(error.split('pgcrypto.so is missing')).toHaveLength(2);
    expect(error).toContain(
      `shared_preload_libraries needs pg_stat_statements: ${lib}/pg_stat_statements.so is missing`,
    );
    expect(error).not.toContain('plpgsql');
    // Refused in the pre-flight: no pause, no backup, no initdb, nothing to undo.
    expect(ev.some((e) => e.type === 'step_finished' && e.stepType === 'patroni.pause')).toBe(false);
    expect(ev.some((e) => e.type === 'step_finished' && e.stepType === 'pg.initdb')).toBe(false);
    await unchanged();
    expect(Date.now() - started).toBeLessThan(60_000);
  }, 120_000);

  it('a logical slot on the leader: refused naming the slot, which is still there', async () => {
    await sql(
      { ...cluster.clientConfig(leader), database: 'app' },
      "select pg_create_logical_replication_slot('pgrb_cdc', 'test_decoding')",
    );
    const cwd = await inventory();
    const r = await runCli(['run', PLAYBOOK, '-i', 'inv.yml', '--yes', '--output', 'json'], { cwd });
    expect(r.code, failures(r.stdout) + r.stderr).toBe(1);
    const ev = events(r.stdout);
    // Every node's extension files were found this time.
    expect(
      ev.filter(
        (e) => e.type === 'step_finished' && e.stepType === 'pg.check_extensions' && e.status === 'ok',
      ),
    ).toHaveLength(2);
    const failed = ev.filter((e) => e.type === 'step_finished' && e.status === 'failed');
    expect(failed, failures(r.stdout)).toHaveLength(1);
    expect(failed[0]).toMatchObject({ stepType: 'assert', host: leader });
    const error = String(failed[0]!.error);
    expect(error).toContain('slot pgrb_cdc (plugin test_decoding, database app)');
    expect(error).toContain('logical_slots=leave_behind');
    await unchanged();
    const slots = await sql<{ slot_name: string }>(
      cluster.clientConfig(leader),
      "select slot_name from pg_replication_slots where slot_type = 'logical'",
    );
    expect(slots.map((s) => s.slot_name)).toEqual(['pgrb_cdc']);
  }, 120_000);

  it('logical_slots=leave_behind lets the pre-flight go on: the slot named as left behind, the rollback room measured', async () => {
    // Stopped further on, still in the pre-flight: pg_upgrade --check refuses differing checksums.
    const cwd = await inventory();
    const r = await runCli(
      [
        'run',
        PLAYBOOK,
        '-i',
        'inv.yml',
        '--yes',
        '-e',
        'logical_slots=leave_behind',
        '-e',
        'initdb_checksums=false',
        '--output',
        'json',
      ],
      { cwd },
    );
    expect(r.code, failures(r.stdout) + r.stderr).toBe(1);
    const ev = events(r.stdout);
    const failed = ev.find((e) => e.type === 'step_finished' && e.status === 'failed');
    expect(failed?.stepType, failures(r.stdout)).toBe('pg.upgrade');
    const said = ev
      .filter((e) => e.type === 'step_output')
      .map((e) => String(e.text))
      .join('\n');
    expect(said).toContain(
      'left behind (logical_slots=leave_behind): slot pgrb_cdc (plugin test_decoding, database app)',
    );
    expect(said).toMatch(/rollback copy: need \d+ KiB, free \d+ KiB in \//);
    for (const m of cluster.members) expect(said).toContain(`${m.dataDir}/pg_wal is a directory`);
    // A value other than leave_behind is refused (an allowlist of one): by its declaration, before
    // anything runs.
    const bad = await runCli(
      ['run', PLAYBOOK, '-i', 'inv.yml', '--yes', '-e', 'logical_slots=drop', '--output', 'json'],
      { cwd },
    );
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(
      /pg-major-upgrade\.yml:\d+:3: variables\.logical_slots: -e logical_slots: expected one of "leave_behind", got "drop"/,
    );
    await unchanged();
  }, 180_000);

  it("no room for the rollback's full copy: refused in the pre-flight with both figures", async () => {
    // A file system with room for the databases (what the engine's own preflight asks of
    // fs.snapshot) but not for the rest of the data directory (global/, pg_xact/…), which the
    // copy takes too.
    const [size] = await sql<{ bytes: string }>(
      cluster.clientConfig(leader),
      'select sum(pg_database_size(oid))::text as bytes from pg_database',
    );
    const kib = Math.ceil(Number(size!.bytes) / 4096) * 4 + 128;
    const small = join(root, 'small');
    mkdirSync(small);
    const { uid, gid } = await lookupUser(SERVER_USER);
    execFileSync('mount', [
      '-t',
      'tmpfs',
      '-o',
      `size=${kib}k,mode=0755,uid=${uid},gid=${gid}`,
      'tmpfs',
      small,
    ]);
    try {
      const cwd = await inventory();
      const r = await runCli(
        [
          'run',
          PLAYBOOK,
          '-i',
          'inv.yml',
          '--yes',
          '-e',
          'logical_slots=leave_behind',
          '-e',
          `snapshot_root=${small}`,
          '--output',
          'json',
        ],
        { cwd },
      );
      expect(r.code, failures(r.stdout) + r.stderr).toBe(1);
      const failed = events(r.stdout).filter((e) => e.type === 'step_finished' && e.status === 'failed');
      expect(failed, failures(r.stdout)).toHaveLength(1);
      expect(failed[0]).toMatchObject({ stepType: 'shell', host: leader });
      expect(String(failed[0]!.error)).toMatch(
        new RegExp(
          `only ${kib} KiB free in ${small} for the rollback's copy at ${small}: it needs \\d+ KiB \\(databases and tablespaces \\d+ KiB, the rest of \\S+ \\d+ KiB\\)`,
        ),
      );
      await unchanged();
    } finally {
      execFileSync('umount', [small]);
    }
  }, 120_000);

  it('a pg_wal that is a symlink on a replica: refused with the reason and the remedy', async () => {
    // Last: it leaves the replica's WAL moved (a stand-in for another filesystem).
    const rep = cluster.members.find((m) => m.name === replica)!;
    await cluster.stopMember(replica);
    const elsewhere = join(rep.memberDir, 'wal-elsewhere');
    renameSync(join(rep.dataDir, 'pg_wal'), elsewhere);
    symlinkSync(elsewhere, join(rep.dataDir, 'pg_wal'));
    const { uid, gid } = await lookupUser(SERVER_USER);
    await lchown(join(rep.dataDir, 'pg_wal'), uid, gid);
    await cluster.startMember(replica);
    const cwd = await inventory();
    // (The slot of the tests above is let through.)
    const r = await runCli(
      ['run', PLAYBOOK, '-i', 'inv.yml', '--yes', '-e', 'logical_slots=leave_behind', '--output', 'json'],
      { cwd },
    );
    expect(r.code, failures(r.stdout) + r.stderr).toBe(1);
    const failed = events(r.stdout).filter((e) => e.type === 'step_finished' && e.status === 'failed');
    expect(failed, failures(r.stdout)).toHaveLength(1);
    expect(failed[0]).toMatchObject({ stepType: 'shell', host: replica });
    const error = String(failed[0]!.error);
    expect(error).toContain(`${replica}: ${rep.dataDir}/pg_wal is a symlink to ${elsewhere}`);
    expect(error).toContain('Move pg_wal back into the data directory');
    await unchanged();
  }, 120_000);
});

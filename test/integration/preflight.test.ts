// `plan --check` is a preflight, and `run` repeats it before its first change: the programs the
// planned steps call, their destinations and the WAL archive are checked on the real hosts, over
// the real sshd, and a problem stops everything with exit 2 before a run directory exists.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, symlinkSync } from 'node:fs';
import { chmod, chown } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type EtcdServer,
  httpRequest,
  lookupUser,
  type PatroniCluster,
  type PgServer,
  peerSsh,
  pgBinDir,
  SERVER_USER,
  type SshServer,
  setArchiveCommand,
  startEtcd,
  startPatroniCluster,
  startPostgres,
  startSshd,
} from '../../tools/testenv/index.js';
import { runCli, runIds, workdir } from './cli.js';

const UPGRADE = fileURLToPath(new URL('../../playbooks/pg-major-upgrade.yml', import.meta.url));
const BACKUP = fileURLToPath(new URL('../../playbooks/snapshot-backup.yml', import.meta.url));

/** A directory of links to every program of this machine's usual PATH but rsync, readable by all. */
function pathWithoutRsync(): string {
  const bin = mkdtempSync(join(tmpdir(), 'pgrb-norsync-'));
  for (const d of ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'])
    for (const f of existsSync(d) ? readdirSync(d) : [])
      if (f !== 'rsync' && !existsSync(join(bin, f))) symlinkSync(join(d, f), join(bin, f));
  return bin;
}

/** A scratch directory owned by root (the test runs as root), 0755: the server user may not write in it. */
async function rootOwned(): Promise<string> {
  const d = mkdtempSync(join(tmpdir(), 'pgrb-pf-'));
  await chmod(d, 0o755);
  return d;
}

describe('preflight: a missing rsync on the hosts of pg-major-upgrade.yml', () => {
  let etcd: EtcdServer;
  let sshd: SshServer;
  let cluster: PatroniCluster;
  let bin: string;

  beforeAll(async () => {
    bin = pathWithoutRsync();
    await chmod(bin, 0o755);
    [etcd, sshd] = await Promise.all([startEtcd(), startSshd({ path: bin })]);
    cluster = await startPatroniCluster({ etcd, members: 2, version: 13 });
  }, 120_000);
  afterAll(async () => {
    await cluster?.stop();
    await sshd?.stop();
    await etcd?.stop();
  });

  it('plan --check names rsync, its package and the step on each host, exit 2; run changes nothing', async () => {
    const c = cluster;
    const peer = await peerSsh(sshd);
    const { uid, gid } = await lookupUser(SERVER_USER);
    const root = mkdtempSync(join(tmpdir(), 'pgrb-pf-upgrade-'));
    await chmod(root, 0o755);
    await chown(root, uid, gid);
    const hosts = c.members
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
      patroni_start_command: ${m.serviceScript} start`,
      )
      .join('\n');
    const cwd = workdir({
      'inv.yml': `vars:
  pg_bin_old: ${pgBinDir(13)}
  pg_bin_new: ${pgBinDir(15)}
  pg_os_user: ${SERVER_USER}
  backup_root: ${root}
  archive_dir: ${c.archiveDir}
  rsync_ssh: ${JSON.stringify(peer.sshCommand)}
hosts:
${hosts}
groups:
  patroni: { hosts: [${c.members.map((m) => m.name).join(', ')}] }
`,
    });
    const leader = await c.leader();
    const replica = c.members.find((m) => m.name !== leader)!.name;
    const sync = "needed by step 'Sync the replicas from the leader (rsync --hard-links --size-only)'";

    const plan = await runCli(['plan', UPGRADE, '-i', 'inv.yml', '--check'], { cwd });
    expect(plan.code, plan.stdout + plan.stderr).toBe(2);
    // Located at the step in the playbook, naming the host, the step and the package.
    expect(plan.stderr).toMatch(
      new RegExp(
        `pg-major-upgrade\\.yml:\\d+:\\d+: .*pg\\.sync_replicas: preflight: rsync not found on ${leader} \\(${sync.replace(/[()]/g, '\\$&')}, Debian package: rsync\\)`,
      ),
    );
    expect(plan.stderr).toContain(
      `preflight: rsync not found on ${replica} (${sync}, Debian package: rsync)`,
    );
    // The check-only step that asks the replica over ssh needs it there too.
    expect(plan.stderr).toContain(
      `preflight: rsync not found on ${replica} (needed by step 'The leader reaches every replica with rsync over ssh (as the sync will)', Debian package: rsync)`,
    );
    // Nothing else is missing: pg_upgrade, initdb and pg_controldata of both majors are there.
    expect(plan.stderr).not.toMatch(/not found on .*(pg_upgrade|initdb|pg_controldata|pg_ctl)/);

    const run = await runCli(['run', UPGRADE, '-i', 'inv.yml', '--yes'], { cwd });
    expect(run.code, run.stdout + run.stderr).toBe(2);
    expect(run.stderr).toContain(`preflight: rsync not found on ${leader}`);
    // Nothing ran: no run directory, Patroni not paused, no new data directory.
    expect(runIds(cwd)).toEqual([]);
    const config = JSON.parse((await httpRequest('GET', `${c.members[0]!.restUrl}/config`)).body);
    expect(config.pause).toBeFalsy();
    for (const m of c.members) expect(existsSync(join(m.memberDir, 'data15')), m.name).toBe(false);

    // rsync installed (on the sessions' PATH): the same preflight passes.
    symlinkSync('/usr/bin/rsync', join(bin, 'rsync'));
    const ok = await runCli(['plan', UPGRADE, '-i', 'inv.yml', '--check'], { cwd });
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
  }, 120_000);
});

describe('preflight: the destination and the archive of snapshot-backup.yml', () => {
  let s: PgServer;
  let sshd: SshServer;
  beforeAll(async () => {
    [s, sshd] = await Promise.all([startPostgres({ version: 15 }), startSshd()]);
  }, 60_000);
  afterAll(async () => {
    await Promise.all([s?.stop(), sshd?.stop()]);
  });

  const inventory = (root: string) => `
hosts:
  db:
    ssh: { host: 127.0.0.1, port: ${sshd.port}, user: ${SERVER_USER}, identity_file: ${sshd.identityFile}, known_hosts: ${sshd.knownHostsFile} }
    pg: { host: 127.0.0.1, port: ${s.port}, user: postgres, sslmode: disable }
    vars:
      backup_root: ${root}/backups
      archive_dir: ${s.archiveDir}
      pg_bin_dir: ${s.binDir}
      pg_os_user: ${SERVER_USER}
`;

  async function backupSessions(): Promise<number> {
    const c = new pg.Client({ host: s.host, port: s.port, user: 'postgres', database: 'postgres' });
    await c.connect();
    try {
      const r = await c.query(
        "select count(*)::int as n from pg_stat_activity where application_name = 'pgrunbook-backup'",
      );
      return r.rows[0].n;
    } finally {
      await c.end();
    }
  }

  it('a backup directory the login may not write in: exit 2 at plan --check and at run, nothing started', async () => {
    const root = await rootOwned();
    const cwd = workdir({ 'inv.yml': inventory(root) });
    const plan = await runCli(['plan', BACKUP, '-i', 'inv.yml', '--check'], { cwd });
    expect(plan.code, plan.stdout + plan.stderr).toBe(2);
    expect(plan.stderr).toMatch(
      new RegExp(
        `snapshot-backup\\.yml:\\d+:\\d+: .*fs\\.snapshot: preflight: ${root}/backups/db-.*\\.snap on db is not writable by ${SERVER_USER}: ${root}, the nearest existing directory, is not a writable directory \\(needed by step 'Snapshot PGDATA'\\)`,
      ),
    );
    const run = await runCli(['run', BACKUP, '-i', 'inv.yml'], { cwd });
    expect(run.code, run.stdout + run.stderr).toBe(2);
    expect(run.stderr).toContain('is not writable by');
    expect(runIds(cwd)).toEqual([]);
    expect(await backupSessions()).toBe(0);

    // The same directory, now the login's: the preflight passes (the check can say yes).
    const { uid, gid } = await lookupUser(SERVER_USER);
    await chown(root, uid, gid);
    const ok = await runCli(['plan', BACKUP, '-i', 'inv.yml', '--check'], { cwd });
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
  }, 60_000);

  it('a backup directory on a 2 MiB file system: the copy needs the size of the databases, exit 2', async () => {
    const root = mkdtempSync(join(tmpdir(), 'pgrb-pf-small-'));
    const { uid, gid } = await lookupUser(SERVER_USER);
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=2m,mode=0755,uid=${uid},gid=${gid}`, 'tmpfs', root]);
    try {
      const cwd = workdir({ 'inv.yml': inventory(root) });
      const plan = await runCli(['plan', BACKUP, '-i', 'inv.yml', '--check'], { cwd });
      expect(plan.code, plan.stdout + plan.stderr).toBe(2);
      expect(plan.stderr).toMatch(
        new RegExp(
          `fs\\.snapshot: preflight: only 2\\.0 MiB free in ${root} on db, and the copy to ${root}/backups/db-.*\\.snap needs about [0-9.]+ MiB \\(the size of its databases\\) \\(needed by step 'Snapshot PGDATA'\\)`,
        ),
      );
      // The labels are small: no room asked for them.
      expect(plan.stderr).not.toContain("needed by step 'Keep the labels with the backup'");
      const run = await runCli(['run', BACKUP, '-i', 'inv.yml'], { cwd });
      expect(run.code, run.stdout + run.stderr).toBe(2);
      expect(runIds(cwd)).toEqual([]);
    } finally {
      execFileSync('umount', [root]);
    }
  }, 60_000);

  it('a failing archive_command: plan --check reports the archiver at pg.backup_start, and run starts no backup', async () => {
    const root = mkdtempSync(join(tmpdir(), 'pgrb-pf-'));
    const { uid, gid } = await lookupUser(SERVER_USER);
    await chmod(root, 0o755);
    await chown(root, uid, gid);
    mkdirSync(join(root, 'backups'));
    await chown(join(root, 'backups'), uid, gid);
    const cwd = workdir({ 'inv.yml': inventory(root) });
    const c = new pg.Client({ host: s.host, port: s.port, user: 'postgres', database: 'postgres' });
    await c.connect();
    try {
      await setArchiveCommand(s, 'false');
      await c.query('create table if not exists churn (x int)');
      await c.query('insert into churn select generate_series(1, 1000)');
      await c.query('select pg_switch_wal()');
      const t0 = Date.now();
      while (
        Number((await c.query('select failed_count from pg_stat_archiver')).rows[0].failed_count) === 0
      ) {
        if (Date.now() - t0 > 15_000) throw new Error('the archiver never failed');
        await new Promise((res) => setTimeout(res, 100));
      }
      const plan = await runCli(['plan', BACKUP, '-i', 'inv.yml', '--check'], { cwd });
      expect(plan.code, plan.stdout + plan.stderr).toBe(2);
      expect(plan.stderr).toMatch(
        /snapshot-backup\.yml:\d+:\d+: .*pg\.backup_start: preflight: WAL archiving on db: the WAL archiver is failing: last failure at .* \(needed by step 'Start the backup on a held session'\)/,
      );
      expect(plan.stderr).not.toContain('not writable');
      const run = await runCli(['run', BACKUP, '-i', 'inv.yml'], { cwd });
      expect(run.code, run.stdout + run.stderr).toBe(2);
      expect(run.stderr).toContain('the WAL archiver is failing');
      expect(runIds(cwd)).toEqual([]);
      expect(await backupSessions()).toBe(0);
    } finally {
      await setArchiveCommand(s, null);
    }
    // Once a segment is archived again, the preflight passes (a new segment wakes the archiver).
    await c.query('insert into churn select generate_series(1, 10)');
    await c.query('select pg_switch_wal()');
    const t0 = Date.now();
    for (;;) {
      const r = await c.query(
        "select coalesce(last_failed_time > coalesce(last_archived_time, '-infinity'), false) as failing from pg_stat_archiver",
      );
      if (!r.rows[0].failing) break;
      if (Date.now() - t0 > 20_000) throw new Error('the archiver never recovered');
      await new Promise((res) => setTimeout(res, 200));
    }
    await c.end();
    const ok = await runCli(['plan', BACKUP, '-i', 'inv.yml', '--check'], { cwd });
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
  }, 90_000);
});

// Snapshot backups on real PostgreSQL 13 and 15 under a concurrent writer: the held session,
// the labels kept byte for byte, and a restore that reaches consistency with every committed row.
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTempDir, type PgServer, startPostgres, startSshd } from '../../tools/testenv/index.js';
import { events, journalOf, runCli, runIds, startCli, waitUntil, workdir } from './cli.js';

const servers: Partial<Record<13 | 15, PgServer>> = {};
beforeAll(async () => {
  [servers[15], servers[13]] = await Promise.all([
    startPostgres({ version: 15 }),
    startPostgres({ version: 13 }),
  ]);
});
afterAll(async () => {
  await Promise.all(Object.values(servers).map((s) => s?.stop()));
});

function client(s: PgServer): pg.Client {
  return new pg.Client({ host: s.host, port: s.port, user: 'postgres', database: 'postgres' });
}

/** A writer committing one row at a time and recording when each commit was acknowledged. */
async function startWriter(s: PgServer) {
  const c = client(s);
  await c.connect();
  await c.query('create table if not exists t (id bigserial primary key, at timestamptz default now())');
  const acked: { id: number; at: number }[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const r = await c.query('insert into t default values returning id');
      acked.push({ id: Number(r.rows[0].id), at: Date.now() });
    }
  })();
  return {
    acked,
    async stop() {
      running = false;
      await loop;
      await c.end();
    },
  };
}

function scratchRoot(): string {
  const d = mkdtempSync(join(tmpdir(), 'pgrb-backup-'));
  chmodSync(d, 0o755);
  return d;
}

const inventory = (s: PgServer, root: string) => `
hosts:
  db:
    transport: local
    pg: { host: 127.0.0.1, port: ${s.port}, user: postgres, sslmode: disable }
    vars:
      backup_dir: ${root}/backup
      scratch: ${root}/verify
      archive: ${s.archiveDir}
      bin_dir: ${s.binDir}
`;

const PLAYBOOK = `
- name: snapshot backup with verification
  hosts: db
  steps:
    - id: start
      pg.backup_start: { label: "it-{{ run.id }}" }
    - id: snap
      fs.snapshot: { provider: copy, to: "{{ backup_dir }}" }
    - pause: { seconds: 0.3 }
    - id: stop
      pg.backup_stop: { archive_dir: "{{ archive }}" }
    - id: labels
      backup.write_labels: { to: "{{ backup_dir }}", from: "{{ stop }}", snapshots: ["{{ snap }}"] }
    - id: verify
      backup.verify:
        from: "{{ backup_dir }}"
        scratch: "{{ scratch }}"
        archive_dir: "{{ archive }}"
        bin_dir: "{{ bin_dir }}"
        run_as: pgrb
        checks:
          rows: "select max(id) as max, count(*) as n from t"
`;

describe.each([15, 13] as const)('PostgreSQL %i', (version) => {
  it('a backup under a concurrent writer restores to consistency with every row committed before the stop', async () => {
    // Two restores: to the end of the backup (recovery_target immediate), which holds every row
    // committed before pg.backup_stop was called; and of all archived WAL once the writer's last
    // segment is archived, which holds every row committed before pg.backup_stop returned.
    const s = servers[version]!;
    const root = scratchRoot();
    const writer = await startWriter(s);
    let r: Awaited<ReturnType<typeof runCli>>;
    try {
      await new Promise((res) => setTimeout(res, 300));
      r = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json'], {
        cwd: workdir({ 'pb.yml': PLAYBOOK, 'inv.yml': inventory(s, root) }),
      });
    } finally {
      await writer.stop();
    }
    const c = client(s);
    await c.connect();
    const seg = (await c.query('select pg_walfile_name(pg_switch_wal()) as f')).rows[0].f as string;
    await c.end();
    await waitUntil(`${seg} was never archived`, () => existsSync(join(s.archiveDir, seg)));
    const latest = await runCli(['run', 'v.yml', '-i', 'inv.yml', '--output', 'json'], {
      cwd: workdir({
        'inv.yml': inventory(s, root),
        'v.yml': `- name: v
  hosts: db
  steps:
    - id: v
      backup.verify:
        from: "{{ backup_dir }}"
        scratch: "{{ scratch }}-latest"
        archive_dir: "{{ archive }}"
        bin_dir: "{{ bin_dir }}"
        run_as: pgrb
        recovery_target: latest
        checks: { rows: "select max(id) as max, count(*) as n from t" }
`,
      }),
    });
    expect(latest.stderr + latest.stdout.slice(-2000)).not.toContain('problem');
    expect(latest.code).toBe(0);
    const latestRows = (
      events(latest.stdout).find((e) => e.type === 'step_finished')!.outputs as {
        checks: { rows: { max: number; n: number }[] };
      }
    ).checks.rows[0]!;
    const ev = events(r.stdout);
    expect(
      r.stdout
        .split('\n')
        .filter((l) => l.includes('"failed"'))
        .join('\n'),
    ).toBe('');
    expect(r.code).toBe(0);
    const fin = (id: string) =>
      ev.find((e) => e.type === 'step_finished' && (e.names as string[]).includes(id))!;
    const start = fin('start').outputs as { version_num: number };
    const stop = fin('stop').outputs as { labelfile: string; lsn: string; seconds_in_backup: number };
    expect(Math.floor(start.version_num / 10000)).toBe(version);
    // The control file is copied last, after data and tablespaces, as pg_basebackup does (from a
    // standby, its minimum recovery point is what makes the copy's consistency point late enough).
    const snapAt = fin('snap').address;
    const snapLog = ev
      .filter((e) => e.type === 'step_output' && e.address === snapAt && e.stream === 'log')
      .map((e) => String(e.text));
    expect(snapLog).toContain('global/pg_control copied last, after the data directory and 0 tablespace(s)');
    expect(existsSync(join(root, 'backup', 'data', 'global', 'pg_control'))).toBe(true);
    // The labels on disk are exactly what PostgreSQL returned.
    expect(readFileSync(join(root, 'backup', 'backup_label'), 'utf8')).toBe(stop.labelfile);
    const manifest = JSON.parse(readFileSync(join(root, 'backup', 'manifest.json'), 'utf8'));
    expect(manifest).toMatchObject({ status: 'complete', stop_lsn: stop.lsn });
    const stopCalled = Date.parse(
      ev.find((e) => e.type === 'step_started' && e.stepType === 'pg.backup_stop')!.ts as string,
    );
    const stopReturned = Date.parse(fin('stop').ts as string);
    const lastBefore = (at: number) => writer.acked.filter((a) => a.at < at).at(-1)!.id;
    expect(lastBefore(stopCalled)).toBeGreaterThan(10);
    // At the end of the backup: every row acknowledged before pg.backup_stop was called, no gap.
    const verify = fin('verify').outputs as {
      consistent_lsn: string;
      checks: { rows: { max: number; n: number }[] };
    };
    const restored = verify.checks.rows[0]!;
    expect(Number(restored.max)).toBeGreaterThanOrEqual(lastBefore(stopCalled));
    expect(Number(restored.n)).toBe(Number(restored.max));
    // With the archive replayed: every row acknowledged before pg.backup_stop returned, no gap.
    expect(Number(latestRows.max)).toBeGreaterThanOrEqual(lastBefore(stopReturned));
    expect(Number(latestRows.n)).toBe(Number(latestRows.max));
    expect(verify.consistent_lsn).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    // Scratch copy cleaned up.
    expect(existsSync(join(root, 'verify'))).toBe(false);
  });
});

describe('failures around the held backup session', () => {
  it('pg_terminate_backend of the held session fails the run with the backup message; no manifest claims a backup', async () => {
    const s = servers[15]!;
    const root = scratchRoot();
    const cwd = workdir({
      'inv.yml': inventory(s, root),
      'pb.yml': `
- name: killed
  hosts: db
  steps:
    - id: start
      pg.backup_start: { label: "killed" }
    - id: snap
      fs.snapshot: { provider: copy, to: "{{ backup_dir }}" }
    - pause: { seconds: 20 }
    - id: stop
      pg.backup_stop: {}
    - backup.write_labels: { to: "{{ backup_dir }}", from: "{{ stop }}" }
`,
    });
    const { done } = startCli(['run', 'pb.yml', '-i', 'inv.yml'], { cwd });
    const t0 = Date.now();
    await waitUntil(
      'the pause never started',
      () =>
        runIds(cwd).length > 0 &&
        journalOf(cwd).some((e) => e.type === 'step_started' && e.stepType === 'pause'),
    );
    const c = client(s);
    await c.connect();
    const killed = await c.query(
      "select pg_terminate_backend(pid) as ok from pg_stat_activity where application_name = 'pgrunbook-backup'",
    );
    await c.end();
    expect(killed.rows).toEqual([{ ok: true }]);
    const r = await done;
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(
      'the backup was aborted by PostgreSQL when its session ended; nothing taken since backup start is a valid backup',
    );
    expect(Date.now() - t0).toBeLessThan(15_000);
    // Compensation removed the snapshot; nothing claims a backup.
    expect(existsSync(join(root, 'backup', 'manifest.json'))).toBe(false);
    expect(existsSync(join(root, 'backup', 'data'))).toBe(false);
    const j = journalOf(cwd);
    expect(j.some((e) => e.type === 'run_aborted')).toBe(true);
    expect(j.filter((e) => e.type === 'undo_finished').map((e) => e.title)).toEqual([
      'fs.snapshot',
      'pg.backup_start',
    ]);
  });

  it('a failing archive_command makes the run refuse before starting (the preflight of pg.backup_start)', async () => {
    const s = servers[13]!;
    const c = client(s);
    await c.connect();
    try {
      await c.query("alter system set archive_command = 'false'");
      await c.query('select pg_reload_conf()');
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
      const root = scratchRoot();
      const cwd = workdir({
        'inv.yml': inventory(s, root),
        'pb.yml': '- name: b\n  hosts: db\n  steps:\n    - pg.backup_start: { label: x }\n',
      });
      const r = await runCli(['run', 'pb.yml', '-i', 'inv.yml'], { cwd });
      // pg.backup_start runs the same check again when it starts (the archive may fail meanwhile).
      expect(r.code).toBe(2);
      expect(r.stderr).toContain('preflight: WAL archiving on db: the WAL archiver is failing');
      expect(runIds(cwd)).toEqual([]);
      const active = await c.query(
        "select count(*)::int as n from pg_stat_activity where application_name = 'pgrunbook-backup'",
      );
      expect(active.rows[0].n).toBe(0);
    } finally {
      await c.query(
        `alter system set archive_command = 'test ! -f ${s.archiveDir}/%f && cp %p ${s.archiveDir}/%f'`,
      );
      await c.query('select pg_reload_conf()');
      // The archiver retries on its own only after a minute: a new segment wakes it, and until it
      // archives again the next tests' preflight would rightly find it failing.
      await c.query('insert into churn select generate_series(1, 10)');
      await c.query('select pg_switch_wal()');
      for (const t1 = Date.now(); ; ) {
        const r = await c.query(
          "select coalesce(last_failed_time > coalesce(last_archived_time, '-infinity'), false) as failing from pg_stat_archiver",
        );
        if (!r.rows[0].failing) break;
        if (Date.now() - t1 > 20_000) break; // the next test's preflight says so
        await new Promise((res) => setTimeout(res, 100));
      }
      await c.end();
    }
  });

  it('backup.write_labels pointed at the live data directory is refused and nothing is written', async () => {
    const s = servers[15]!;
    const root = scratchRoot();
    const cwd = workdir({
      'inv.yml': inventory(s, root),
      'pb.yml': `
- name: wrong place
  hosts: db
  steps:
    - id: start
      pg.backup_start: { label: "wrong-place" }
    - id: stop
      pg.backup_stop: {}
    - backup.write_labels: { to: "${s.dataDir}", from: "{{ stop }}" }
`,
    });
    const r = await runCli(['run', 'pb.yml', '-i', 'inv.yml'], { cwd });
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(
      `refusing to write backup_label: ${s.dataDir} is the data directory of a running PostgreSQL`,
    );
    expect(existsSync(join(s.dataDir, 'backup_label'))).toBe(false);
    expect(existsSync(join(s.dataDir, 'manifest.json'))).toBe(false);
  });

  it('a plan of playbooks/snapshot-backup.yml with --check shows the SQL of each server version', async () => {
    const playbook = fileURLToPath(new URL('../../playbooks/snapshot-backup.yml', import.meta.url));
    const host = (s: PgServer) =>
      `{ transport: local, pg: { port: ${s.port}, sslmode: disable }, vars: { backup_root: /srv/b, archive_dir: ${s.archiveDir} } }`;
    const inv = `hosts:\n  v13: ${host(servers[13]!)}\n  v15: ${host(servers[15]!)}\n`;
    const r = await runCli(['plan', playbook, '-i', 'inv.yml', '--check'], {
      cwd: workdir({ 'inv.yml': inv }),
    });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    // Hosts differ, so each step shows one block per host: find each host's start and stop SQL.
    const block = (host: string, step: string) => {
      const part = r.stdout.split(step)[1]!;
      return part.split(`on ${host}:`)[1]!.split(/\n {5}on |\n {2}\d+\. /)[0]!;
    };
    expect(block('v13', 'Start the backup')).toContain(
      'SQL: select pg_start_backup($1, $2, false)::text as lsn',
    );
    expect(block('v15', 'Start the backup')).toContain('SQL: select pg_backup_start($1, $2)::text as lsn');
    expect(block('v13', 'Stop the backup')).toContain('from pg_stop_backup(false, $1)');
    expect(block('v15', 'Stop the backup')).toContain('from pg_backup_stop($1)');
    expect(block('v13', 'Start the backup')).not.toContain('pg_backup_start');
    expect(r.stdout).toContain('v13: PostgreSQL 13');
    expect(r.stdout).toContain('v15: PostgreSQL 15');
  });

  it('backup.restore leaves the copy running until the run fails; its undo stops and removes it', async () => {
    const s = servers[15]!;
    const root = scratchRoot();
    const cwd = workdir({
      'inv.yml': inventory(s, root),
      'pb.yml': `
- name: restore and fail
  hosts: db
  steps:
    - id: start
      pg.backup_start: { label: "restore-test" }
    - id: snap
      fs.snapshot: { provider: copy, to: "{{ backup_dir }}", keep: true }
    - id: stop
      pg.backup_stop: {}
    - backup.write_labels: { to: "{{ backup_dir }}", from: "{{ stop }}", snapshots: ["{{ snap }}"] }
    - id: restored
      backup.restore: { from: "{{ backup_dir }}", scratch: "{{ scratch }}", archive_dir: "{{ archive }}", bin_dir: "{{ bin_dir }}", run_as: pgrb }
    - name: the copy is up
      shell: "test -f {{ scratch }}/postmaster.pid && echo running"
    - name: fail on purpose
      shell: "exit 1"
`,
    });
    const r = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json'], { cwd });
    expect(r.code).toBe(1);
    const ev = events(r.stdout);
    expect(ev.some((e) => e.type === 'step_output' && String(e.text).includes('running'))).toBe(true);
    expect(ev.filter((e) => e.type === 'undo_finished' && e.ok).map((e) => e.stepType ?? e.title)).toContain(
      'backup.restore',
    );
    expect(existsSync(join(root, 'verify'))).toBe(false);
    // A failure after the labels keeps the backup: complete, its copy in place (issue 16).
    expect(JSON.parse(readFileSync(join(root, 'backup', 'manifest.json'), 'utf8')).status).toBe('complete');
    expect(existsSync(join(root, 'backup', 'data', 'PG_VERSION'))).toBe(true);
  });
});

describe('tablespaces', () => {
  it('verify restores tablespaces from the backup beside the copy and never touches the live ones', async () => {
    const s = servers[15]!;
    const root = scratchRoot();
    const live = await makeTempDir('pgrb-ts');
    const c = client(s);
    await c.connect();
    await c.query(`create tablespace ts_it location '${live}'`);
    await c.query("create table tt (v text) tablespace ts_it; insert into tt values ('before')");
    const inv = inventory(s, root);
    const backup = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json'], {
      cwd: workdir({
        'inv.yml': inv,
        'pb.yml': `
- name: tablespace backup
  hosts: db
  steps:
    - id: start
      pg.backup_start: { label: "ts" }
    - id: snap
      fs.snapshot: { provider: copy, to: "{{ backup_dir }}.snap" }
    - pg.query: "update tt set v = 'during'"
    - id: stop
      pg.backup_stop: { archive_dir: "{{ archive }}" }
    - backup.write_labels: { to: "{{ backup_dir }}", from: "{{ stop }}", snapshots: ["{{ snap }}"] }
`,
      }),
    });
    expect(backup.code).toBe(0);
    const stop = events(backup.stdout).find(
      (e) => e.type === 'step_finished' && (e.names as string[]).includes('stop'),
    )!.outputs as { spcmapfile: string };
    expect(stop.spcmapfile).toContain(live);
    await c.query("update tt set v = 'after'");
    await c.query('checkpoint');
    const { execSync } = await import('node:child_process');
    const hashLive = () => execSync(`find ${live} -type f -exec sha256sum {} + | sort`).toString();
    const beforeVerify = hashLive();
    const verify = await runCli(['run', 'v.yml', '-i', 'inv.yml', '--output', 'json'], {
      cwd: workdir({
        'inv.yml': inv,
        'v.yml': `
- name: verify
  hosts: db
  steps:
    - id: v
      backup.verify:
        from: "{{ backup_dir }}"
        scratch: "{{ scratch }}"
        archive_dir: "{{ archive }}"
        bin_dir: "{{ bin_dir }}"
        run_as: pgrb
        keep: true
        recovery_target: latest
        checks: { tt: "select v from tt" }
`,
      }),
    });
    expect(verify.code).toBe(0);
    const out = events(verify.stdout).find((e) => e.type === 'step_finished')!.outputs as {
      checks: { tt: { v: string }[] };
    };
    // The copy saw the update made during the backup, from its own tablespace copy...
    expect(out.checks.tt).toEqual([{ v: 'during' }]);
    // ...whose link points beside the scratch copy, not at the live directory...
    const links = execSync(`find ${root}/verify/pg_tblspc -maxdepth 1 -type l -exec readlink {} +`)
      .toString()
      .trim();
    expect(links.startsWith(`${root}/verify.tblspc/`)).toBe(true);
    // ...and the live tablespace's files are exactly as they were.
    expect(hashLive()).toBe(beforeVerify);
    expect((await c.query('select v from tt')).rows).toEqual([{ v: 'after' }]);
    await c.query('drop table tt');
    await c.query('drop tablespace ts_it');
    await c.end();
  });

  it('recover puts the tablespace back where the backup’s tablespace_map says, refusing while its version directory is there', async () => {
    const s = servers[13]!;
    const root = scratchRoot();
    const live = await makeTempDir('pgrb-ts');
    const sock = await makeTempDir('pgrb-sock');
    const c = client(s);
    await c.connect();
    await c.query(`create tablespace ts_rec location '${live}'`);
    await c.query(
      "create table tr (v text) tablespace ts_rec; insert into tr select 'row ' || g from generate_series(1, 1000) g",
    );
    const inv = inventory(s, root);
    const backup = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json'], {
      cwd: workdir({
        'inv.yml': inv,
        'pb.yml': `
- name: tablespace backup
  hosts: db
  steps:
    - id: start
      pg.backup_start: { label: "ts-rec" }
    - id: snap
      fs.snapshot: { provider: copy, to: "{{ backup_dir }}.snap" }
    - pg.query: "insert into tr values ('during')"
    - id: stop
      pg.backup_stop: { archive_dir: "{{ archive }}" }
    - backup.write_labels: { to: "{{ backup_dir }}", from: "{{ stop }}", snapshots: ["{{ snap }}"] }
`,
      }),
    });
    expect(backup.code, backup.stdout + backup.stderr).toBe(0);
    const recover = workdir({
      'inv.yml': inv,
      'r.yml': `
- name: recover in place
  hosts: db
  steps:
    - id: r
      backup.recover:
        from: "{{ backup_dir }}"
        data_dir: "{{ scratch }}"
        bin_dir: "{{ bin_dir }}"
        archive_dir: "{{ archive }}"
        run_as: pgrb
`,
    });
    // The live tablespace's PG_13_* is where the copy would go: refused, nothing written.
    const [version] = readdirSync(live);
    expect(version).toMatch(/^PG_13_\d+$/);
    const refused = await runCli(['run', 'r.yml', '-i', 'inv.yml', '--output', 'json'], { cwd: recover });
    expect(refused.code).toBe(1);
    expect(refused.stdout).toContain(`${live}/${version} exists: move it aside first`);
    expect(existsSync(join(root, 'verify'))).toBe(false);
    // Once the location is free (the live server dropped the tablespace), it is restored there.
    await c.query('drop table tr');
    await c.query('drop tablespace ts_rec');
    await c.end();
    expect(readdirSync(live)).toEqual([]);
    const ok = await runCli(['run', 'r.yml', '-i', 'inv.yml', '--output', 'json'], { cwd: recover });
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    const out = events(ok.stdout).find((e) => e.type === 'step_finished')!.outputs as {
      tablespaces: { oid: string; location: string }[];
    };
    expect(out.tablespaces).toEqual([{ oid: expect.stringMatching(/^\d+$/), location: live }]);
    expect(readdirSync(live)).toEqual([version]);
    // Recovery made the link from the map; the restored server reads the rows from there.
    expect(readlinkSync(join(root, 'verify', 'pg_tblspc', out.tablespaces[0]!.oid))).toBe(live);
    const ctl = (...a: string[]) =>
      spawnSync(
        'runuser',
        ['-u', 'pgrb', '--', `${s.binDir}/pg_ctl`, '-D', join(root, 'verify'), '-w', ...a],
        {
          encoding: 'utf8',
        },
      );
    const up = ctl(
      '-o',
      `-c listen_addresses='' -c unix_socket_directories=${sock} -c archive_mode=off -c port=5439`,
      '-l',
      `${sock}/restored.log`,
      'start',
    );
    expect(up.status, up.stderr + up.stdout).toBe(0);
    try {
      const r = new pg.Client({ host: sock, port: 5439, user: 'postgres', database: 'postgres' });
      await r.connect();
      const rows = await r.query(
        "select count(*)::int as n, count(*) filter (where v = 'during')::int as during from tr",
      );
      await r.end();
      expect(rows.rows[0]).toEqual({ n: 1001, during: 1 });
    } finally {
      ctl('-m', 'fast', 'stop');
    }
  });
});

describe('over ssh as an unprivileged user with become: sudo', () => {
  it('backs up, keeps the labels and verifies the restore', async () => {
    const s = servers[15]!;
    const sshd = await startSshd();
    try {
      const root = scratchRoot();
      const inv = `
hosts:
  db:
    transport: ssh
    ssh: { host: 127.0.0.1, port: ${sshd.port}, user: pgrb, identity_file: ${sshd.identityFile}, known_hosts: ${sshd.knownHostsFile} }
    become: sudo
    pg: { host: 127.0.0.1, port: ${s.port}, user: postgres, sslmode: disable }
    vars:
      backup_root: ${root}/backups
      archive_dir: ${s.archiveDir}
      pg_bin_dir: ${s.binDir}
      pg_os_user: pgrb
`;
      const playbook = fileURLToPath(new URL('../../playbooks/snapshot-backup.yml', import.meta.url));
      const r = await runCli(['run', playbook, '-i', 'inv.yml', '--output', 'json'], {
        cwd: workdir({ 'inv.yml': inv }),
      });
      expect(
        r.stdout
          .split('\n')
          .filter((l) => l.includes('"status":"failed"'))
          .join('\n'),
      ).toBe('');
      expect(r.code).toBe(0);
      const labels = events(r.stdout).find(
        (e) => e.type === 'step_finished' && (e.names as string[]).includes('labels'),
      )!.outputs as { dir: string };
      // Written through sudo: root-owned, private.
      const { statSync } = await import('node:fs');
      const st = statSync(join(labels.dir, 'backup_label'));
      expect(st.uid).toBe(0);
      expect((st.mode & 0o777).toString(8)).toBe('600');
    } finally {
      await sshd.stop();
    }
  });
});

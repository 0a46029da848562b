// pg.basebackup and pg.recover_to_lsn against a real PostgreSQL 13: a copy taken with a kept
// physical slot, recovered to a logical slot's consistent point and promoted there, holds what
// committed before that point and nothing after; its new timeline never reaches the source's WAL
// archive, and its configuration is as the source's was. A failure afterwards removes the copy and
// drops the slot. The refusals (a role without REPLICATION, no pg_hba line) change nothing.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql, waitUntil } from '../../tools/testenv/checks.js';
import {
  freePort,
  makeTempDir,
  type PgServer,
  pgBinDir,
  runAs,
  SERVER_USER,
  startPostgres,
} from '../../tools/testenv/index.js';
import { events, journalOf, outputsOf, runCli, workdir } from './cli.js';

const PASSWORD = 'src-Secret-7731';
const OTHER_PASSWORD = 'other-Secret-4412';
const BIN13 = pgBinDir(13);
let src: PgServer;
let dir: string;

const admin = (s: PgServer) => ({ host: s.socketDir, port: s.port, user: 'postgres', database: 'postgres' });

beforeAll(async () => {
  src = await startPostgres({ version: 13, password: PASSWORD, settings: { wal_level: 'logical' } });
  dir = await makeTempDir('pgrb-bb-');
  await sql(admin(src), 'create table t (id int primary key, phase text not null)');
  await sql(admin(src), `create role norepl login password '${OTHER_PASSWORD}'`);
  await sql(admin(src), `create role repl2 login replication password '${OTHER_PASSWORD}'`);
}, 90_000);
afterAll(async () => {
  await src?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const inventory = () => `hosts:
  src:
    transport: local
    pg: { host: 127.0.0.1, port: ${src.port}, user: postgres, database: postgres, sslmode: disable, password: { env: SRC_PW } }
  norepl:
    transport: local
    pg: { host: 127.0.0.1, port: ${src.port}, user: postgres, database: postgres, sslmode: disable, password: { env: SRC_PW }, replication_user: norepl, replication_password: { env: OTHER_PW } }
  repl2:
    transport: local
    pg: { host: 127.0.0.1, port: ${src.port}, user: postgres, database: postgres, sslmode: disable, password: { env: SRC_PW }, replication_user: repl2, replication_password: { env: OTHER_PW } }
  copyhost:
    transport: local
    vars: { pg_os_user: ${SERVER_USER} }
`;
const env = { SRC_PW: PASSWORD, OTHER_PW: OTHER_PASSWORD };

const copyPlaybook = (to: string, tail = '') => `
- name: copy
  hosts: copyhost
  steps:
    - id: bb
      pg.basebackup: { from: src, to: ${to}, bin_dir: ${BIN13}, slot: copy_slot }
- name: the switch point, with writes on both sides of it
  hosts: src
  steps:
    - pg.query: "insert into t select g, 'before' from generate_series(1, 100) g"
    - id: slot
      pg.logical_slot: { name: bb_logical }
    - pg.query: "insert into t select g, 'after' from generate_series(101, 200) g"
- name: recover the copy to it
  hosts: copyhost
  steps:
    - id: rec
      pg.recover_to_lsn:
        data_dir: ${to}
        bin_dir: ${BIN13}
        source: src
        slot: copy_slot
        lsn: "{{ hostvars.src.slot.consistent_lsn }}"
        timeout: 60
${tail}`;

async function slots(): Promise<string[]> {
  return (
    await sql<{ slot_name: string }>(admin(src), 'select slot_name from pg_replication_slots order by 1')
  ).map((r) => r.slot_name);
}

/** Starts the copy on its own port and socket (TCP off), reads `query`, stops it. */
async function readCopy(dataDir: string, query: string): Promise<Record<string, unknown>[]> {
  const port = await freePort();
  const sock = join(dir, 'sock');
  await runAs(SERVER_USER, ['mkdir', '-p', sock]);
  const o = `-c port=${port} -c unix_socket_directories=${sock} -c listen_addresses='' -c archive_mode=off`;
  await runAs(SERVER_USER, [
    join(BIN13, 'pg_ctl'),
    '-D',
    dataDir,
    '-o',
    o,
    '-l',
    join(dir, 'copy.log'),
    '-w',
    'start',
  ]);
  try {
    return await sql({ host: sock, port, user: 'postgres', database: 'postgres' }, query);
  } finally {
    await runAs(SERVER_USER, [join(BIN13, 'pg_ctl'), '-D', dataDir, '-m', 'fast', '-w', 'stop']);
  }
}

describe('pg.basebackup and pg.recover_to_lsn (PostgreSQL 13)', () => {
  it('the copy recovered to the slot point holds what committed before it and nothing after', async () => {
    const to = join(dir, 'copy');
    await sql(admin(src), 'truncate t');
    const cwd = workdir({ 'inv.yml': inventory(), 'pb.yml': copyPlaybook(to) });
    const plan = await runCli(['plan', 'pb.yml', '-i', 'inv.yml'], { cwd, env });
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout).toContain("postgres's password goes on stdin into a private passfile");
    expect(plan.stdout).toContain('--create-slot --slot=copy_slot');
    expect(plan.stdout).toContain('recovery_target_inclusive = ');

    const archivedBefore = readdirSync(src.archiveDir);
    const r = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json'], { cwd, env });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const ev = events(r.stdout);
    const bb = outputsOf<Record<string, unknown>>(ev, 'bb');
    expect(bb).toMatchObject({ to, format: 'plain', slot: 'copy_slot', timeline: 1 });
    expect(String(bb.history_file)).toMatch(/^0000000100000000000000[0-9A-F]{2}\.[0-9A-F]{8}\.backup$/);
    // The source archived that backup history file (archiving is on).
    await waitUntil(
      'the backup history file archived',
      async () => existsSync(join(src.archiveDir, String(bb.history_file))),
      20_000,
    );
    const [sysid] = await sql<{ id: string }>(
      admin(src),
      'select system_identifier::text as id from pg_control_system()',
    );
    expect(bb.system_identifier).toBe(sysid!.id);
    const rec = outputsOf<{ timeline: number; stop_lsn: string }>(ev, 'rec');
    expect(rec.timeline).toBe(2);
    const slot = outputsOf<{ consistent_lsn: string }>(ev, 'slot');
    const [cmp] = await sql<{ ok: boolean }>(
      admin(src),
      `select '${rec.stop_lsn}'::pg_lsn >= '${slot.consistent_lsn}'::pg_lsn as ok`,
    );
    expect(cmp!.ok).toBe(true);

    // Put back: no recovery settings left in the copy, no signal file; the source's own file.
    const auto = readFileSync(join(to, 'postgresql.auto.conf'), 'utf8');
    expect(auto).toBe(readFileSync(join(src.dataDir, 'postgresql.auto.conf'), 'utf8'));
    expect(existsSync(join(to, 'standby.signal'))).toBe(false);
    // Nothing of its timeline 2 is marked for archiving, and none reached the source's archive.
    expect(readdirSync(join(to, 'pg_wal', 'archive_status')).filter((f) => f.endsWith('.ready'))).toEqual([]);
    const newInArchive = readdirSync(src.archiveDir).filter((f) => !archivedBefore.includes(f));
    expect(newInArchive.filter((f) => f.startsWith('00000002'))).toEqual([]);

    const rows = await readCopy(to, 'select phase, count(*)::int as n from t group by phase order by phase');
    expect(rows).toEqual([{ phase: 'before', n: 100 }]);
    // The source has all 200, and the kept physical slot (the blue-green playbook drops it).
    const [all] = await sql<{ n: number }>(admin(src), 'select count(*)::int as n from t');
    expect(all!.n).toBe(200);
    expect(await slots()).toEqual(['bb_logical', 'copy_slot']);
    expect(r.stdout + r.stderr + plan.stdout).not.toContain(PASSWORD);
    expect(JSON.stringify(journalOf(cwd))).not.toContain(PASSWORD);

    await sql(
      admin(src),
      "select pg_drop_replication_slot('bb_logical'), pg_drop_replication_slot('copy_slot')",
    );
    await sql(admin(src), 'truncate t');
    await rm(to, { recursive: true, force: true });
  });

  it('a later failure removes the copy and drops both slots', async () => {
    const to = join(dir, 'copy-undone');
    await sql(admin(src), 'truncate t');
    const cwd = workdir({
      'inv.yml': inventory(),
      'pb.yml': copyPlaybook(to, '    - name: a later step fails\n      shell: "false"\n'),
    });
    const r = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json'], { cwd, env });
    expect(r.code, r.stdout + r.stderr).toBe(1);
    const ev = events(r.stdout);
    expect(
      ev.some((e) => e.type === 'step_finished' && e.stepType === 'pg.recover_to_lsn' && e.status === 'ok'),
      r.stdout,
    ).toBe(true);
    expect(existsSync(to)).toBe(false);
    expect(await slots()).toEqual([]);
    await sql(admin(src), 'truncate t');
  });

  it('tar format: base.tar and pg_wal.tar, no slot kept, the same outputs', async () => {
    const to = join(dir, 'tar');
    const cwd = workdir({
      'inv.yml': inventory(),
      'pb.yml': `
- name: copy
  hosts: copyhost
  steps:
    - id: bb
      pg.basebackup: { from: src, to: ${to}, bin_dir: ${BIN13}, format: tar }
`,
    });
    const r = await runCli(['run', 'pb.yml', '-i', 'inv.yml', '--output', 'json'], { cwd, env });
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const bb = outputsOf<Record<string, unknown>>(events(r.stdout), 'bb');
    expect(bb).toMatchObject({ to, format: 'tar', slot: '' });
    expect(String(bb.stop_lsn)).toMatch(/^[0-9A-F]+\/[0-9A-F]+$/);
    expect(readdirSync(to).sort()).toEqual(expect.arrayContaining(['base.tar', 'pg_wal.tar']));
    // pg_basebackup's temporary slot is gone with it.
    expect(await slots()).toEqual([]);
    await rm(to, { recursive: true, force: true });
  });

  it('refuses, changing nothing: a role without REPLICATION, then no pg_hba replication line', async () => {
    const to = join(dir, 'never');
    const pb = (from: string) => `
- name: copy
  hosts: copyhost
  steps:
    - pg.basebackup: { from: ${from}, to: ${to}, bin_dir: ${BIN13}, slot: never_slot }
`;
    const noRole = await runCli(['run', 'pb.yml', '-i', 'inv.yml'], {
      cwd: workdir({ 'inv.yml': inventory(), 'pb.yml': pb('norepl') }),
      env,
    });
    expect(noRole.code, noRole.stdout + noRole.stderr).toBe(1);
    expect(noRole.stdout + noRole.stderr).toContain(
      'role norepl on norepl has neither REPLICATION nor superuser: ALTER ROLE norepl REPLICATION',
    );

    // pg_hba lets only postgres replicate from 127.0.0.1 (initdb's lines allowed every role).
    const hbaPath = join(src.dataDir, 'pg_hba.conf');
    const hba = readFileSync(hbaPath, 'utf8');
    writeFileSync(
      hbaPath,
      `${hba
        .split('\n')
        .filter((l) => !/^host\s+replication\s+all/.test(l))
        .join('\n')}\nhost replication postgres 127.0.0.1/32 scram-sha-256\n`,
    );
    await sql(admin(src), 'select pg_reload_conf()');
    try {
      const noHba = await runCli(['run', 'pb.yml', '-i', 'inv.yml'], {
        cwd: workdir({ 'inv.yml': inventory(), 'pb.yml': pb('repl2') }),
        env,
      });
      expect(noHba.code, noHba.stdout + noHba.stderr).toBe(1);
      expect(noHba.stdout + noHba.stderr).toContain(
        "repl2's pg_hba.conf has no replication line for user repl2 from this host",
      );
      expect(noHba.stdout + noHba.stderr).toContain('no pg_hba.conf entry for replication connection');
      expect(noHba.stdout + noHba.stderr).not.toContain(OTHER_PASSWORD);
    } finally {
      writeFileSync(hbaPath, hba);
      await sql(admin(src), 'select pg_reload_conf()');
    }
    expect(existsSync(to)).toBe(false);
    expect(await slots()).toEqual([]);
  });
});

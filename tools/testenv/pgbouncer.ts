import type { ChildProcess } from 'node:child_process';
import { chmod, chown, open, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';
import { makeTempDir, SERVER_USER, serverGid, serverUid, spawnAs } from './osuser.js';
import { freePort } from './ports.js';
import { armWatchdog, shQuote, stopDaemon } from './procs.js';

// One `[databases]` entry: clients connecting to `name` are sent to host:port (database `dbname`,
// default the same name).
export interface PgBouncerDatabase {
  host: string;
  port: number;
  dbname?: string;
}

// Options for startPgBouncer.
export interface StartPgBouncerOptions {
  databases: Record<string, PgBouncerDatabase>;
  // Logins PgBouncer accepts (SCRAM) and uses towards the servers; plain passwords, test only.
  users: Record<string, string>;
  // Users allowed to run PAUSE / RESUME / RELOAD / SHOW on the `pgbouncer` admin database.
  adminUsers: string[];
  // Default `transaction`, what production poolers in front of Patroni clusters use.
  poolMode?: 'session' | 'transaction' | 'statement';
  defaultPoolSize?: number;
}

// A running PgBouncer (Debian's package) on a free 127.0.0.1 port, as the server user.
export interface PgBouncerServer {
  host: '127.0.0.1';
  port: number;
  pid: number;
  rootDir: string;
  configFile: string;
  logFile: string;
  // Rewrites the [databases] section and tells PgBouncer to RELOAD it (as a deployment would).
  setDatabases(databases: Record<string, PgBouncerDatabase>): Promise<void>;
  // Runs one admin-console command (`SHOW POOLS`, `PAUSE`...) as the first admin user.
  admin(command: string): Promise<Record<string, unknown>[]>;
  stop(): Promise<void>;
}

export const PGBOUNCER_BIN = '/usr/sbin/pgbouncer';
const PORT_ATTEMPTS = 3;
const READY_TIMEOUT_MS = 15_000;
// Names that go into pgbouncer.ini and userlist.txt unquoted.
const SAFE_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

// pgbouncer.ini's [databases] section.
function databasesSection(databases: Record<string, PgBouncerDatabase>): string {
  return Object.entries(databases)
    .map(([name, d]) => {
      for (const n of [name, d.dbname ?? name]) {
        if (!SAFE_NAME.test(n)) throw new Error(`startPgBouncer: bad database name ${JSON.stringify(n)}`);
      }
      if (!/^[0-9A-Za-z_.:/-]+$/.test(d.host))
        throw new Error(`startPgBouncer: bad host ${JSON.stringify(d.host)}`);
      return `${name} = host=${d.host} port=${d.port} dbname=${d.dbname ?? name}`;
    })
    .join('\n');
}

function iniText(
  o: StartPgBouncerOptions,
  port: number,
  rootDir: string,
  databases: Record<string, PgBouncerDatabase>,
): string {
  return `[databases]
${databasesSection(databases)}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = ${port}
unix_socket_dir = ${rootDir}
auth_type = scram-sha-256
auth_file = ${join(rootDir, 'userlist.txt')}
admin_users = ${o.adminUsers.join(',')}
pool_mode = ${o.poolMode ?? 'transaction'}
default_pool_size = ${o.defaultPoolSize ?? 20}
max_client_conn = 200
pidfile = ${join(rootDir, 'pgbouncer.pid')}
logfile = ${join(rootDir, 'pgbouncer.log')}
ignore_startup_parameters = extra_float_digits,options
server_login_retry = 1
`;
}

// userlist.txt: "user" "password" per line; PgBouncer derives SCRAM from the plain password.
function userlistText(users: Record<string, string>): string {
  return Object.entries(users)
    .map(([u, p]) => {
      if (!SAFE_NAME.test(u) || /["\n]/.test(p))
        throw new Error(`startPgBouncer: bad user ${JSON.stringify(u)}`);
      return `"${u}" "${p}"`;
    })
    .join('\n')
    .concat('\n');
}

// PgBouncer in the foreground (child.pid is PgBouncer itself), its files in a fresh temp dir.
export async function startPgBouncer(o: StartPgBouncerOptions): Promise<PgBouncerServer> {
  const admin = o.adminUsers[0];
  if (!admin || !(admin in o.users)) throw new Error('startPgBouncer: adminUsers[0] must be one of users');
  const rootDir = await makeTempDir('pgrb-pgbouncer-');
  const configFile = join(rootDir, 'pgbouncer.ini');
  const logFile = join(rootDir, 'pgbouncer.log');
  const [uid, gid] = [await serverUid(), await serverGid()];
  const userlist = join(rootDir, 'userlist.txt');
  await writeFile(userlist, userlistText(o.users), { mode: 0o600 });
  await chown(userlist, uid, gid);
  let child: ChildProcess | undefined;
  let databases = o.databases;
  try {
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const writeIni = async () => {
        await writeFile(configFile, iniText(o, port, rootDir, databases), { mode: 0o600 });
        await chown(configFile, uid, gid);
        await chmod(configFile, 0o600);
      };
      await writeIni();
      const out = await open(join(rootDir, 'stdout.log'), 'w', 0o644);
      try {
        child = await spawnAs(SERVER_USER, [PGBOUNCER_BIN, configFile], {
          cwd: rootDir,
          dieWithParent: true,
          stdio: ['ignore', out.fd, out.fd],
        });
      } finally {
        await out.close();
      }
      const c = child;
      c.unref();
      const exited = new Promise<string>((res) => {
        c.once('exit', (code, sig) => res(`pgbouncer exited (${sig ?? code})`));
        c.once('error', (e) => res(`pgbouncer could not start: ${e.message}`));
      });
      const adminCommand = async (command: string) => {
        const client = new pg.Client({
          host: '127.0.0.1',
          port,
          user: admin,
          password: o.users[admin],
          database: 'pgbouncer',
          connectionTimeoutMillis: 3000,
        });
        await client.connect();
        try {
          // The admin console speaks only the simple query protocol: no parameters.
          return (await client.query(command)).rows as Record<string, unknown>[];
        } finally {
          await client.end();
        }
      };
      const gaveUp = { done: false };
      const why = await Promise.race([waitReady(adminCommand, gaveUp), exited]);
      gaveUp.done = true;
      if (why !== 'ready') {
        const text = await readFile(logFile, 'utf8').catch(() => '');
        await stopDaemon(c, rootDir, undefined, false);
        if (attempt < PORT_ATTEMPTS && /address already in use/i.test(text)) continue;
        throw new Error(`startPgBouncer: ${why}\n--- ${logFile} ---\n${text.slice(-4000)}`);
      }
      const pid = c.pid as number;
      const watchdog = armWatchdog(
        `sleep 0.5; kill -KILL ${pid} 2>/dev/null; sleep 0.2; rm -rf ${shQuote(rootDir)}`,
      );
      let stopping: Promise<void> | undefined;
      return {
        host: '127.0.0.1',
        port,
        pid,
        rootDir,
        configFile,
        logFile,
        admin: adminCommand,
        setDatabases: async (next) => {
          databases = next;
          await writeIni();
          await adminCommand('RELOAD');
        },
        stop: () => {
          stopping ??= stopDaemon(c, rootDir, watchdog, true);
          return stopping;
        },
      };
    }
  } catch (err) {
    await stopDaemon(child, rootDir, undefined, true).catch(() => {});
    throw err;
  }
}

// Resolves 'ready' once the admin console answers SHOW VERSION.
async function waitReady(
  admin: (c: string) => Promise<Record<string, unknown>[]>,
  cancel: { done: boolean },
): Promise<string> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (cancel.done) return 'cancelled';
    try {
      await admin('SHOW VERSION');
      return 'ready';
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) return `pgbouncer not answering within ${READY_TIMEOUT_MS} ms`;
    await new Promise((r) => setTimeout(r, 50));
  }
}

import { execFile } from 'node:child_process';
import { readFile, rm, stat } from 'node:fs/promises';
import { createServer } from 'node:net';
import pg from 'pg';
import { Client as SshClient } from 'ssh2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  freePort,
  isAlive,
  makeTempDir,
  type PgServer,
  runAs,
  SERVER_USER,
  type SshServer,
  serverUid,
  sshFingerprint,
  startPostgres,
  startSshd,
} from '../../tools/testenv/index.js';

// Servers are started together in beforeAll and stopped in afterAll whatever happened; the
// settled results keep one failed start from hiding the others' clean-up.
const started: Array<{ stop(): Promise<void> }> = [];
function track<T extends { stop(): Promise<void> }>(p: Promise<T>): Promise<T> {
  return p.then((s) => {
    started.push(s);
    return s;
  });
}

let pg15: PgServer;
let pg13: PgServer;
let pgPw: PgServer;
let sshd: SshServer;
let sshdDefaults: SshServer;
const SECRET = "s3cr'et\\pw";

beforeAll(async () => {
  const [a, b, c, d, e] = await Promise.allSettled([
    track(startPostgres({ version: 15 })),
    track(startPostgres({ version: 13, settings: { application_name: 'env-test' } })),
    track(startPostgres({ version: 13, password: SECRET })),
    track(startSshd()),
    track(startSshd({ defaults: true })),
  ]);
  pg15 = value(a);
  pg13 = value(b);
  pgPw = value(c);
  sshd = value(d);
  sshdDefaults = value(e);
});

function value<T>(r: PromiseSettledResult<T>): T {
  if (r.status === 'rejected') throw r.reason;
  return r.value;
}

afterAll(async () => {
  const pids = [pg15?.pid, pg13?.pid, pgPw?.pid, sshd?.pid, sshdDefaults?.pid].filter(
    (p): p is number => p !== undefined,
  );
  const results = await Promise.allSettled(started.map((s) => s.stop()));
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  for (const pid of pids) expect(await isAlive(pid), `pid ${pid} still alive`).toBe(false);
});

async function query<T>(connectionString: string, sql: string): Promise<T[]> {
  return run<T>(new pg.Client({ connectionString }), sql);
}

// pg lets every field parsed from connectionString (even an absent password) override explicit
// ones, so a password has to go with discrete fields.
async function queryWithPassword<T>(s: PgServer, password: string, sql: string): Promise<T[]> {
  return run<T>(
    new pg.Client({ host: s.host, port: s.port, user: s.user, database: 'postgres', password }),
    sql,
  );
}

async function run<T>(c: pg.Client, sql: string): Promise<T[]> {
  await c.connect();
  try {
    return (await c.query(sql)).rows as T[];
  } finally {
    await c.end();
  }
}

describe('os user and ports', () => {
  it('runAs switches user with a clean environment, in a temp dir the server user owns', async () => {
    process.env.PGPASSWORD = 'leak';
    try {
      const dir = await makeTempDir('pgrb-envtest-');
      try {
        const { stdout } = await runAs(
          SERVER_USER,
          ['sh', '-c', 'id -un; pwd; printenv PGPASSWORD || echo unset; touch x'],
          {
            cwd: dir,
          },
        );
        expect(stdout.split('\n')).toEqual([SERVER_USER, dir, 'unset', '']);
        expect((await stat(`${dir}/x`)).uid).toBe(await serverUid());
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    } finally {
      delete process.env.PGPASSWORD;
    }
  });

  it('freePort gives a bindable loopback port', async () => {
    const port = await freePort();
    const srv = createServer();
    await new Promise<void>((res, rej) => srv.once('error', rej).listen(port, '127.0.0.1', res));
    await new Promise((res) => srv.close(res));
  });
});

describe('postgres', () => {
  it.each([
    ['15', () => pg15],
    ['13', () => pg13],
  ])('PostgreSQL %s answers over TCP with the right major and archiving on', async (major, get) => {
    const s = get();
    expect(s.host).toBe('127.0.0.1');
    expect(s.binDir).toBe(`/usr/lib/postgresql/${major}/bin`);
    const [v] = await query<{ version: string; archive_mode: string; wal_level: string; num: string }>(
      s.connectionString,
      `select version(), current_setting('archive_mode') as archive_mode,
              current_setting('wal_level') as wal_level, current_setting('server_version_num') as num`,
    );
    expect(v?.version).toMatch(new RegExp(`^PostgreSQL ${major}\\.`));
    expect(v?.num.slice(0, 2)).toBe(major);
    expect(v?.archive_mode).toBe('on');
    expect(v?.wal_level).toBe('replica');
  });

  it('runs the postmaster as the server user, data dir 0700', async () => {
    const uid = await serverUid();
    for (const s of [pg15, pg13]) {
      const status = await readFile(`/proc/${s.pid}/status`, 'utf8');
      expect(status).toMatch(new RegExp(`^Uid:\\s+${uid}\\s`, 'm'));
      expect((await stat(s.dataDir)).mode & 0o777).toBe(0o700);
    }
  });

  it('applies user settings after its own', async () => {
    const [r] = await query<{ a: string }>(
      pg13.connectionString,
      "select current_setting('application_name') as a",
    );
    // The pg client sends its own application_name only when given one, so the server default shows.
    expect(r?.a).toBe('env-test');
  });

  it('archive_command really archives a WAL segment', async () => {
    await query(pg15.connectionString, 'select pg_switch_wal()');
    await query(pg15.connectionString, 'create table t(x int); insert into t values (1)');
    await query(pg15.connectionString, 'select pg_switch_wal()');
    const deadline = Date.now() + 5000;
    let archived = 0;
    while (Date.now() < deadline) {
      const [r] = await query<{ n: string }>(
        pg15.connectionString,
        'select archived_count as n from pg_stat_archiver',
      );
      archived = Number(r?.n);
      if (archived > 0) break;
      await new Promise((res) => setTimeout(res, 50));
    }
    expect(archived).toBeGreaterThan(0);
  });

  it('with a password: TCP needs it (scram), the socket does not, and it is not in the connection string', async () => {
    expect(pgPw.connectionString).not.toContain('s3cr');
    await expect(queryWithPassword(pgPw, 'wrong', 'select 1')).rejects.toThrow(
      /password authentication failed/,
    );
    await expect(query(pgPw.connectionString, 'select 1')).rejects.toThrow(/password/);
    const [r] = await queryWithPassword<{ m: boolean }>(
      pgPw,
      SECRET,
      "select rolpassword like 'SCRAM-SHA-256$%' as m from pg_authid where rolname = 'postgres'",
    );
    expect(r?.m).toBe(true);
    const [l] = await query<{ one: number }>(
      `postgresql://postgres@/postgres?host=${encodeURIComponent(pgPw.socketDir)}&port=${pgPw.port}`,
      'select 1 as one',
    );
    expect(l?.one).toBe(1);
  });
});

function sshExec(s: SshServer, command: string, seenKey: (k: Buffer) => void): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = new SshClient();
    c.on('ready', () => {
      c.exec(command, (err, stream) => {
        if (err) {
          c.end();
          reject(err);
          return;
        }
        let out = '';
        stream.on('data', (d: Buffer) => {
          out += d.toString();
        });
        stream.on('close', () => {
          c.end();
          resolve(out);
        });
      });
    });
    c.on('error', reject);
    readFile(s.identityFile)
      .then((privateKey) =>
        c.connect({
          host: s.host,
          port: s.port,
          username: s.user,
          privateKey,
          hostVerifier: (key: Buffer) => {
            seenKey(key);
            return true;
          },
          readyTimeout: 10_000,
        }),
      )
      .catch(reject);
  });
}

describe('sshd', () => {
  it.each([
    ['tuned', () => sshd],
    ['defaults', () => sshdDefaults],
  ])('(%s) logs in with the generated key as the server user and shows the expected host key', async (_n, get) => {
    const s = get();
    let key: Buffer | undefined;
    const out = await sshExec(s, 'id -un', (k) => {
      key = k;
    });
    expect(out.trim()).toBe(SERVER_USER);
    expect(key).toBeDefined();
    expect(sshFingerprint(key as Buffer)).toBe(s.hostKeyFingerprint);
    expect(s.knownHostsLine).toBe(`[127.0.0.1]:${s.port} ${s.hostPublicKey}`);
    expect((await readFile(s.knownHostsFile, 'utf8')).trim()).toBe(s.knownHostsLine);
  });

  it('fingerprint matches what ssh-keygen prints', async () => {
    const out = await new Promise<string>((res, rej) =>
      execFile('ssh-keygen', ['-l', '-E', 'sha256', '-f', sshd.knownHostsFile], (e, so) =>
        e ? rej(e) : res(so),
      ),
    );
    expect(out.split(/\s+/)[1]).toBe(sshd.hostKeyFingerprint);
  });

  it('defaults: true leaves OpenSSH limits in place; the tuned one raises them', async () => {
    const effective = (cfg: string) =>
      new Promise<string>((res, rej) =>
        execFile('/usr/sbin/sshd', ['-T', '-f', cfg], (e, so) => (e ? rej(e) : res(so))),
      );
    const [tuned, dflt] = await Promise.all([effective(sshd.configFile), effective(sshdDefaults.configFile)]);
    expect(tuned).toMatch(/^maxsessions 64$/m);
    expect(tuned).toMatch(/^maxstartups 200:30:200$/m);
    expect(dflt).toMatch(/^maxsessions 10$/m);
    expect(dflt).toMatch(/^maxstartups 10:30:100$/m);
  });
});

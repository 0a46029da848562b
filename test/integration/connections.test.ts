// Transports and sessions against real servers: SSH cancellation (race, TERM → KILL, channel cap),
// host-key algorithm choice, accept_unknown_host_key, reconnecting a lost connection, local
// environment hygiene, int8 values and libpq's sslmode semantics on a TLS PostgreSQL.
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openPg, type PgSettings } from '../../src/connections/pg.js';
import { openSsh, type SshSettings, type SshTransport } from '../../src/connections/ssh.js';
import { ConnectionError } from '../../src/errors.js';
import { type InventoryHost, loadInventory } from '../../src/inventory/inventory.js';
import { ConnectionPool } from '../../src/runner/connections.js';
import {
  descendantTree,
  lookupUser,
  makeTempDir,
  type PgServer,
  type SshServer,
  startPostgres,
  startSshd,
} from '../../tools/testenv/index.js';

let sshd: SshServer; // ed25519 + rsa + ecdsa host keys, generous limits
let sshdDefaults: SshServer; // ed25519 only, OpenSSH's default MaxSessions 10 / MaxStartups
let plainPg: PgServer;
let tlsPg: PgServer;
let tlsDir: string;

/** Processes whose command line contains `marker` (our unique sleep durations). */
function procsWith(marker: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let cmd = '';
    let stat = '';
    try {
      cmd = readFileSync(`/proc/${name}/cmdline`, 'utf8').replace(/\0/g, ' ');
      stat = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue;
    }
    // zombies (dead, awaiting a slow reaper) do not count
    if (stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z') continue;
    if (cmd.includes(marker)) out.push(Number(name));
  }
  return out;
}

const markers: string[] = [];
/** A unique `sleep` duration, so only this test's remote commands are looked for. */
function marker(): string {
  const m = `${3000 + markers.length}.${String(Math.random()).slice(2, 10)}`;
  markers.push(m);
  return m;
}

async function until(f: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!f()) {
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 25));
  }
  return true;
}

const sshSettings = (s: SshServer, over: Partial<SshSettings> = {}): SshSettings => ({
  hostName: 'db1',
  host: s.host,
  port: s.port,
  user: s.user,
  identityFile: s.identityFile,
  knownHostsFile: s.knownHostsFile,
  acceptUnknownHostKey: false,
  connectTimeoutMs: 10_000,
  keepaliveIntervalMs: 15_000,
  maxChannels: 8,
  ...over,
});

/** openssl, quietly. */
const openssl = (args: string[], cwd: string) => execFileSync('openssl', args, { cwd, stdio: 'pipe' });

/** A CA, a server certificate it signs for DNS:localhost only, and an unrelated CA. */
async function makeCerts(): Promise<string> {
  const dir = await makeTempDir('pgrb-tls-');
  const subj = (cn: string) => ['-subj', `/CN=${cn}`];
  for (const ca of ['ca', 'other-ca'])
    openssl(
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-days',
        '2',
        ...subj(`pgrb ${ca}`),
        '-keyout',
        `${ca}.key`,
        '-out',
        `${ca}.pem`,
      ],
      dir,
    );
  openssl(
    [
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      ...subj('localhost'),
      '-keyout',
      'server.key',
      '-out',
      'server.csr',
    ],
    dir,
  );
  writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=DNS:localhost\n');
  openssl(
    [
      'x509',
      '-req',
      '-in',
      'server.csr',
      '-CA',
      'ca.pem',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      '2',
      '-extfile',
      'ext.cnf',
      '-out',
      'server.crt',
    ],
    dir,
  );
  const { uid, gid } = await lookupUser();
  for (const f of ['server.key', 'server.crt']) chownSync(join(dir, f), uid, gid);
  // PostgreSQL refuses a key others can read.
  chmodSync(join(dir, 'server.key'), 0o600);
  return dir;
}

beforeAll(async () => {
  tlsDir = await makeCerts();
  [sshd, sshdDefaults, plainPg, tlsPg] = await Promise.all([
    startSshd({ hostKeyTypes: ['ed25519', 'rsa', 'ecdsa'] }),
    startSshd({ defaults: true }),
    startPostgres({ version: 15 }),
    startPostgres({
      version: 15,
      settings: {
        ssl: 'on',
        ssl_cert_file: join(tlsDir, 'server.crt'),
        ssl_key_file: join(tlsDir, 'server.key'),
      },
    }),
  ]);
});

afterAll(async () => {
  // Anything a failed test left running on the "remote" side goes, by PID.
  for (const m of markers)
    for (const pid of procsWith(m)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  await Promise.all([sshd?.stop(), sshdDefaults?.stop(), plainPg?.stop(), tlsPg?.stop()]);
  if (tlsDir) execFileSync('rm', ['-rf', tlsDir]);
});

describe('ssh cancellation', () => {
  it('40 aborts at any moment, even before the PID line arrived, leave nothing running', async () => {
    const t = await openSsh(sshSettings(sshd));
    try {
      const ms: string[] = [];
      const slow: number[] = [];
      for (let i = 0; i < 40; i++) {
        const m = marker();
        ms.push(m);
        const ac = new AbortController();
        const t0 = Date.now();
        const p = t.exec(`sleep ${m}`, { signal: ac.signal });
        // 0–3 ms: mostly before the first stderr line is read
        if (i % 4 === 0) ac.abort();
        else setTimeout(() => ac.abort(), i % 4);
        const r = await p;
        expect(r.exitCode).toBeNull();
        expect(r.signal).toMatch(/^SIG/);
        if (Date.now() - t0 > 2000) slow.push(Date.now() - t0);
      }
      expect(slow).toEqual([]);
      const left = await until(() => ms.every((m) => procsWith(m).length === 0), 2000);
      expect(ms.filter((m) => procsWith(m).length > 0)).toEqual([]);
      expect(left).toBe(true);
    } finally {
      await t.close();
    }
  });

  it('a command that ignores SIGTERM is killed with SIGKILL after the 3 s grace period', async () => {
    const t = await openSsh(sshSettings(sshd));
    try {
      const m = marker();
      const ac = new AbortController();
      const p = t.exec(`trap '' TERM; echo started; sleep ${m}; echo survived`, {
        signal: ac.signal,
        onOutput: (s, c) => {
          if (s === 'stdout' && c.includes('started')) ac.abort();
        },
      });
      const t0 = Date.now();
      await until(() => ac.signal.aborted, 5000);
      const r = await p;
      const took = Date.now() - t0;
      expect(r.signal).toBe('SIGKILL');
      expect(r.stdout).toBe('started\n');
      expect(took).toBeGreaterThanOrEqual(2500);
      expect(took).toBeLessThan(6000);
      expect(procsWith(m)).toEqual([]);
    } finally {
      await t.close();
    }
  });

  it('closing right after an abort still kills the command (close waits for the kill)', async () => {
    const t = await openSsh(sshSettings(sshd));
    const m = marker();
    const ac = new AbortController();
    const p = t.exec(`sleep ${m}`, { signal: ac.signal });
    ac.abort();
    await t.close();
    // the channel was still opening: close() let it open, learn the PID and kill the command
    expect(await p).toMatchObject({ exitCode: null, signal: 'SIGTERM' });
    expect(await until(() => procsWith(m).length === 0, 2000)).toBe(true);
  });

  it("under OpenSSH's default MaxSessions, 8 parallel commands aborted at once are all killed", async () => {
    const t = await openSsh(sshSettings(sshdDefaults, { maxChannels: 8 }));
    try {
      const ms = Array.from({ length: 8 }, () => marker());
      const ac = new AbortController();
      let started = 0;
      const ps = ms.map((m) =>
        t.exec(`echo go; sleep ${m}`, {
          signal: ac.signal,
          onOutput: () => {
            if (++started === ms.length) ac.abort();
          },
        }),
      );
      const rs = await Promise.all(ps);
      expect(rs.map((r) => r.signal)).toEqual(ms.map(() => 'SIGTERM'));
      expect(await until(() => ms.every((m) => procsWith(m).length === 0), 2000)).toBe(true);
      // the connection is still good
      expect((await t.exec('echo ok')).stdout).toBe('ok\n');
    } finally {
      await t.close();
    }
  });
});

describe('ssh input and status under the lifeline', () => {
  it("input reaches the command byte for byte (multi-byte text, 1 MB), and the exit status is the command's", async () => {
    const t = await openSsh(sshSettings(sshd));
    try {
      const small = 'é€😀 line\nsecond\n';
      const r1 = await t.exec('cat', { stdin: small });
      expect(r1).toMatchObject({ exitCode: 0, stdout: small });
      const big = 'x'.repeat(1024 * 1024 - 1) + '\n';
      const r2 = await t.exec('wc -c', { stdin: big });
      expect(r2.stdout.trim()).toBe(String(1024 * 1024));
      // A command that never reads a large input still ends, with its own status.
      const r3 = await t.exec('exit 7', { stdin: big });
      expect(r3.exitCode).toBe(7);
      // Without input the command reads EOF at once, as before.
      const r4 = await t.exec('cat; echo done');
      expect(r4).toMatchObject({ exitCode: 0, stdout: 'done\n' });
    } finally {
      await t.close();
    }
  });

  it('a command that leaves a background job with its output closed ends at once; the job is not killed', async () => {
    const t = await openSsh(sshSettings(sshd));
    const m = marker();
    try {
      const t0 = Date.now();
      const r = await t.exec(`(sleep ${m}) </dev/null >/dev/null 2>&1 & echo ok`);
      expect(r).toMatchObject({ exitCode: 0, stdout: 'ok\n' });
      expect(Date.now() - t0).toBeLessThan(2000);
      // The watcher saw the shell gone when its input ended: the job a command left on purpose runs on.
      await new Promise((res) => setTimeout(res, 500));
      expect(procsWith(m).length).toBe(1);
    } finally {
      for (const pid of procsWith(m)) process.kill(pid, 'SIGKILL');
      await t.close();
    }
  });
});

describe('ssh host keys', () => {
  it('known_hosts with only the rsa (or ecdsa) key: that key type is negotiated and trusted', async () => {
    for (const type of ['rsa', 'ecdsa', 'ed25519'] as const) {
      const k = sshd.hostKeys.find((h) => h.type === type)!;
      const kh = join(sshd.rootDir, `known_hosts_${type}`);
      writeFileSync(kh, `# only the ${type} key\n${k.knownHostsLine}\n`);
      const t = await openSsh(sshSettings(sshd, { knownHostsFile: kh }));
      expect([t.hostKeyFingerprint, t.hostKeyTrust]).toEqual([k.fingerprint, 'known']);
      expect(t.hostKeyType).toBe(k.publicKey.split(' ')[0]);
      expect((await t.exec('echo ok')).stdout).toBe('ok\n');
      await t.close();
    }
  });

  it('a different rsa key on file is still a changed key', async () => {
    const kh = join(sshd.rootDir, 'known_hosts_wrong_rsa');
    const other = sshd.hostKeys.find((h) => h.type === 'rsa')!.publicKey.split(' ')[1]!;
    // flip a byte deep inside the modulus: same type, different key
    const blob = Buffer.from(other, 'base64');
    blob[blob.length - 10]! ^= 0xff;
    writeFileSync(kh, `[127.0.0.1]:${sshd.port} ssh-rsa ${blob.toString('base64')}\n`);
    await expect(openSsh(sshSettings(sshd, { knownHostsFile: kh }))).rejects.toThrow(/HOST KEY CHANGED/);
  });

  it('known_hosts lists only a key type the server does not offer: refused, saying so', async () => {
    const kh = join(sshdDefaults.rootDir, 'known_hosts_rsa_only');
    const rsa = sshd.hostKeys.find((h) => h.type === 'rsa')!.publicKey;
    writeFileSync(kh, `[127.0.0.1]:${sshdDefaults.port} ${rsa}\n`);
    await expect(openSsh(sshSettings(sshdDefaults, { knownHostsFile: kh }))).rejects.toThrow(
      /presents a ssh-ed25519 key .* lists only ssh-rsa keys for it/,
    );
  });

  it('accept_unknown_host_key with a missing known_hosts file is refused, naming the file', async () => {
    const missing = join(sshd.rootDir, 'no-such-known_hosts');
    const err = await openSsh(
      sshSettings(sshd, { knownHostsFile: missing, acceptUnknownHostKey: true }),
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectionError);
    expect((err as Error).message).toContain(`cannot read known_hosts file ${missing}: it does not exist`);
  });

  it('accept_unknown_host_key with a readable file that does not know the host: accepted and reported', async () => {
    const kh = join(sshd.rootDir, 'known_hosts_empty');
    writeFileSync(kh, '');
    const t = await openSsh(sshSettings(sshd, { knownHostsFile: kh, acceptUnknownHostKey: true }));
    expect(t.hostKeyTrust).toBe('accepted-unknown');
    expect(t.hostKeyFingerprint).toBe(sshd.hostKeyFingerprint);
    await t.close();
    // a reconnect must present the same key
    await expect(
      openSsh(sshSettings(sshd, { knownHostsFile: kh, acceptUnknownHostKey: true }), {
        sameKeyAs: sshd.hostKeys[1]!.fingerprint,
      }),
    ).rejects.toThrow(/HOST KEY CHANGED for db1 .* during this run/);
  });

  it('a pinned key is reported as pinned', async () => {
    const t = await openSsh(
      sshSettings(sshd, { hostKey: sshd.hostKeyFingerprint, knownHostsFile: '/nonexistent' }),
    );
    expect([t.hostKeyTrust, t.hostKeyFingerprint]).toEqual(['pinned', sshd.hostKeyFingerprint]);
    await t.close();
  });
});

describe('ConnectionPool', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await makeTempDir('pgrb-pool-', 'root');
  });
  afterAll(() => execFileSync('rm', ['-rf', dir]));

  const inventory = (text: string): Map<string, InventoryHost> => {
    const f = join(dir, `inv-${Math.random().toString(36).slice(2)}.yml`);
    writeFileSync(f, text);
    const r = loadInventory(f);
    expect(r.problems).toEqual([]);
    return r.inventory!.hosts;
  };

  /** The listener's children: one privileged sshd per connection. */
  const connections = async (s: SshServer) =>
    [...(await descendantTree(s.pid))].filter(([, parent]) => parent === s.pid).map(([pid]) => pid);

  it('a lost ssh connection is reopened, host key verified again, on the next transport()', async () => {
    const hosts = inventory(
      `hosts:\n  db1:\n    ssh: { host: 127.0.0.1, port: ${sshd.port}, user: ${sshd.user}, identity_file: ${sshd.identityFile}, known_hosts: ${sshd.knownHostsFile} }\n`,
    );
    const pool = new ConnectionPool();
    const opened: [string, string, boolean][] = [];
    pool.onSshOpened = (h, t, reopened) => opened.push([h, t.hostKeyTrust, reopened]);
    const host = hosts.get('db1')!;
    try {
      const before = new Set(await connections(sshd));
      const t1 = (await pool.transport(host)) as SshTransport;
      expect((await t1.exec('echo one')).stdout).toBe('one\n');
      expect(await pool.transport(host)).toBe(t1);
      const mine = (await connections(sshd)).filter((p) => !before.has(p));
      expect(mine).toHaveLength(1);
      // the connection's sshd processes (monitor and network child) die: the TCP connection drops
      for (const pid of [mine[0]!, ...(await descendantTree(mine[0]!)).keys()]) process.kill(pid, 'SIGKILL');
      expect(await until(() => t1.lost !== undefined, 5000)).toBe(true);
      await expect(t1.exec('echo again')).rejects.toThrow(/ssh connection lost/);
      const t2 = (await pool.transport(host)) as SshTransport;
      expect(t2).not.toBe(t1);
      expect(t2.lost).toBeUndefined();
      expect((await t2.exec('echo two')).stdout).toBe('two\n');
      expect(opened).toEqual([
        ['db1', 'known', false],
        ['db1', 'known', true],
      ]);
    } finally {
      await pool.closeAll();
    }
  });

  it('local commands do not see the variables the inventory reads secrets from', async () => {
    process.env.PGRB_IT_PG_PASSWORD = 'pool-s3cret-pw';
    process.env.PGRB_IT_PLAIN = 'visible';
    try {
      const hosts = inventory(
        `hosts:\n  here:\n    transport: local\n  db:\n    transport: local\n    pg: { port: 1, password: { env: PGRB_IT_PG_PASSWORD } }\n`,
      );
      const pool = new ConnectionPool({ hideEnv: ['PGRB_IT_PLAIN_HIDDEN_TOO'] });
      // even the host without pg settings: the whole inventory's secret variables are dropped
      const t = await pool.transport(hosts.get('here')!);
      const r = await t.exec('env');
      expect(r.stdout).not.toContain('pool-s3cret-pw');
      expect(r.stdout).not.toMatch(/^PGRB_IT_PG_PASSWORD=/m);
      expect(r.stdout).toMatch(/^PGRB_IT_PLAIN=visible$/m);
      await pool.closeAll();
    } finally {
      delete process.env.PGRB_IT_PG_PASSWORD;
      delete process.env.PGRB_IT_PLAIN;
    }
  });

  it('a lost shared PostgreSQL session is replaced on the next pg()', async () => {
    const hosts = inventory(
      `hosts:\n  db:\n    transport: local\n    pg: { host: 127.0.0.1, port: ${plainPg.port}, sslmode: disable }\n`,
    );
    const pool = new ConnectionPool();
    try {
      const s1 = await pool.pg(hosts.get('db')!);
      const admin = await openPg('admin', { ...hosts.get('db')!.pg! });
      await admin.query('select pg_terminate_backend($1)', [s1.backendPid]);
      await admin.close();
      expect(await until(() => s1.lost !== undefined, 5000)).toBe(true);
      const s2 = await pool.pg(hosts.get('db')!);
      expect(s2).not.toBe(s1);
      expect((await s2.query('select 1 as one')).rows).toEqual([{ one: 1 }]);
    } finally {
      await pool.closeAll();
    }
  });
});

describe('PostgreSQL values and TLS', () => {
  const pgSettings = (s: PgServer, over: Partial<PgSettings> = {}): PgSettings => ({
    host: '127.0.0.1',
    port: s.port,
    user: 'postgres',
    database: 'postgres',
    sslmode: 'disable',
    ...over,
  });
  /** Whether the session is encrypted, as the server sees it. */
  const serverSaysTls = async (s: Awaited<ReturnType<typeof openPg>>) =>
    (await s.query('select ssl from pg_stat_ssl where pid = pg_backend_pid()')).rows[0]!.ssl;

  it('int8 comes back as a number when exact (count(*) == 0 works), numeric and huge int8 as text', async () => {
    const s = await openPg('db', pgSettings(plainPg));
    try {
      const r = await s.query(
        'select count(*) as n, count(*) filter (where false) as zero, 9223372036854775807::int8 as big, 1.50::numeric as dec, array[1,2]::int8[] as arr from pg_class',
      );
      const row = r.rows[0]!;
      expect(typeof row.n).toBe('number');
      expect(row.zero).toBe(0);
      expect(row.big).toBe('9223372036854775807');
      expect(row.dec).toBe('1.50');
      expect(row.arr).toEqual([1, 2]);
    } finally {
      await s.close();
    }
  });

  it('prefer on a server without TLS falls back to a plain connection', async () => {
    const s = await openPg('db', pgSettings(plainPg, { sslmode: 'prefer' }));
    expect(s.tls).toBe(false);
    expect(await serverSaysTls(s)).toBe(false);
    await s.close();
  });

  it('require on a server without TLS is refused', async () => {
    await expect(openPg('db', pgSettings(plainPg, { sslmode: 'require' }))).rejects.toThrow(
      /does not support SSL/,
    );
  });

  it('prefer and require on a TLS server encrypt without checking the certificate', async () => {
    for (const sslmode of ['prefer', 'require'] as const) {
      const s = await openPg('db', pgSettings(tlsPg, { sslmode }));
      expect(s.tls).toBe(true);
      expect(await serverSaysTls(s)).toBe(true);
      await s.close();
    }
  });

  it('disable never encrypts, even when the server could', async () => {
    const s = await openPg('db', pgSettings(tlsPg, { sslmode: 'disable' }));
    expect(await serverSaysTls(s)).toBe(false);
    await s.close();
  });

  it('verify-ca checks the chain but not the name; verify-full checks both', async () => {
    const ca = join(tlsDir, 'ca.pem');
    // the certificate names localhost only; 127.0.0.1 is not in it
    const vca = await openPg('db', pgSettings(tlsPg, { sslmode: 'verify-ca', sslrootcert: ca }));
    expect(await serverSaysTls(vca)).toBe(true);
    await vca.close();
    await expect(
      openPg('db', pgSettings(tlsPg, { sslmode: 'verify-full', sslrootcert: ca })),
    ).rejects.toThrow(/127\.0\.0\.1|altnames|does not match/i);
    const full = await openPg(
      'db',
      pgSettings(tlsPg, { host: 'localhost', sslmode: 'verify-full', sslrootcert: ca }),
    );
    expect(await serverSaysTls(full)).toBe(true);
    await full.close();
  });

  it('a certificate from another CA is refused by verify-ca, and by require once sslrootcert is given', async () => {
    const other = join(tlsDir, 'other-ca.pem');
    for (const sslmode of ['verify-ca', 'verify-full', 'require'] as const)
      await expect(
        openPg('db', pgSettings(tlsPg, { host: 'localhost', sslmode, sslrootcert: other })),
      ).rejects.toThrow(/self[- ]signed|unable to (get|verify)|certificate/i);
    // without a CA file, verify-ca uses the system store, which does not know this test CA
    await expect(openPg('db', pgSettings(tlsPg, { sslmode: 'verify-ca' }))).rejects.toThrow(ConnectionError);
  });

  it('a missing sslrootcert is a connection error naming the file', async () => {
    const missing = join(tlsDir, 'nope.pem');
    await expect(
      openPg('db', pgSettings(tlsPg, { sslmode: 'verify-full', sslrootcert: missing })),
    ).rejects.toThrow(`cannot read sslrootcert ${missing}: file not found`);
  });
});

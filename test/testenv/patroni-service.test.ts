// The members' patroni-service scripts (the playbooks' `systemctl stop|start patroni`) run as the
// server user over a real ssh session on a paused PostgreSQL 13 cluster; stop() cleaning up what
// the script started and a PostgreSQL in another data dir; peerSsh letting that user rsync to the
// same sshd, as the upgrade does from the leader's host to a replica's.
import { execFile } from 'node:child_process';
import { readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { exists, postmasterPid, sql, waitUntil as waitFor } from '../../tools/testenv/checks.js';
import {
  type EtcdServer,
  freePort,
  httpRequest,
  isAlive,
  makeTempDir,
  type PatroniCluster,
  type PatroniMember,
  peerSsh,
  pgBinDir,
  runAs,
  SERVER_USER,
  type SshServer,
  serverUid,
  startEtcd,
  startPatroniCluster,
  startSshd,
} from '../../tools/testenv/index.js';

let etcd: EtcdServer | undefined;
let sshd: SshServer | undefined;
let cluster: PatroniCluster | undefined;
const timings: Record<string, number> = {};

beforeAll(async () => {
  const t = Date.now();
  const [e, s] = await Promise.allSettled([startEtcd(), startSshd()]);
  etcd = e.status === 'fulfilled' ? e.value : undefined;
  sshd = s.status === 'fulfilled' ? s.value : undefined;
  for (const r of [e, s]) if (r.status === 'rejected') throw r.reason;
  cluster = await startPatroniCluster({ etcd: etcd as EtcdServer, members: 2, version: 13 });
  timings.setup = Date.now() - t;
}, 90_000);

afterAll(async () => {
  await cluster?.stop();
  await Promise.all([sshd?.stop(), etcd?.stop()]);
});

// Outcome of one ssh(1) command; code is ssh's exit status (the remote command's).
interface SshResult {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

// Runs `command` as the server user through a real ssh session to the test sshd, ssh(1) as the
// root-side client with the server's own key files.
function sshRun(s: SshServer, command: string): Promise<SshResult> {
  const t = Date.now();
  const args = [
    '-F',
    '/dev/null',
    '-p',
    String(s.port),
    '-i',
    s.identityFile,
    '-o',
    'IdentitiesOnly=yes',
    '-o',
    `UserKnownHostsFile=${s.knownHostsFile}`,
    '-o',
    'GlobalKnownHostsFile=/dev/null',
    '-o',
    'StrictHostKeyChecking=yes',
    '-o',
    'BatchMode=yes',
    `${s.user}@${s.host}`,
    command,
  ];
  return new Promise((res) => {
    execFile('ssh', args, { encoding: 'utf8', timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
      res({ code, stdout, stderr, ms: Date.now() - t });
    });
  });
}

const waitUntil = (what: string, check: () => Promise<boolean>, timeoutMs = 20_000) =>
  waitFor(what, check, timeoutMs);

async function patroniState(m: PatroniMember): Promise<Record<string, unknown>> {
  return JSON.parse((await httpRequest('GET', `${m.restUrl}/patroni`, undefined, 1000)).body);
}

// Owner, parent, session and environment of a live process, from /proc.
async function procInfo(pid: number): Promise<{ uid: number; ppid: number; sid: number; env: string[] }> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const field = (name: string) => Number(status.match(new RegExp(`^${name}:\\s+(\\d+)`, 'm'))?.[1]);
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // After the parenthesised name: state ppid pgrp session …
  const sid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[3]);
  const env = (await readFile(`/proc/${pid}/environ`, 'utf8')).split('\0').filter((v) => v !== '');
  return { uid: field('Uid'), ppid: field('PPid'), sid, env };
}

// Full command lines of live processes mentioning `text` (pgrep -f), this test's own excepted.
function pgrepF(text: string): Promise<string[]> {
  return new Promise((res) => {
    execFile('pgrep', ['-af', text], { encoding: 'utf8' }, (_err, stdout) => {
      res(stdout.split('\n').filter((l) => l.trim() !== '' && !l.includes('pgrep')));
    });
  });
}

describe('patroni-service over ssh', () => {
  it('stops and starts both members while paused, PostgreSQL staying up', async () => {
    const c = cluster as PatroniCluster;
    const s = sshd as SshServer;
    const uid = await serverUid();
    for (const m of c.members) {
      const st = await stat(m.serviceScript);
      expect({ mode: st.mode & 0o777, uid: st.uid }).toEqual({ mode: 0o755, uid });
      expect((await stat(m.memberDir)).uid).toBe(uid);
      expect(Number(await readFile(m.pidFile, 'utf8'))).toBe(m.pid);
      // From root it switches to the server user itself.
      const { stdout } = await runAs('root', [m.serviceScript, 'status']);
      expect(stdout).toBe(`active (running), pid ${m.pid}\n`);
    }

    const r = await httpRequest('PATCH', `${c.members[0]?.restUrl}/config`, { pause: true });
    expect(r.status, r.body).toBe(200);
    await waitUntil('pause on every member', async () =>
      (await Promise.all(c.members.map(patroniState))).every((st) => st.pause === true),
    );
    const leaderName = await c.leader();
    const leader = c.members.find((m) => m.name === leaderName) as PatroniMember;
    const replica = c.members.find((m) => m.name !== leaderName) as PatroniMember;
    const oldPatroni = c.members.map((m) => m.pid);
    const postmasters = await Promise.all(c.members.map((m) => postmasterPid(m.dataDir)));

    // Replica first, as an operator would; the second stop of the replica is a no-op.
    const stop = await sshRun(
      s,
      `${replica.serviceScript} stop && ${leader.serviceScript} stop && ${replica.serviceScript} stop`,
    );
    timings.stop = stop.ms;
    expect(stop.code, stop.stderr).toBe(0);
    for (const pid of oldPatroni) expect(await isAlive(pid), `patroni ${pid}`).toBe(false);
    for (const pid of postmasters) expect(await isAlive(pid), `postmaster ${pid}`).toBe(true);
    for (const m of c.members) {
      expect(await exists(m.pidFile)).toBe(false);
      await expect(httpRequest('GET', `${m.restUrl}/patroni`, undefined, 500)).rejects.toThrow();
      const [row] = await sql<{ recovery: boolean }>(
        c.clientConfig(m.name),
        'select pg_is_in_recovery() as recovery',
      );
      expect(row?.recovery, m.name).toBe(m === replica);
    }
    expect(await sshRun(s, `${leader.serviceScript} status`)).toMatchObject({
      code: 3,
      stdout: 'inactive\n',
    });

    // The ssh session's PG* variables must not reach Patroni (replicas would never clone).
    const start = await sshRun(
      s,
      `export PGPASSWORD=wrong PGUSER=nobody PGHOST=/nowhere; ${replica.serviceScript} start && ${leader.serviceScript} start && ${leader.serviceScript} start`,
    );
    timings.start = start.ms;
    expect(start.code, start.stderr).toBe(0);
    // Detached and not waiting for PostgreSQL: the channel closes at once.
    expect(start.ms).toBeLessThan(5000);
    for (const [i, m] of c.members.entries()) {
      expect(m.pid).not.toBe(oldPatroni[i]);
      expect(await isAlive(m.pid)).toBe(true);
      const info = await procInfo(m.pid);
      expect(info.uid).toBe(uid);
      expect(info.sid).toBe(m.pid);
      expect(info.ppid).not.toBe(process.pid);
      expect(info.env.filter((v) => v.startsWith('PG'))).toEqual([]);
      expect(info.env).toContain('LANG=C.UTF-8');
      expect(await sshRun(s, `${m.serviceScript} status`)).toMatchObject({
        code: 0,
        stdout: `active (running), pid ${m.pid}\n`,
      });
    }
    let t = Date.now();
    await waitUntil('both Patroni running and paused again', async () =>
      (await Promise.all(c.members.map(patroniState))).every(
        (st) => st.state === 'running' && st.pause === true,
      ),
    );
    timings.running = Date.now() - t;
    // Paused, the new Patroni adopted the PostgreSQL that kept running.
    expect(await Promise.all(c.members.map((m) => postmasterPid(m.dataDir)))).toEqual(postmasters);

    t = Date.now();
    const u = await httpRequest('PATCH', `${leader.restUrl}/config`, { pause: null });
    expect(u.status, u.body).toBe(200);
    await waitUntil('no member paused', async () =>
      (await Promise.all(c.members.map(patroniState))).every((st) => st.pause === undefined),
    );
    expect(await c.leader()).toBe(leader.name);
    await waitUntil('the replica streaming again', async () => {
      const rows = await sql<{ application_name: string; state: string }>(
        c.clientConfig(leader.name),
        'select application_name, state from pg_stat_replication',
      );
      return (
        rows.length === 1 && rows[0]?.application_name === replica.name && rows[0]?.state === 'streaming'
      );
    });
    timings.resume = Date.now() - t;
    console.log(
      `timings: setup ${timings.setup} ms, ssh stop both ${timings.stop} ms, ssh start both ${timings.start} ms, ` +
        `until running ${timings.running} ms, resume to streaming ${timings.resume} ms`,
    );
  });

  it('peerSsh: the server user rsyncs over ssh to the same sshd from inside a session', async () => {
    const s = sshd as SshServer;
    const peer = await peerSsh(s);
    expect(await peerSsh(s)).toBe(peer);
    const uid = await serverUid();
    const key = await stat(peer.identityFile);
    expect({ mode: key.mode & 0o777, uid: key.uid }).toEqual({ mode: 0o600, uid });
    const dir = await stat(join(peer.identityFile, '..'));
    expect({ mode: dir.mode & 0o777, uid: dir.uid }).toEqual({ mode: 0o700, uid });
    expect((await stat(peer.knownHostsFile)).uid).toBe(uid);

    const work = await makeTempDir('pgrb-peer-');
    try {
      const src = join(work, 'src');
      const dest = join(work, 'dest');
      const t = Date.now();
      const r = await sshRun(
        s,
        `mkdir -p ${src}/sub && echo hello > ${src}/sub/file && ` +
          `rsync -a -e "${peer.sshCommand}" ${src}/ ${SERVER_USER}@127.0.0.1:${dest}/ && cat ${dest}/sub/file`,
      );
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toBe('hello\n');
      expect((await stat(join(dest, 'sub', 'file'))).uid).toBe(uid);
      console.log(`timings: ssh + rsync over ssh ${Date.now() - t} ms`);
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  });

  it('stopMember/startMember still work on a member the script started', async () => {
    const c = cluster as PatroniCluster;
    const leader = await c.leader();
    const m = c.members.find((x) => x.name !== leader) as PatroniMember;
    const scriptPatroni = m.pid;
    const postmaster = await postmasterPid(m.dataDir);
    expect((await procInfo(scriptPatroni)).ppid).not.toBe(process.pid);

    let t = Date.now();
    await c.stopMember(m.name);
    timings.stopMember = Date.now() - t;
    expect(await isAlive(scriptPatroni)).toBe(false);
    expect(await isAlive(postmaster)).toBe(false);
    expect(await exists(m.pidFile)).toBe(false);
    expect(await sshRun(sshd as SshServer, `${m.serviceScript} status`)).toMatchObject({ code: 3 });

    t = Date.now();
    await c.startMember(m.name);
    timings.startMember = Date.now() - t;
    // node's own child again, and the script sees it as running
    expect((await procInfo(m.pid)).ppid).toBe(process.pid);
    expect(await sshRun(sshd as SshServer, `${m.serviceScript} status`)).toMatchObject({
      code: 0,
      stdout: `active (running), pid ${m.pid}\n`,
    });
    expect(await patroniState(m)).toMatchObject({ role: 'replica', state: 'running' });
    console.log(`timings: stopMember ${timings.stopMember} ms, startMember ${timings.startMember} ms`);
  });

  it('stop() ends the script-started Patroni and a PostgreSQL in another data dir', async () => {
    const c = cluster as PatroniCluster;
    const e = etcd as EtcdServer;
    // The leader's Patroni is still the one the script started (not node's child).
    const scriptStarted = await Promise.all(
      c.members.map(async (x) => (await procInfo(x.pid)).ppid !== process.pid),
    );
    expect(scriptStarted.filter(Boolean)).toHaveLength(1);
    const m = c.members[0] as PatroniMember;
    // What the upgrade does: a new data dir beside the old one, its PostgreSQL started outside Patroni.
    const data15 = join(m.memberDir, 'data15');
    const bin = pgBinDir(15);
    await runAs(SERVER_USER, [
      join(bin, 'initdb'),
      '-D',
      data15,
      '-U',
      'postgres',
      '--auth=trust',
      '--no-sync',
      '-E',
      'UTF8',
      '--locale=C.UTF-8',
    ]);
    const port = await freePort();
    await runAs(SERVER_USER, [
      join(bin, 'pg_ctl'),
      '-D',
      data15,
      '-l',
      join(m.memberDir, 'pg15.log'),
      '-o',
      `-p ${port} -k ${m.socketDir} -c listen_addresses=''`,
      '-w',
      'start',
    ]);
    const pg15 = await postmasterPid(data15);
    expect(await isAlive(pg15)).toBe(true);
    const pids = [
      ...c.members.map((x) => x.pid),
      ...(await Promise.all(c.members.map((x) => postmasterPid(x.dataDir)))),
      pg15,
    ];

    const t = Date.now();
    await c.stop();
    await c.stop(); // idempotent
    timings.clusterStop = Date.now() - t;
    for (const pid of pids) expect(await isAlive(pid), `pid ${pid}`).toBe(false);
    expect(await pgrepF(c.rootDir)).toEqual([]);
    if (process.env.PGRB_KEEP_TEST_DIRS !== '1') expect(await exists(c.rootDir)).toBe(false);
    await e.stop();
    console.log(`timings: cluster stop ${timings.clusterStop} ms`);
  });
});

import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { access, readFile, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type BtrfsFs,
  createBtrfs,
  isAlive,
  isMountPoint,
  loopDevicesOf,
  type PgServer,
  runAs,
  SERVER_USER,
  serverUid,
  setArchiveCommand,
  startPostgres,
} from '../../tools/testenv/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = resolve(here, '../..');
const orphanFixture = join(repoRoot, 'tools/testenv/fixtures/btrfs-orphan.ts');

let fs: BtrfsFs | undefined;
let pg15: PgServer | undefined;
let dataDir = '';

beforeAll(async () => {
  fs = await createBtrfs();
  dataDir = await fs.createSubvolume('pgdata');
  pg15 = await startPostgres({ version: 15, dataDir });
});

afterAll(async () => {
  // Both run whatever happened; stop() first so the mount is not busy.
  const results = [
    await Promise.allSettled([pg15?.stop()]),
    await Promise.allSettled([fs?.destroy()]),
  ].flat();
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
});

function the<T>(v: T | undefined, what: string): T {
  if (v === undefined) throw new Error(`${what} did not start`);
  return v;
}

// exit code and stdout, without throwing on a non-zero exit.
function exec(file: string, args: string[]): Promise<{ code: number; stdout: string }> {
  return new Promise((res) => {
    execFile(file, args, { encoding: 'utf8' }, (err, stdout) => {
      res({ code: err ? Number((err as { code?: unknown }).code ?? 1) : 0, stdout });
    });
  });
}

async function query<T>(s: PgServer, sql: string): Promise<T[]> {
  const c = new pg.Client({ connectionString: s.connectionString });
  await c.connect();
  try {
    return (await c.query(sql)).rows as T[];
  } finally {
    await c.end();
  }
}

async function waitFor(what: string, cond: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const exists = (p: string) =>
  access(p).then(
    () => true,
    () => false,
  );

// Nothing of a BtrfsFs is left: no mount, no loop device on its image, no files.
async function expectGone(f: { mountPoint: string; image: string; rootDir: string }): Promise<void> {
  expect(await isMountPoint(f.mountPoint)).toBe(false);
  expect((await exec('findmnt', ['-n', '--mountpoint', f.mountPoint])).code).toBe(1);
  expect(await loopDevicesOf(f.image)).toEqual([]);
  expect((await exec('losetup', ['-a'])).stdout).not.toContain(f.rootDir);
  expect(await exists(f.rootDir)).toBe(false);
}

describe('btrfs', () => {
  it('is mounted from its loop device with noatime,user_subvol_rm_allowed; the subvolume belongs to the server user', async () => {
    const f = the(fs, 'btrfs');
    const { stdout } = await runAs('root', [
      'findmnt',
      '-n',
      '-o',
      'FSTYPE,SOURCE,OPTIONS',
      '--mountpoint',
      f.mountPoint,
    ]);
    const [fstype, source, options] = stdout.trim().split(/\s+/);
    expect(fstype).toBe('btrfs');
    expect(source).toBe(f.loopDevice);
    expect(options?.split(',')).toEqual(expect.arrayContaining(['noatime', 'user_subvol_rm_allowed']));
    const st = await stat(dataDir);
    expect(st.uid).toBe(await serverUid());
    // 256 is the root inode of every btrfs subvolume.
    expect(st.ino).toBe(256);
    expect(st.mode & 0o777).toBe(0o700);
    // The server user can reach it through the mount point.
    await runAs(SERVER_USER, ['test', '-w', dataDir]);
    await expect(f.createSubvolume('../escape')).rejects.toThrow(/bad name/);
  });

  it('PostgreSQL 15 runs with its data directory on the subvolume', async () => {
    const s = the(pg15, 'postgres');
    expect(s.dataDir).toBe(dataDir);
    expect(s.externalDataDir).toBe(true);
    const [r] = await query<{ d: string; v: string }>(
      s,
      "select current_setting('data_directory') as d, current_setting('server_version_num') as v",
    );
    expect(r?.d).toBe(dataDir);
    expect(r?.v.slice(0, 2)).toBe('15');
    const { stdout } = await runAs('root', ['stat', '-f', '-c', '%T', join(dataDir, 'base')]);
    expect(stdout.trim()).toBe('btrfs');
  });

  it('takes a read-only snapshot of the live data directory', async () => {
    const f = the(fs, 'btrfs');
    const s = the(pg15, 'postgres');
    await query(
      s,
      'create table snap_t(x int); insert into snap_t select generate_series(1, 1000); checkpoint',
    );
    const snap = join(f.mountPoint, 'snap1');
    await runAs('root', ['btrfs', 'subvolume', 'snapshot', '-r', dataDir, snap]);
    const { stdout } = await runAs('root', ['btrfs', 'property', 'get', '-ts', snap, 'ro']);
    expect(stdout.trim()).toBe('ro=true');
    expect(await readFile(join(snap, 'PG_VERSION'), 'utf8')).toBe('15\n');
    expect((await stat(join(snap, 'global', 'pg_control'))).size).toBe(8192);
    await expect(writeFile(join(snap, 'backup_label'), 'x')).rejects.toMatchObject({ code: 'EROFS' });
    await runAs('root', ['btrfs', 'subvolume', 'delete', snap]);
    expect(await exists(snap)).toBe(false);
  });

  it('setArchiveCommand breaks and fixes archiving on the running server', async () => {
    const s = the(pg15, 'postgres');
    type Stats = { archived: string; failed: string; last: string | null };
    const stats = async () =>
      (
        await query<Stats>(
          s,
          'select archived_count as archived, failed_count as failed, last_archived_wal as last from pg_stat_archiver',
        )
      )[0] as Stats;
    // A switch needs something written since the last one.
    const switchWal = async () => {
      await query(s, 'insert into snap_t values (1)');
      return (await query<{ w: string }>(s, 'select pg_walfile_name(pg_switch_wal()) as w'))[0]?.w as string;
    };

    const before = await stats();
    await setArchiveCommand(s, 'false');
    const seg = await switchWal();
    await waitFor(
      'a failed archive attempt',
      async () => Number((await stats()).failed) > Number(before.failed),
      10_000,
    );
    expect(await exists(join(s.archiveDir, seg))).toBe(false);

    await setArchiveCommand(s, null);
    const [r] = await query<{ c: string }>(s, "select current_setting('archive_command') as c");
    expect(r?.c).toBe(s.archiveCommand);
    // The file lands a moment before the archiver reports it.
    await waitFor(
      'the failed segment to be archived',
      async () => (await stats()).last === seg && (await exists(join(s.archiveDir, seg))),
      10_000,
    );
    expect(Number((await stats()).archived)).toBeGreaterThan(Number(before.archived));
  });

  it('stop() leaves the outside data dir; destroy() removes mount, loop device and files, and is idempotent', async () => {
    const f = the(fs, 'btrfs');
    const s = the(pg15, 'postgres');
    await s.stop();
    expect(await isAlive(s.pid)).toBe(false);
    expect(await exists(s.rootDir)).toBe(false);
    expect(await readFile(join(dataDir, 'PG_VERSION'), 'utf8')).toBe('15\n');
    await Promise.all([f.destroy(), f.destroy()]);
    await f.destroy();
    await expectGone(f);
  });

  it('destroy() waits for a busy mount to be released', async () => {
    const f = await createBtrfs({ sizeGiB: 1 });
    let holder: ChildProcess | undefined;
    try {
      holder = spawn('sleep', ['0.7'], { cwd: f.mountPoint, stdio: 'ignore' });
      const t0 = Date.now();
      await f.destroy();
      expect(Date.now() - t0).toBeGreaterThan(500);
      // Not lazily: the loop device is already gone.
      await expectGone(f);
    } finally {
      holder?.kill('SIGKILL');
      await f.destroy();
    }
  });

  it('past busyTimeoutMs it unmounts lazily, and the loop device goes when the holder does', async () => {
    const f = await createBtrfs({ sizeGiB: 1, busyTimeoutMs: 200 });
    const holder = spawn('sleep', ['30'], { cwd: f.mountPoint, stdio: 'ignore' });
    const exited = new Promise((r) => holder.once('exit', r));
    try {
      await f.destroy();
      expect(await isMountPoint(f.mountPoint)).toBe(false);
      expect(await exists(f.rootDir)).toBe(false);
      // Still held by the sleeping process, but marked to detach itself.
      expect(await loopDevicesOf(f.image)).toEqual([f.loopDevice]);
    } finally {
      holder.kill('SIGKILL');
      await exited;
    }
    await waitFor('the loop device to detach', async () => (await loopDevicesOf(f.image)).length === 0, 5000);
    await expectGone(f);
  });

  it('if the test process dies, the watchdogs stop PostgreSQL and remove the btrfs', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', orphanFixture], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const exited = new Promise((r) => child.once('exit', r));
    let info: { image: string; mountPoint: string; rootDir: string; pid: number; pgRoot: string };
    try {
      const line = await new Promise<string>((res, rej) => {
        createInterface({ input: child.stdout as NodeJS.ReadableStream }).once('line', res);
        child.once('exit', (code) => rej(new Error(`fixture exited (${code}) before it was ready`)));
      });
      info = JSON.parse(line);
      expect(await isMountPoint(info.mountPoint)).toBe(true);
      expect(await isAlive(info.pid)).toBe(true);
    } finally {
      child.kill('SIGKILL');
      await exited;
    }
    await waitFor(
      'the watchdogs to clean up',
      async () =>
        !(await isAlive(info.pid)) &&
        !(await isMountPoint(info.mountPoint)) &&
        !(await exists(info.rootDir)) &&
        !(await exists(info.pgRoot)),
      15_000,
    );
    await expectGone(info);
  });
});

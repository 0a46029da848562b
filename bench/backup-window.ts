// Backup-window benchmark: how long the shipped snapshot-backup playbook (btrfs provider) holds
// PostgreSQL in backup mode, against how long pg_basebackup takes (run by pgrunbook: basebackup.yml's
// pg.basebackup step), at pgbench scales 10 and 100.
//
//   npx tsx bench/backup-window.ts [--scales 10,100] [--repeat 3] [--warmup 1] [--load-tps 50]
//                                  [--size-gib 8] [--timeout 900] [--keep]
//
// PGDATA of a PostgreSQL 15 cluster is a btrfs subvolume on a loop device (tools/testenv), one cluster per
// scale, initialised once with pgbench -i and reused for every round. Needs root and `npm run build`
// first (it runs dist/ through bin/pgrunbook.js).
// Exit codes: 0 every run worked (a missed target is reported, not an error); 1 a run failed
// functionally; 2 bad arguments, no build or not root; 3 the overall time limit was hit; 130 interrupted.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { type BtrfsFs, createBtrfs, type PgServer, pgBinDir, startPostgres } from '../tools/testenv/index.js';
import {
  atCleanUp,
  type ChildRun,
  CLI,
  type CommonOptions,
  checkBuild,
  commonOptionSpecs,
  errText,
  fmtRatio,
  intOption,
  isStopping,
  jsonEvents,
  killChild,
  liveChildren,
  loadAverage,
  log,
  machineLine,
  median,
  ROOT,
  ratio,
  remainingMs,
  runFailure,
  runMain,
  table,
  tail,
  timeChild,
  verdict,
  warnIfBusy,
  workDir,
} from './common.js';

const PLAYBOOK = join(ROOT, 'playbooks', 'snapshot-backup.yml');
const PG_VERSION = 15;
const BIN = pgBinDir(PG_VERSION);
const PGBENCH = join(BIN, 'pgbench');
const PG_BASEBACKUP = join(BIN, 'pg_basebackup');
// pgbench -i steps: drop, create tables, server-side data generation (no 1.5 GB through COPY on the
// client), vacuum, primary keys. Same tables and rows as the default client-side dtgvp.
const INIT_STEPS = 'dtGvp';
const LOAD_CLIENTS = 2;

// backup-mode seconds at the largest scale / at the smallest ≤ this: the window does not grow with size.
const TARGET_FLAT_RATIO = 2;

interface Options extends CommonOptions {
  scales: number[];
  loadTps: number;
  sizeGiB: number;
}

const USAGE =
  'usage: npx tsx bench/backup-window.ts [--scales S1,S2=10,100] [--repeat R=3] [--warmup W=1]\n' +
  '                                      [--load-tps T=50 (0: no load)] [--size-gib G=8]\n' +
  '                                      [--timeout SECONDS=900] [--keep]\n';

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      scales: { type: 'string', default: '10,100' },
      'load-tps': { type: 'string', default: '50' },
      'size-gib': { type: 'string', default: '8' },
      ...commonOptionSpecs(900),
    },
    strict: true,
  });
  const scales = values.scales.split(',').map((s) => intOption('scales', s.trim(), 1, 10_000));
  if (new Set(scales).size !== scales.length)
    throw new Error(`--scales: duplicate scale in "${values.scales}"`);
  return {
    scales: scales.sort((a, b) => a - b),
    repeat: intOption('repeat', values.repeat, 1, 100),
    warmup: intOption('warmup', values.warmup, 0, 10),
    loadTps: intOption('load-tps', values['load-tps'], 0, 100_000),
    sizeGiB: intOption('size-gib', values['size-gib'], 1, 1024),
    timeoutS: intOption('timeout', values.timeout, 10, 86_400),
    keep: values.keep,
    help: values.help,
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs a command to completion; throws with its output unless it exits 0. */
async function mustRun(what: string, file: string, args: string[], cwd: string): Promise<ChildRun> {
  const r = await timeChild(file, args, { cwd, env: pgEnv() });
  if (r.code !== 0)
    throw new Error(`${what}: exit ${r.code ?? r.signal}\n${tail(`${r.stderr}\n${r.stdout}`.trim())}`);
  return r;
}

/** libpq clients (pgbench, pg_basebackup) run as root against the trust-auth test cluster. */
function pgEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, PGCONNECT_TIMEOUT: '10', PGAPPNAME: 'bench' };
  for (const k of ['PGPASSWORD', 'PGSERVICE', 'PGOPTIONS', 'PGSSLMODE', 'PGDATABASE', 'PGUSER'])
    delete env[k];
  return env;
}
const connArgs = (s: PgServer) => ['-h', s.host, '-p', String(s.port), '-U', 'postgres'];

// ---------------------------------------------------------------------------------------------
// The light load: pgbench TPC-B-like transactions at a fixed rate while the backups run.

interface Load {
  /** Why it ended early, or undefined while it runs. */
  died(): string | undefined;
  stop(): Promise<void>;
}

function startLoad(s: PgServer, tps: number, cwd: string): Load {
  const args = [
    ...connArgs(s),
    '-n', // the tables were vacuumed by pgbench -i
    '-c',
    String(LOAD_CLIENTS),
    '-j',
    '1',
    '-R',
    String(tps),
    '-T',
    String(Math.ceil(remainingMs() / 1000) + 60), // ended by stop() long before
    'postgres',
  ];
  const c = spawn(PGBENCH, args, { cwd, env: pgEnv(), stdio: ['ignore', 'ignore', 'pipe'], detached: true });
  liveChildren.add(c);
  let stderr = '';
  let stopped = false;
  let ended: string | undefined;
  c.stderr?.setEncoding('utf8').on('data', (d: string) => {
    stderr = tail(stderr + d, 3000);
  });
  const exited = new Promise<void>((res) => {
    c.once('error', (err) => {
      ended = `pgbench load: ${err.message}`;
      liveChildren.delete(c);
      res();
    });
    c.once('exit', (code, signal) => {
      liveChildren.delete(c);
      if (!stopped) ended = `pgbench load ended by itself (exit ${code ?? signal}):\n${tail(stderr)}`;
      res();
    });
  });
  return {
    died: () => ended,
    stop: async () => {
      stopped = true;
      killChild(c, 'SIGTERM');
      await Promise.race([exited, sleep(5000)]);
      killChild(c);
    },
  };
}

// ---------------------------------------------------------------------------------------------
// The measurements.

interface SnapshotSample {
  /** pgrunbook run, spawn → exit */
  wallMs: number;
  /** pg.backup_stop's seconds_in_backup: from the start's return to the stop's */
  inBackupS: number;
  /** the fs.snapshot step's own seconds */
  snapshotS: number;
  /** pg.backup_start's duration (its fast checkpoint is in here, before backup mode is counted) */
  startMs: number;
  /** pg.backup_stop's duration: PostgreSQL's wait for the archive is in here */
  stopMs: number;
}

interface BaseSample {
  /** pg.basebackup's `copy_seconds`: pg_basebackup alone, the source's time in backup mode */
  wallMs: number;
  /** pg.basebackup's `seconds`: its checks, pg_basebackup and measuring the copy */
  stepMs: number;
  /** the whole `pgrunbook run basebackup.yml`, wall clock */
  runMs: number;
}

interface ScaleResult {
  scale: number;
  dbBytes?: number;
  clusterBytes?: number;
  initMs?: number;
  snapshot: SnapshotSample[];
  base: BaseSample[];
  error?: string;
}

interface ScaleCtx {
  opts: Options;
  scale: number;
  server: PgServer;
  fs: BtrfsFs;
  work: string;
  cwd: string;
  inventory: string;
  snapRoot: string;
}

function inventoryFor(server: PgServer, snapRoot: string): string {
  // The shape of test/integration/backup-btrfs.test.ts.
  return `hosts:
  db:
    transport: local
    pg: { host: 127.0.0.1, port: ${server.port}, user: postgres, sslmode: disable }
    vars:
      backup_root: ${snapRoot}/labels
      snapshot_provider: btrfs
      snapshot_root: ${snapRoot}
      verify_root: ${snapRoot}
      archive_dir: ${server.archiveDir}
      pg_bin_dir: ${server.binDir}
      pg_os_user: pgrb
`;
}

type Ev = Record<string, unknown> & { type?: string; status?: string; names?: string[] };

async function measureSnapshot(ctx: ScaleCtx): Promise<SnapshotSample> {
  const r = await timeChild(
    process.execPath,
    [CLI, 'run', PLAYBOOK, '-i', ctx.inventory, '--output', 'json', '-e', 'verify=false'],
    { cwd: ctx.cwd },
  );
  const fail = (why: string) => runFailure('pgrunbook run', why, r);
  if (r.code !== 0) throw fail(`exit ${r.code ?? r.signal}`);
  const events = jsonEvents<Ev>(r.stdout);
  const finished = (id: string) =>
    events.find((e) => e.type === 'step_finished' && (e.names ?? []).includes(id));
  const runStatus = events.find((e) => e.type === 'run_finished')?.status;
  if (runStatus !== 'ok') throw fail(`run_finished ${runStatus ?? 'missing'}`);
  const start = finished('start');
  const snap = finished('snap');
  const stop = finished('stop');
  const verify = finished('verify');
  for (const [id, e] of [
    ['start', start],
    ['snap', snap],
    ['stop', stop],
    ['labels', finished('labels')],
  ] as const) {
    if (e?.status !== 'ok') throw fail(`step "${id}": ${e ? `status ${e.status}` : 'no step_finished'}`);
  }
  // -e verify=false must skip the restore test, or the run's wall time would include it.
  if (verify?.status !== 'skipped')
    throw fail(`step "verify": expected skipped (-e verify=false), got ${verify?.status ?? 'nothing'}`);
  const snapOut = snap?.outputs as { provider?: string; seconds?: number } | undefined;
  if (snapOut?.provider !== 'btrfs') throw fail(`fs.snapshot provider ${snapOut?.provider}, expected btrfs`);
  const inBackupS = (stop?.outputs as { seconds_in_backup?: unknown } | undefined)?.seconds_in_backup;
  if (typeof inBackupS !== 'number' || inBackupS < 0)
    throw fail(`pg.backup_stop seconds_in_backup is ${JSON.stringify(inBackupS)}`);
  return {
    wallMs: r.ms,
    inBackupS,
    snapshotS: Number(snapOut.seconds),
    startMs: Number(start?.durationMs),
    stopMs: Number(stop?.durationMs),
  };
}

let baseRuns = 0;
const BASEBACKUP_PLAYBOOK = join(ROOT, 'playbooks', 'basebackup.yml');

/**
 * pg_basebackup through pgrunbook: playbooks/basebackup.yml (-e verify=false), whose pg.basebackup
 * step checks the role, pg_hba, senders and room, then runs pg_basebackup -X stream -c fast into a
 * directory on the root filesystem (not the loop device), defaults otherwise (manifest, fsync of
 * the result); backup.keep_basebackup then writes its labels and manifest. Timed: the step's
 * `copy_seconds` (pg_basebackup alone: the cluster's time in backup mode for it), beside the
 * step's `seconds` (with its checks) and the whole run.
 */
async function measureBasebackup(
  ctx: ScaleCtx,
  measureSize = false,
): Promise<BaseSample & { bytes?: number }> {
  const root = join(ctx.work, `basebackup-${ctx.scale}-${++baseRuns}`);
  // pg_basebackup runs as the server user: it must reach and write the directory.
  await chmod(ctx.work, 0o755);
  await mkdir(root, { mode: 0o777 });
  await chmod(root, 0o777);
  try {
    const r = await timeChild(
      process.execPath,
      [
        CLI,
        'run',
        BASEBACKUP_PLAYBOOK,
        '-i',
        ctx.inventory,
        '--output',
        'json',
        '-e',
        'verify=false',
        '-e',
        `backup_root=${root}`,
      ],
      { cwd: ctx.cwd },
    );
    const fail = (why: string) => runFailure('pgrunbook run basebackup.yml', why, r);
    if (r.code !== 0) throw fail(`exit ${r.code ?? r.signal}`);
    const events = jsonEvents<Ev>(r.stdout);
    const finished = (id: string) =>
      events.find((e) => e.type === 'step_finished' && (e.names ?? []).includes(id));
    for (const id of ['base', 'kept'])
      if (finished(id)?.status !== 'ok')
        throw fail(`step "${id}": ${finished(id)?.status ?? 'no step_finished'}`);
    if (finished('proof')?.status !== 'skipped')
      throw fail('step "proof": expected skipped (-e verify=false)');
    const out = finished('base')?.outputs as
      | { to?: string; seconds?: number; copy_seconds?: number; bytes?: number }
      | undefined;
    const files = await readdir(String(out?.to));
    for (const f of ['backup_label', 'backup_manifest', 'PG_VERSION', 'global', 'pg_wal'])
      if (!files.includes(f)) throw fail(`${f} is missing from ${out?.to}`);
    if (typeof out?.seconds !== 'number' || typeof out.copy_seconds !== 'number')
      throw fail(
        `pg.basebackup seconds ${JSON.stringify(out?.seconds)}, copy_seconds ${JSON.stringify(out?.copy_seconds)}`,
      );
    return {
      wallMs: out.copy_seconds * 1000,
      stepMs: out.seconds * 1000,
      runMs: r.ms,
      bytes: measureSize ? out.bytes : undefined,
    };
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

async function pgQuery<T>(server: PgServer, sql: string): Promise<T> {
  const c = new pg.Client({
    host: server.host,
    port: server.port,
    user: 'postgres',
    database: 'postgres',
    connectionTimeoutMillis: 10_000,
  });
  await c.connect();
  try {
    return (await c.query(sql)).rows[0] as T;
  } finally {
    await c.end().catch(() => {});
  }
}

async function runScale(opts: Options, scale: number, fs: BtrfsFs, work: string): Promise<ScaleResult> {
  const res: ScaleResult = { scale, snapshot: [], base: [] };
  const localCleanups: (() => Promise<unknown>)[] = [];
  try {
    const data = await fs.createSubvolume(`pgdata-s${scale}`);
    const snapRoot = await fs.createSubvolume(`snapshots-s${scale}`);
    const server = await startPostgres({ version: PG_VERSION, dataDir: data });
    localCleanups.push(() => server.stop());
    atCleanUp(() => server.stop()); // idempotent: also on the time limit or Ctrl-C

    const cwd = join(work, `s${scale}`);
    await mkdir(cwd);
    const inventory = join(cwd, 'inventory.yml');
    await writeFile(inventory, inventoryFor(server, snapRoot));
    const ctx: ScaleCtx = { opts, scale, server, fs, work, cwd, inventory, snapRoot };

    log(
      `scale ${scale}: pgbench -i -I ${INIT_STEPS} -s ${scale} on PostgreSQL ${PG_VERSION} (port ${server.port})`,
    );
    const init = await mustRun(
      'pgbench -i',
      PGBENCH,
      [...connArgs(server), '-i', '-I', INIT_STEPS, '-s', String(scale), '-q', 'postgres'],
      cwd,
    );
    res.initMs = init.ms;
    // One checkpoint now, so the first round's start does not pay for the whole initialisation.
    await pgQuery(server, 'checkpoint');
    const sz = await pgQuery<{ db: string; n: string }>(
      server,
      "select pg_database_size('postgres')::text as db, (select count(*) from pgbench_accounts)::text as n",
    );
    res.dbBytes = Number(sz.db);
    if (Number(sz.n) !== scale * 100_000)
      throw new Error(`pgbench_accounts has ${sz.n} rows, expected ${scale * 100_000}`);
    log(`scale ${scale}: initialised in ${fmtS(init.ms / 1000)}, database ${fmtBytes(res.dbBytes)}`);

    let load: Load | undefined;
    if (opts.loadTps > 0) {
      load = startLoad(server, opts.loadTps, cwd);
      const l = load;
      localCleanups.push(() => l.stop());
      await sleep(1000); // connected and running before the first backup
      const why = load.died();
      if (why) throw new Error(why);
    }
    const checkLoad = () => {
      const why = load?.died();
      if (why) throw new Error(why);
    };

    // Untimed warm-up of both: page cache, Node's first start, the first snapshot of this subvolume.
    for (let w = 0; w < opts.warmup && !isStopping(); w++) {
      await measureSnapshot(ctx);
      await measureBasebackup(ctx);
      checkLoad();
    }
    // Interleaved rounds, so a drift of the machine hits both alike.
    for (let r = 0; r < opts.repeat && !isStopping(); r++) {
      const s = await measureSnapshot(ctx);
      checkLoad();
      res.snapshot.push(s);
      log(
        `scale ${scale} round ${r + 1}/${opts.repeat} snapshot-backup: ${fmtS(s.inBackupS)} in backup mode ` +
          `(snapshot ${fmtS(s.snapshotS)}, stop ${fmtS(s.stopMs / 1000)}), start ${fmtS(s.startMs / 1000)}, ` +
          `run ${fmtS(s.wallMs / 1000)} wall`,
      );
      const b = await measureBasebackup(ctx, r === 0);
      checkLoad();
      res.base.push(b);
      if (b.bytes !== undefined) res.clusterBytes = b.bytes;
      log(
        `scale ${scale} round ${r + 1}/${opts.repeat} pg_basebackup: ${fmtS(b.wallMs / 1000)} (the step ${fmtS(b.stepMs / 1000)}), run ${fmtS(b.runMs / 1000)} wall`,
      );
    }
  } catch (err) {
    res.error = errText(err);
  } finally {
    // The next scale gets the machine to itself.
    for (let f = localCleanups.pop(); f; f = localCleanups.pop())
      await f().catch((err: unknown) => log(`clean-up: ${errText(err)}`));
  }
  return res;
}

// ---------------------------------------------------------------------------------------------
// Reporting.

const fmtS = (s: number | undefined) =>
  s === undefined || !Number.isFinite(s) ? '—' : s >= 10 ? `${s.toFixed(1)} s` : `${s.toFixed(2)} s`;
const fmtBytes = (b: number | undefined) =>
  b === undefined || !Number.isFinite(b)
    ? '—'
    : b >= 1024 ** 3
      ? `${(b / 1024 ** 3).toFixed(2)} GiB`
      : `${Math.round(b / 1024 ** 2)} MiB`;

const inBackup = (r: ScaleResult) => (r.error ? undefined : median(r.snapshot.map((s) => s.inBackupS)));
const baseS = (r: ScaleResult) => (r.error ? undefined : median(r.base.map((s) => s.wallMs / 1000)));

function report(opts: Options, results: ScaleResult[]): string {
  let out = `\nmedian of ${opts.repeat}; backup mode = pg.backup_stop's seconds_in_backup; the others are wall clock\n`;
  out += table(
    [
      ['scale', 'DB size', 'backup mode', 'pg_basebackup', 'basebackup / backup mode', 'pgrunbook run'],
      ...results.map((r) => {
        const b = inBackup(r);
        const p = baseS(r);
        return [
          String(r.scale),
          fmtBytes(r.dbBytes),
          r.error ? 'FAILED' : fmtS(b),
          r.error ? 'FAILED' : fmtS(p),
          fmtRatio(ratio(p, b)),
          r.error ? '' : fmtS(median(r.snapshot.map((s) => s.wallMs / 1000))),
        ];
      }),
    ],
    new Set([0, 1, 2, 3, 4, 5]),
  );
  out += '\nevery run\n';
  out += table(
    [
      [
        'scale',
        'backup mode',
        'fs.snapshot',
        'pg.backup_stop',
        'pg.backup_start',
        'pgrunbook run',
        'pg_basebackup',
        'pg.basebackup step',
        'basebackup.yml run',
      ],
      ...results.map((r) => [
        String(r.scale),
        r.snapshot.map((s) => s.inBackupS.toFixed(2)).join(', '),
        r.snapshot.map((s) => s.snapshotS.toFixed(2)).join(', '),
        r.snapshot.map((s) => (s.stopMs / 1000).toFixed(2)).join(', '),
        r.snapshot.map((s) => (s.startMs / 1000).toFixed(2)).join(', '),
        r.snapshot.map((s) => (s.wallMs / 1000).toFixed(2)).join(', '),
        r.base.map((s) => (s.wallMs / 1000).toFixed(2)).join(', '),
        r.base.map((s) => (s.stepMs / 1000).toFixed(2)).join(', '),
        r.base.map((s) => (s.runMs / 1000).toFixed(2)).join(', '),
      ]),
    ],
    new Set([0]),
  );
  out += '\n';
  out += table(
    [
      ['scale', 'pgbench -i', 'pg.basebackup copied'],
      ...results.map((r) => [
        String(r.scale),
        fmtS((r.initMs ?? Number.NaN) / 1000),
        fmtBytes(r.clusterBytes),
      ]),
    ],
    new Set([0, 1, 2]),
  );

  const lo = results[0];
  const hi = results.at(-1);
  const rows: string[][] = [['check', 'value', 'target', 'verdict']];
  if (lo && hi && lo !== hi) {
    const rFlat = ratio(inBackup(hi), inBackup(lo));
    const rBase = ratio(baseS(hi), baseS(lo));
    const rSize = ratio(hi.dbBytes, lo.dbBytes);
    rows.push(
      [
        `backup-mode time flat in size: scale ${hi.scale} within ${TARGET_FLAT_RATIO}× of scale ${lo.scale}`,
        fmtRatio(rFlat),
        `≤ ${TARGET_FLAT_RATIO}×`,
        verdict(rFlat, (v) => v <= TARGET_FLAT_RATIO),
      ],
      [`pg_basebackup grows with size: scale ${hi.scale} / scale ${lo.scale}`, fmtRatio(rBase), '(info)', ''],
      [`database size: scale ${hi.scale} / scale ${lo.scale}`, fmtRatio(rSize), '(info)', ''],
    );
  } else {
    rows.push(['backup-mode time flat in size (needs two scales)', '—', `≤ ${TARGET_FLAT_RATIO}×`, 'n/a']);
  }
  out += '\n';
  out += table(rows, new Set([1]));
  return out;
}

// ---------------------------------------------------------------------------------------------

async function main(opts: Options): Promise<number> {
  if (!checkBuild()) return 2;
  if (process.getuid?.() !== 0) {
    process.stderr.write('needs root (a btrfs on a loop device, PostgreSQL as the pgrb user)\n');
    return 2;
  }
  for (const f of [PGBENCH, PG_BASEBACKUP]) {
    if (!existsSync(f)) {
      process.stderr.write(`${f} is missing: run scripts/install-test-deps.sh\n`);
      return 2;
    }
  }

  // On the root filesystem: run journals, inventories and pg_basebackup's copies.
  const work = await workDir('pgrb-bench-backup-', opts.keep);
  const fs = await createBtrfs({ sizeGiB: opts.sizeGiB });
  atCleanUp(() => fs.destroy());

  process.stdout.write(
    `backup window: PostgreSQL ${PG_VERSION}, PGDATA on a btrfs subvolume (${opts.sizeGiB} GiB loop device ${fs.loopDevice}); ` +
      `pgbench scales ${opts.scales.join(', ')}; ${opts.warmup} untimed warm-up, ${opts.repeat} timed rounds\n` +
      `snapshot-backup.yml (btrfs, -e verify=false) against basebackup.yml's pg.basebackup (pg_basebackup -X stream -c fast) to ${tmpdir()}; ` +
      (opts.loadTps > 0
        ? `pgbench load of ${opts.loadTps} tps (${LOAD_CLIENTS} clients) throughout\n`
        : 'no load\n') +
      `${machineLine()}\n`,
  );
  warnIfBusy();

  const results: ScaleResult[] = [];
  for (const scale of opts.scales) {
    if (isStopping()) break;
    const r = await runScale(opts, scale, fs, work);
    results.push(r);
    if (r.error && !isStopping()) log(`scale ${scale} FAILED: ${r.error.split('\n')[0]}`);
  }

  if (isStopping()) return 3; // the time limit or a signal: clean-up has already begun
  process.stdout.write(report(opts, results));
  process.stdout.write(`\nload average at the end: ${loadAverage()}\n`);
  for (const r of results)
    if (r.error) process.stderr.write(`\n[bench] scale ${r.scale} FAILED:\n${r.error}\n`);
  return results.some((r) => r.error) ? 1 : 0;
}

runMain({ usage: USAGE, parse: parseOptions, main, cleanUpMs: 60_000, childrenWithinLimit: true });

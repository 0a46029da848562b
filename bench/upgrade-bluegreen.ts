// Blue-green benchmark: what pgbench clients connected through PgBouncer live through when a
// 2-member Patroni 13 cluster moves to 15 by the blue-green playbooks (build, then switchover),
// against the in-place upgrade (pg-major-upgrade.yml) of an identical cluster in the same run.
//
//   npx tsx bench/upgrade-bluegreen.ts [--scales 50] [--repeat 1] [--clients 4] [--timeout 3600] [--keep]
//
// Per scale and round, on one etcd and the private sshd:
// - in place: a Patroni 13 cluster filled by pgbench -i -s SCALE, upgraded by pg-major-upgrade.yml
//   with pgbench clients through its PgBouncer and the write probe (bench/write-probe.ts);
// - blue-green: an identical cluster (wal_level=logical) as blue, a 2-member Patroni 15 cluster
//   whose patroni.yml files are all there is as green; pgbench clients stay connected through
//   blue's PgBouncer from before the build until after the switchover; then new clients write on
//   15 for 5 s and through the switch back. Printed for each switch: the longest latency of the
//   transactions that ended during it (target ≤ 2 s), failed transactions, the pause PgBouncer
//   held, and per table the row count and a checksum on both sides once the side that follows
//   has caught up (after the switch back: every row written on 15 is on 13).
// Needs root and `npm run build` first. Exit codes: 0 every run worked (a missed target is
// reported, not an error); 1 a run failed; 2 bad arguments, no build or not root; 3 the overall
// time limit; 130 interrupted.
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type pg from 'pg';
import {
  blueGreenInventory,
  blueGreenSecrets,
  type EtcdServer,
  type PatroniCluster,
  type PeerSsh,
  type PgBouncerServer,
  type PgbenchLoad,
  peerSsh,
  type SshServer,
  startEtcd,
  startPatroniCluster,
  startPgbench,
  startSshd,
} from '../tools/testenv/index.js';
import {
  atCleanUp,
  CLI,
  checkBuild,
  jsonEvents,
  log,
  machineLine,
  ROOT,
  runFailure,
  runMain,
  table,
  timeChild,
  verdict,
  warnIfBusy,
  workDir,
} from './common.js';
import {
  BOUNCER_ADMIN,
  BOUNCER_SECRET,
  type Ev,
  fill,
  type InPlaceRun,
  inPlaceByPgrunbook,
  NEW,
  OLD,
  parseUpgradeOptions,
  poolerFor,
  sql,
  type UpgradeOptions,
} from './upgrade-common.js';

const BUILD = join(ROOT, 'playbooks', 'pg-major-upgrade-bluegreen.yml');
const SWITCHOVER = join(ROOT, 'playbooks', 'pg-bluegreen-switchover.yml');
// The longest client latency during the switchover, at most (issue target), ms.
const TARGET_MS = 2000;
const TABLES = ['pgbench_accounts', 'pgbench_branches', 'pgbench_tellers', 'pgbench_history'];

type Options = UpgradeOptions;

const USAGE =
  'usage: npx tsx bench/upgrade-bluegreen.ts [--scales S1,S2=50] [--repeat R=1] [--clients N=4] [--timeout SECONDS=3600] [--keep]\n';

const parseOptions = (argv: string[]): Options => parseUpgradeOptions(argv, 1);

/** One switch (over, or back): what its clients lived through and what it left on both sides. */
interface SwitchRun {
  /** the switchover playbook's run */
  runMs: number;
  /** what pgbouncer.resume reported: from PAUSE returning to RESUME */
  pausedMs: number;
  /** its steps from the pause to the resume */
  steps: { title: string; host: string; ms: number }[];
  transactions: number;
  failures: string[];
  clientsAtEnd: number;
  /** the longest latency of the transactions that ended during the run (or the 3 s after it) */
  latencyMs: number;
  /** per table: "rows:checksum" on blue and green once the other side has caught up */
  tables: { table: string; blue: string; green: string }[];
}

interface BlueGreenRun {
  buildMs: number;
  /** the longest latency during the build (blue's clients while green was made) */
  buildLatencyMs: number;
  over: SwitchRun;
  back: SwitchRun;
}

interface Sample {
  scale: number;
  round: number;
  inPlace: InPlaceRun;
  blueGreen: BlueGreenRun;
}

async function writeInventory(
  blue: PatroniCluster,
  green: PatroniCluster,
  sshd: SshServer,
  pooler: PgBouncerServer,
  dir: string,
): Promise<string> {
  const file = join(dir, 'inventory-bluegreen.yml');
  await writeFile(
    file,
    blueGreenInventory({
      blue,
      green,
      sshd,
      pooler: { port: pooler.port, adminUser: BOUNCER_ADMIN },
      vars: ['logical_allow: [no_replica_identity]', 'upgrade_jobs: 2'],
    }),
  );
  return file;
}

/** Per table: row count and an order-independent checksum of every row. */
async function contents(cfg: pg.ClientConfig): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const t of TABLES) {
    const [r] = (await sql(
      cfg,
      `select count(*)::text as n, coalesce(sum(hashtext(t::text)::bigint), 0)::text as sum from ${t} t`,
    )) as [{ n: string; sum: string }];
    out[t] = `${r.n}:${r.sum}`;
  }
  return out;
}

/** Both sides' tables once the side that follows has caught up (clients stopped). */
async function compare(blue: PatroniCluster, green: PatroniCluster): Promise<SwitchRun['tables']> {
  const bLeader = blue.clientConfig(await blue.leader());
  const gLeader = green.clientConfig(await green.leader());
  let [b, g] = await Promise.all([contents(bLeader), contents(gLeader)]);
  const deadline = Date.now() + 180_000;
  while (JSON.stringify(b) !== JSON.stringify(g) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 1000));
    [b, g] = await Promise.all([contents(bLeader), contents(gLeader)]);
  }
  return TABLES.map((t) => ({ table: t, blue: b[t]!, green: g[t]! }));
}

/**
 * One switch with pgbench clients through the pooler (started already, or started here), stopped
 * 3 s after it; then both sides compared.
 */
async function oneSwitch(
  args: string[],
  ctx: { inv: string; dir: string; env: NodeJS.ProcessEnv; blue: PatroniCluster; green: PatroniCluster },
  load: PgbenchLoad,
): Promise<SwitchRun> {
  const start = Date.now();
  const sw = await timeChild(
    process.execPath,
    [CLI, 'run', SWITCHOVER, '-i', ctx.inv, ...args, '--yes', '--output', 'json'],
    { cwd: ctx.dir, cpu: false, env: ctx.env },
  );
  const end = Date.now();
  // Clients go on on the other side for a while: their latencies after the resume count too.
  await new Promise((r) => setTimeout(r, 3000));
  const result = await load.stop(1500);
  if (sw.code !== 0) throw runFailure(`the switchover ${args.join(' ')}`, `exit ${sw.code ?? sw.signal}`, sw);
  const events = jsonEvents<Ev>(sw.stdout);
  // step_started events carry no names: the pause is found by its type.
  const from = events.findIndex((e) => e.type === 'step_started' && e.stepType === 'pgbouncer.pause');
  const to = events.findIndex(
    (e) => e.type === 'step_finished' && (e.names ?? []).includes('bouncer_resume'),
  );
  return {
    runMs: end - start,
    pausedMs: Number((events[to]?.outputs as { paused_ms?: number } | undefined)?.paused_ms ?? Number.NaN),
    steps: events
      .slice(from, to + 1)
      .filter((e) => e.type === 'step_finished' && e.status !== 'skipped')
      .map((e) => ({ title: String(e.title), host: String(e.host), ms: Number(e.durationMs) })),
    transactions: result.transactions,
    failures: result.failures,
    clientsAtEnd: result.clientsAtEnd,
    latencyMs: result.maxLatencyBetween(start, end + 3000),
    tables: await compare(ctx.blue, ctx.green),
  };
}

async function blueGreen(
  blue: PatroniCluster,
  green: PatroniCluster,
  sshd: SshServer,
  pooler: PgBouncerServer,
  dir: string,
  clients: number,
): Promise<BlueGreenRun> {
  const inv = await writeInventory(blue, green, sshd, pooler, dir);
  const env = { ...process.env, ...blueGreenSecrets(blue, BOUNCER_SECRET) };
  const through = {
    host: pooler.host,
    port: pooler.port,
    user: 'postgres',
    password: blue.superuser.password,
  };
  // Connected from before the build until after the switchover.
  const load = startPgbench(through, clients);
  await new Promise((r) => setTimeout(r, 2000));
  const buildStart = Date.now();
  const build = await timeChild(process.execPath, [CLI, 'run', BUILD, '-i', inv, '--output', 'json'], {
    cwd: dir,
    cpu: false,
    env,
  });
  const buildEnd = Date.now();
  if (build.code !== 0) {
    await load.stop();
    throw runFailure('the blue-green build', `exit ${build.code ?? build.signal}`, build);
  }
  const ctx = { inv, dir, env, blue, green };
  let buildLatencyMs = Number.NaN;
  const over = await oneSwitch([], ctx, {
    stop: async (tail) => {
      const r = await load.stop(tail);
      buildLatencyMs = r.maxLatencyBetween(buildStart, buildEnd);
      return r;
    },
  });
  // Clients write on 15 for a while, then everything goes back to 13.
  const again = startPgbench(through, clients);
  await new Promise((r) => setTimeout(r, 5000));
  const back = await oneSwitch(['-e', 'switch_to=blue'], ctx, again);
  return { buildMs: buildEnd - buildStart, buildLatencyMs, over, back };
}

const s2 = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

function report(samples: Sample[], clients: number): void {
  const out: string[] = [`\n${machineLine()}\n`];
  out.push(
    `\npgbench, ${clients} clients through PgBouncer, connected throughout; 13 → 15, 2-member Patroni clusters:\n`,
  );
  const rows = [
    [
      'scale',
      'round',
      'method',
      'longest client latency',
      'failed',
      'clients at the end',
      'writes paused (reported)',
      `≤ ${TARGET_MS / 1000} s`,
    ],
  ];
  for (const s of samples) {
    const ip = s.inPlace;
    rows.push([
      String(s.scale),
      String(s.round),
      'in place (pg-major-upgrade.yml)',
      s2(ip.pooled?.maxLatencyMs ?? Number.NaN),
      String(ip.pooled?.failures.length ?? '-'),
      String(ip.pooled?.clientsAtEnd ?? '-'),
      `${s2(ip.windowMs)} window; write gap ${s2(ip.longestGapMs)}`,
      '',
    ]);
    for (const [what, sw] of [
      ['blue-green switchover', s.blueGreen.over],
      ['blue-green switch back', s.blueGreen.back],
    ] as const)
      rows.push([
        String(s.scale),
        String(s.round),
        what,
        s2(sw.latencyMs),
        String(sw.failures.length),
        String(sw.clientsAtEnd),
        `PgBouncer paused ${s2(sw.pausedMs)}`,
        verdict(sw.latencyMs, (v) => v <= TARGET_MS),
      ]);
  }
  out.push(table(rows, new Set([3, 4, 5])));
  for (const s of samples) {
    const bg = s.blueGreen;
    out.push(
      `\nscale ${s.scale}, round ${s.round}: blue-green build ${s2(bg.buildMs)} (clients' longest latency meanwhile ${s2(bg.buildLatencyMs)})\n`,
    );
    for (const [what, sw] of [
      ['switchover', bg.over],
      ['switch back', bg.back],
    ] as const) {
      out.push(
        `scale ${s.scale}, round ${s.round}, ${what}: run ${s2(sw.runMs)}, ${sw.transactions} transactions through it\n`,
      );
      out.push(
        table(
          [['step (pause → resume)', 'host', 'took'], ...sw.steps.map((x) => [x.title, x.host, s2(x.ms)])],
          new Set([2]),
        ),
      );
      out.push(
        `every table on both sides after the ${what}, once the other side caught up (rows:checksum)\n`,
      );
      out.push(
        table(
          [
            ['table', 'blue (13)', 'green (15)', 'equal'],
            ...sw.tables.map((t) => [t.table, t.blue, t.green, t.blue === t.green ? 'yes' : 'NO']),
          ],
          new Set([]),
        ),
      );
      for (const f of sw.failures.slice(0, 3)) out.push(`  failure: ${f}\n`);
    }
  }
  process.stdout.write(out.join(''));
}

async function main(opts: Options): Promise<number> {
  if (process.getuid?.() !== 0) {
    process.stderr.write('bench/upgrade-bluegreen.ts must run as root (test servers run as pgrb)\n');
    return 2;
  }
  if (!checkBuild()) return 2;
  warnIfBusy(' (a switchover is about a second: a busy machine stretches it)');
  const work = await workDir('pgrb-bench-bluegreen-', opts.keep);
  await chmod(work, 0o755);
  const [etcd, sshd]: [EtcdServer, SshServer] = await Promise.all([startEtcd(), startSshd()]);
  atCleanUp(() => etcd.stop());
  atCleanUp(() => sshd.stop());
  const peer: PeerSsh = await peerSsh(sshd);
  const samples: Sample[] = [];
  for (const scale of opts.scales) {
    for (let round = 1; round <= opts.repeat; round++) {
      log(`scale ${scale}, round ${round}: two Patroni ${OLD} clusters (one as blue), green on ${NEW}`);
      const [a, blue, green] = await Promise.all([
        startPatroniCluster({ etcd, members: 2, version: OLD }),
        startPatroniCluster({ etcd, members: 2, version: OLD, parameters: { wal_level: 'logical' } }),
        startPatroniCluster({ etcd, members: 2, version: NEW, deferred: true }),
      ]);
      for (const c of [a, blue, green]) atCleanUp(() => c.stop());
      const dir = join(work, `s${scale}-r${round}`);
      await mkdir(dir);
      await chmod(dir, 0o755);
      await Promise.all([fill(a, scale, dir), fill(blue, scale, dir)]);
      const [pa, pb] = await Promise.all([poolerFor(a), poolerFor(blue)]);
      log(`scale ${scale}, round ${round}: in place`);
      const inPlace = await inPlaceByPgrunbook(a, sshd, peer, dir, pa, opts.clients);
      await Promise.all([a.stop(), pa.stop()]);
      log(`scale ${scale}, round ${round}: blue-green (build, then switchover)`);
      const bg = await blueGreen(blue, green, sshd, pb, dir, opts.clients);
      samples.push({ scale, round, inPlace, blueGreen: bg });
      log(
        `scale ${scale}, round ${round}: in place ${s2(inPlace.pooled?.maxLatencyMs ?? Number.NaN)}, switchover ${s2(bg.over.latencyMs)}, switch back ${s2(bg.back.latencyMs)}`,
      );
      await Promise.all([blue.stop(), green.stop(), pb.stop()]);
    }
  }
  report(samples, opts.clients);
  const unequal = samples.some((s) =>
    [s.blueGreen.over, s.blueGreen.back].some((sw) => sw.tables.some((t) => t.blue !== t.green)),
  );
  return unequal ? 1 : 0;
}

runMain({ usage: USAGE, parse: parseOptions, main, cleanUpMs: 120_000, childrenWithinLimit: true });

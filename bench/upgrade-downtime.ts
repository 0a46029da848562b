// Upgrade-downtime benchmark: the write gap clients live through during a 13 → 15 upgrade of a
// 2-member Patroni cluster, pgrunbook's pg-major-upgrade.yml against the documented procedure typed
// by hand (bench/upgrade-by-hand.sh), on two identical fresh clusters in the same run.
//
//   npx tsx bench/upgrade-downtime.ts [--scales 50] [--repeat 1] [--clients 4] [--timeout 3600] [--keep]
//
// Per scale and round: two Patroni 13 clusters on one etcd, each filled by pgbench -i -s SCALE;
// one upgraded by the script, the other by `pgrunbook run playbooks/pg-major-upgrade.yml` over the
// private sshd (the order alternates between rounds). The same write probe (bench/write-probe.ts:
// a row every 100 ms into whichever member takes writes) runs during each upgrade, and pgbench
// clients stay connected through a PgBouncer in front of each cluster, which both methods pause for
// the window (the script through its admin console, as Autobase does). Both clusters
// must end on 15 with the replica streaming. Prints both gaps, their ratio, and pgrunbook's window
// step by step from its events.
// Needs root and `npm run build` first. Exit codes: 0 every run worked (a missed target is
// reported, not an error); 1 a run failed; 2 bad arguments, no build or not root; 3 the overall
// time limit; 130 interrupted.
import { chmod, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import {
  type EtcdServer,
  type PatroniCluster,
  type PeerSsh,
  type PgBouncerServer,
  peerSsh,
  pgBinDir,
  SERVER_USER,
  type SshServer,
  startEtcd,
  startPatroniCluster,
  startSshd,
} from '../tools/testenv/index.js';
import {
  atCleanUp,
  checkBuild,
  fmtRatio,
  log,
  machineLine,
  median,
  ROOT,
  ratio,
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
  checkUpgraded,
  fill,
  type InPlaceRun,
  inPlaceByPgrunbook,
  NEW,
  NEW_NAME,
  type Observed,
  OLD,
  observe,
  parseUpgradeOptions,
  poolerFor,
  type UpgradeOptions,
} from './upgrade-common.js';

const BY_HAND = join(ROOT, 'bench', 'upgrade-by-hand.sh');
// pgrunbook's write gap / the hand floor's, at most (issue target).
const TARGET_RATIO = 1.2;

type Options = UpgradeOptions;

const USAGE =
  'usage: npx tsx bench/upgrade-downtime.ts [--scales S1,S2=50] [--repeat R=1] [--clients N=4] [--timeout SECONDS=3600] [--keep]\n';

const parseOptions = (argv: string[]): Options => parseUpgradeOptions(argv, 0);

interface Sample {
  scale: number;
  round: number;
  hand: Observed & { wallMs: number; phases: [string, number][] };
  tool: InPlaceRun;
}

async function byHand(
  c: PatroniCluster,
  peer: PeerSsh,
  cwd: string,
  pooler: PgBouncerServer | undefined,
  clients: number,
): Promise<Sample['hand']> {
  const leaderName = await c.leader();
  const leader = c.members.find((m) => m.name === leaderName)!;
  const line = (m: PatroniCluster['members'][number]) =>
    [m.dataDir, m.configFile, m.serviceScript, m.pgPort, m.socketDir, m.restUrl].join('|');
  const env = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    OLD_BIN: pgBinDir(OLD),
    NEW_BIN: pgBinDir(NEW),
    NEW_NAME,
    SCOPE: c.scope,
    LEADER_NAME: leaderName,
    PATRONI_URL: leader.restUrl,
    JOBS: '2',
    RSYNC_SSH: peer.sshCommand,
    LEADER: line(leader),
    REPLICAS: c.members
      .filter((m) => m !== leader)
      .map(line)
      .join('\n'),
    ...(pooler
      ? { PGB_PORT: String(pooler.port), PGB_USER: BOUNCER_ADMIN, PGB_PASSWORD: BOUNCER_SECRET }
      : {}),
  };
  const probe = observe(c, pooler, clients);
  const r = await timeChild('runuser', ['-u', SERVER_USER, '--', '/bin/sh', BY_HAND], {
    cwd,
    env,
    cpu: false,
  });
  const result = await probe.stop();
  if (r.code !== 0) throw runFailure('upgrade-by-hand.sh', `exit ${r.code ?? r.signal}`, r);
  const phases: [string, number][] = [];
  for (const l of r.stdout.split('\n')) {
    const m = /^phase (\S+) ([0-9.]+)$/.exec(l);
    if (m) phases.push([m[1]!, Number(m[2]) * 1000]);
  }
  await checkUpgraded(c, 'by hand');
  return { ...result, wallMs: r.ms, phases };
}

const s1 = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

function report(samples: Sample[]): void {
  const out: string[] = [];
  out.push(`\n${machineLine()}\n`);
  const rows = [
    [
      'scale',
      'round',
      'by hand: longest write gap',
      'pgrunbook: longest write gap',
      'ratio',
      `target ≤ ${TARGET_RATIO}×`,
    ],
  ];
  for (const s of samples) {
    const q = ratio(s.tool.longestGapMs, s.hand.longestGapMs);
    rows.push([
      String(s.scale),
      String(s.round),
      s1(s.hand.longestGapMs),
      s1(s.tool.longestGapMs),
      fmtRatio(q),
      verdict(q, (v) => v <= TARGET_RATIO),
    ]);
  }
  for (const scale of new Set(samples.map((s) => s.scale))) {
    const of = samples.filter((s) => s.scale === scale);
    if (of.length < 2) continue;
    const h = median(of.map((s) => s.hand.longestGapMs));
    const p = median(of.map((s) => s.tool.longestGapMs));
    rows.push([
      String(scale),
      'median',
      s1(h ?? 0),
      s1(p ?? 0),
      fmtRatio(ratio(p, h)),
      verdict(ratio(p, h), (v) => v <= TARGET_RATIO),
    ]);
  }
  out.push(table(rows, new Set([2, 3, 4])));
  if (samples.some((s) => s.hand.pooled || s.tool.pooled)) {
    // Clients through PgBouncer, connected the whole time: what they lived through.
    const pooled = (o: Observed) =>
      o.pooled
        ? [
            String(o.pooled.transactions),
            String(o.pooled.failures.length),
            s1(o.pooled.maxLatencyMs),
            `${o.pooled.clientsAtEnd}`,
          ]
        : ['-', '-', '-', '-'];
    out.push('\npgbench through PgBouncer during each upgrade (paused for the window by both):\n');
    out.push(
      table(
        [
          ['scale', 'round', 'method', 'transactions', 'failed', 'longest latency', 'clients at the end'],
          ...samples.flatMap((s) => [
            [String(s.scale), String(s.round), 'by hand', ...pooled(s.hand)],
            [String(s.scale), String(s.round), 'pgrunbook', ...pooled(s.tool)],
          ]),
        ],
        new Set([3, 4, 5, 6]),
      ),
    );
    for (const s of samples)
      for (const [who, o] of [
        ['by hand', s.hand],
        ['pgrunbook', s.tool],
      ] as const)
        for (const f of o.pooled?.failures.slice(0, 3) ?? [])
          out.push(`  scale ${s.scale}, round ${s.round}, ${who}: ${f}\n`);
  }
  for (const s of samples) {
    out.push(
      `\nscale ${s.scale}, round ${s.round}: by hand (${s1(s.hand.wallMs)} in all; ${s.hand.failed} failed writes)\n`,
    );
    const ph = s.hand.phases;
    out.push(
      table(
        ph.slice(0, -1).map(([name, at], i) => [name, s1((ph[i + 1]![1] as number) - at)]),
        new Set([1]),
      ),
    );
    out.push(
      `scale ${s.scale}, round ${s.round}: pgrunbook (${s1(s.tool.wallMs)} in all; ${s.tool.failed} failed writes; window ${s1(s.tool.windowMs)} by its events${s.tool.reported ? `, it reported ${JSON.stringify(s.tool.reported)}` : ''})\n`,
    );
    const sum = s.tool.steps.reduce((a, b) => a + b.ms, 0);
    out.push(
      table(
        [
          ...s.tool.steps.map((x) => [x.title, x.host, s1(x.ms)]),
          [
            'between steps (engine, connections; negative where steps ran on several hosts at once)',
            '',
            s1(s.tool.windowMs - sum),
          ],
        ],
        new Set([2]),
      ),
    );
  }
  process.stdout.write(out.join(''));
}

async function main(opts: Options): Promise<number> {
  if (process.getuid?.() !== 0) {
    process.stderr.write('bench/upgrade-downtime.ts must run as root (test servers run as pgrb)\n');
    return 2;
  }
  if (!checkBuild()) return 2;
  warnIfBusy(' (the upgrade windows are seconds: a busy machine stretches both, not always alike)');
  const work = await workDir('pgrb-bench-upgrade-', opts.keep);
  await chmod(work, 0o755);
  const [etcd, sshd]: [EtcdServer, SshServer] = await Promise.all([startEtcd(), startSshd()]);
  atCleanUp(() => etcd.stop());
  atCleanUp(() => sshd.stop());
  const peer = await peerSsh(sshd);
  const samples: Sample[] = [];
  for (const scale of opts.scales) {
    for (let round = 1; round <= opts.repeat; round++) {
      log(`scale ${scale}, round ${round}: two Patroni ${OLD} clusters, pgbench -i -s ${scale}`);
      const [a, b] = await Promise.all([
        startPatroniCluster({ etcd, members: 2, version: OLD }),
        startPatroniCluster({ etcd, members: 2, version: OLD }),
      ]);
      atCleanUp(() => a.stop());
      atCleanUp(() => b.stop());
      const dir = join(work, `s${scale}-r${round}`);
      await mkdir(dir);
      await chmod(dir, 0o755);
      await Promise.all([fill(a, scale, dir), fill(b, scale, dir)]);
      const [pa, pb] =
        opts.clients > 0 ? await Promise.all([poolerFor(a), poolerFor(b)]) : [undefined, undefined];
      const runHand = async () => {
        log(`scale ${scale}, round ${round}: by hand`);
        return byHand(a, peer, dir, pa, opts.clients);
      };
      const runTool = async () => {
        log(`scale ${scale}, round ${round}: pgrunbook`);
        return inPlaceByPgrunbook(b, sshd, peer, dir, pb, opts.clients);
      };
      // Alternate which goes first, so that a drift in machine load does not favour one.
      let hand: Sample['hand'];
      let tool: Sample['tool'];
      if (round % 2) {
        hand = await runHand();
        tool = await runTool();
      } else {
        tool = await runTool();
        hand = await runHand();
      }
      samples.push({ scale, round, hand, tool });
      log(
        `scale ${scale}, round ${round}: by hand ${s1(hand.longestGapMs)}, pgrunbook ${s1(tool.longestGapMs)}`,
      );
      await Promise.all([a.stop(), b.stop(), pa?.stop(), pb?.stop()]);
    }
  }
  report(samples);
  return 0;
}

runMain({ usage: USAGE, parse: parseOptions, main, cleanUpMs: 120_000, childrenWithinLimit: true });

// The servers a fault-matrix cell runs on: one etcd, one sshd (and a second one whose sessions have
// no rsync on their PATH), a Patroni cluster on PostgreSQL 13, and the inventories that reach it
// over ssh. Cells of the backup playbook share one cluster, reset between cells; an upgrade cell
// gets a fresh cluster (a killed upgrade may leave it half-way through its downtime).
import { existsSync, mkdirSync, readdirSync, symlinkSync } from 'node:fs';
import { chmod, chown, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { sql } from '../../tools/testenv/checks.js';
import {
  type EtcdServer,
  httpRequest,
  lookupUser,
  makeTempDir,
  type PatroniCluster,
  type PatroniMember,
  peerSsh,
  pgBinDir,
  runAs,
  SERVER_USER,
  type SshServer,
  startEtcd,
  startPatroniCluster,
  startSshd,
} from '../../tools/testenv/index.js';

/** Everything cells share: the servers, and the cluster of the moment. */
export interface Lab {
  etcd: EtcdServer;
  sshd: SshServer;
  /** the same machine reached through an sshd whose sessions have a PATH without rsync */
  sshdNoRsync: SshServer;
  cluster: PatroniCluster;
  /** backups of the backup cells (owned by the server user); emptied between cells */
  backupRoot: string;
  members: number;
  /** PGRB_FAULT_LAB=token is in the environment of every process our sshds start */
  token: string;
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const SYSTEM_PATH = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

/** A directory holding every command of this machine but rsync, for a PATH without it. */
async function pathWithoutRsync(): Promise<string> {
  const bin = await makeTempDir('pgrb-fm-norsync-', 'root');
  await chmod(bin, 0o755);
  for (const d of SYSTEM_PATH) {
    if (!existsSync(d)) continue;
    for (const f of readdirSync(d))
      if (f !== 'rsync' && !existsSync(join(bin, f))) symlinkSync(join(d, f), join(bin, f));
  }
  return bin;
}

/** Starts etcd, both sshds and a cluster of `members` Patroni members on PostgreSQL 13. */
export async function startLab(members = 2): Promise<Lab> {
  const noRsync = await pathWithoutRsync();
  const token = `fm${process.pid}x${Date.now()}`;
  const [etcd, sshd, sshdNoRsync] = await Promise.all([
    startEtcd(),
    startSshd({ setEnv: { PGRB_FAULT_LAB: token } }),
    startSshd({ setEnv: { PATH: noRsync, PGRB_FAULT_LAB: token } }),
  ]);
  const cluster = await startPatroniCluster({ etcd, members, version: 13 });
  const backupRoot = await makeTempDir('pgrb-fm-backups-');
  await chmod(backupRoot, 0o755);
  const lab: Lab = {
    etcd,
    sshd,
    sshdNoRsync,
    cluster,
    backupRoot,
    members,
    token,
    async stop() {
      await lab.cluster.stop().catch(() => {});
      await Promise.all([sshd.stop(), sshdNoRsync.stop(), etcd.stop()]);
      await rm(backupRoot, { recursive: true, force: true });
      await rm(noRsync, { recursive: true, force: true });
    },
  };
  return lab;
}

/** Replaces the lab's cluster with a fresh one (an upgrade cell starts from PostgreSQL 13). */
export async function freshCluster(lab: Lab): Promise<void> {
  await lab.cluster.stop().catch(() => {});
  lab.cluster = await startPatroniCluster({ etcd: lab.etcd, members: lab.members, version: 13 });
}

/** Which sshd a cell's inventory names, and the extra inventory vars it sets. */
export interface InventoryOptions {
  noRsync?: boolean;
  backupRoot?: string;
}

function sshLine(s: SshServer): string {
  return `{ host: 127.0.0.1, port: ${s.port}, user: ${SERVER_USER}, identity_file: ${s.identityFile}, known_hosts: ${s.knownHostsFile} }`;
}

function hostLines(lab: Lab, o: InventoryOptions, extra: (m: PatroniMember) => string[]): string {
  const ssh = sshLine(o.noRsync ? lab.sshdNoRsync : lab.sshd);
  return lab.cluster.members
    .map((m) =>
      [
        `  ${m.name}:`,
        `    ssh: ${ssh}`,
        `    pg: { host: ${m.socketDir}, port: ${m.pgPort}, user: postgres, sslmode: disable }`,
        `    patroni: { url: "${m.restUrl}", timeout: 2, config: ${m.configFile} }`,
        '    vars:',
        ...extra(m).map((l) => `      ${l}`),
      ].join('\n'),
    )
    .join('\n');
}

/** The inventory of playbooks/snapshot-backup.yml for the lab's cluster, over ssh. */
export function backupInventory(lab: Lab, o: InventoryOptions = {}): string {
  const c = lab.cluster;
  return `vars:
  backup_root: ${o.backupRoot ?? lab.backupRoot}
  archive_dir: ${c.archiveDir}
  pg_bin_dir: ${c.binDir}
  pg_os_user: ${SERVER_USER}
hosts:
${hostLines(lab, o, (m) => [`pgdata: ${m.dataDir}`])}
`;
}

/** The inventory of playbooks/pg-major-upgrade.yml (13 → 15) for the lab's cluster, over ssh. */
export async function upgradeInventory(lab: Lab, o: InventoryOptions = {}): Promise<string> {
  const c = lab.cluster;
  const peer = await peerSsh(o.noRsync ? lab.sshdNoRsync : lab.sshd);
  return `vars:
  pg_bin_old: ${pgBinDir(13)}
  pg_bin_new: ${pgBinDir(15)}
  pg_os_user: ${SERVER_USER}
  backup_root: ${o.backupRoot ?? lab.backupRoot}
  archive_dir: ${c.archiveDir}
  rsync_ssh: ${JSON.stringify(peer.sshCommand)}
  patroni_ttl: 20
  patroni_loop_wait: 2
hosts:
${hostLines(lab, o, (m) => [
  `pgdata: ${m.dataDir}`,
  `pgdata_new: ${m.memberDir}/data15`,
  `pg_socket_dir: ${m.socketDir}`,
  `patroni_stop_command: ${m.serviceScript} stop`,
  `patroni_start_command: ${m.serviceScript} start`,
])}
groups:
  patroni: { hosts: [${c.members.map((m) => m.name).join(', ')}] }
`;
}

/** GET a member's REST path as JSON, or undefined when it does not answer. */
export async function rest(m: PatroniMember, path: string): Promise<Record<string, unknown> | undefined> {
  try {
    const r = await httpRequest('GET', `${m.restUrl}${path}`, undefined, 1500);
    return JSON.parse(r.body) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

/**
 * Puts the backup cluster back to the state every backup cell starts from: every Patroni running,
 * unpaused, a leader with streaming replicas, no pgrunbook session, an empty backup root. Throws
 * when it cannot (the matrix then rebuilds the cluster).
 */
export async function resetBackupCluster(lab: Lab): Promise<void> {
  const c = lab.cluster;
  for (const m of c.members) await runAs(SERVER_USER, [m.serviceScript, 'start']).catch(() => {});
  // Unpause through whichever member answers (the cell measured the pause before this).
  const deadline = Date.now() + 60_000;
  for (;;) {
    let ok = false;
    for (const m of c.members) {
      const r = await httpRequest('PATCH', `${m.restUrl}/config`, { pause: null }, 3000).catch(
        () => undefined,
      );
      if (r && r.status === 200) {
        ok = true;
        break;
      }
    }
    if (ok || Date.now() > deadline) break;
    await sleep(1000);
  }
  // Healthy: a leader, every member running and unpaused, every replica streaming.
  for (;;) {
    const healthy = await clusterHealthy(lab).catch(() => false);
    if (healthy) break;
    if (Date.now() > deadline) throw new Error('the cluster did not come back healthy within 60 s');
    await sleep(500);
  }
  const leader = await c.leader();
  await sql(
    c.clientConfig(leader),
    "select pg_terminate_backend(pid) from pg_stat_activity where application_name like 'pgrunbook%'",
  ).catch(() => {});
  await emptyDir(lab.backupRoot);
}

/** Every member running and unpaused, one leader, every replica streaming from it. */
export async function clusterHealthy(lab: Lab): Promise<boolean> {
  const c = lab.cluster;
  const views = await Promise.all(c.members.map((m) => rest(m, '/patroni')));
  if (views.some((v) => !v || v.state !== 'running' || v.pause === true)) return false;
  const leaders = views.filter((v) => v!.role === 'master' || v!.role === 'primary');
  if (leaders.length !== 1) return false;
  const leader = await c.leader();
  const [r] = await sql<{ n: number }>(
    c.clientConfig(leader),
    "select count(*)::int as n from pg_stat_replication where state = 'streaming'",
  );
  return (r?.n ?? 0) >= c.members.length - 1;
}

/** Removes everything in `dir` but the directory itself. */
export async function emptyDir(dir: string): Promise<void> {
  for (const e of await readdir(dir)) {
    await rm(join(dir, e), { recursive: true, force: true });
    // A read-only tree (a cell made it unwritable) needs its mode back first.
    if (existsSync(join(dir, e))) {
      await runAs('root', ['chmod', '-R', 'u+w', join(dir, e)]).catch(() => {});
      await rm(join(dir, e), { recursive: true, force: true });
    }
  }
}

/** A backup root the server user cannot write into (root-owned, 0755), for the unwritable cell. */
export async function unwritableRoot(lab: Lab): Promise<string> {
  const dir = join(lab.backupRoot, 'readonly');
  mkdirSync(dir, { mode: 0o755 });
  const root = await lookupUser('root');
  await chown(dir, root.uid, root.gid);
  await chmod(dir, 0o555);
  return dir;
}

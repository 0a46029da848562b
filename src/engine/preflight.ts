// Before anything runs (plan --check, and run before its first step): every SSH host the plan
// targets is reached with its host key verified, and `become` is tried; then what the planned
// steps declared they need (see StepNeeds) is checked on each host, over the transport the run
// will use and as the user the step runs as: the programs they call, their destinations (writable,
// with room for a copy), and WAL archiving. Everything here reads; nothing is written.

import { userInfo } from 'node:os';
import { LocalTransport, withoutEnv } from '../connections/local.js';
import { openPg, type PgSession } from '../connections/pg.js';
import { archiveProblems } from '../connections/pg-archive.js';
import { type Claim, checkPairing, serverIdentity } from '../connections/pg-identity.js';
import { asUser } from '../connections/run-as.js';
import { openSsh } from '../connections/ssh.js';
import { commandLine, type Transport } from '../connections/transport.js';
import type { Problem } from '../errors.js';
import type { Inventory, InventoryHost } from '../inventory/inventory.js';
import { Semaphore } from '../util/semaphore.js';
import { quote } from '../util/shell.js';
import type { NeedRequest } from './model.js';

/** Handshakes at once: below OpenSSH's default MaxStartups (10). */
const AT_ONCE = new Semaphore(8);

type Binary = NonNullable<NeedRequest['needs']['binaries']>[number];
type Writable = NonNullable<NeedRequest['needs']['writable']>[number];
type Pairing = NonNullable<NeedRequest['needs']['pairing']>[number];

/** What one host must offer, each item with the step that needs it. */
interface HostNeeds {
  binaries: { b: Binary; req: NeedRequest }[];
  writable: { w: Writable; req: NeedRequest }[];
  archive: NeedRequest[];
  pairing: { p: Pairing; req: NeedRequest }[];
}

/** Problems, located at each host in the inventory or at the step that needs what is missing. */
export async function preflight(
  inventory: Inventory,
  hosts: readonly string[],
  needs: readonly NeedRequest[] = [],
): Promise<Problem[]> {
  const byHost = new Map<string, HostNeeds>();
  const of = (h: string) => {
    const n = byHost.get(h) ?? { binaries: [], writable: [], archive: [], pairing: [] };
    byHost.set(h, n);
    return n;
  };
  for (const req of needs) {
    for (const b of req.needs.binaries ?? []) of(b.host ?? req.host).binaries.push({ b, req });
    for (const w of req.needs.writable ?? []) of(req.host).writable.push({ w, req });
    if (req.needs.archive) of(req.host).archive.push(req);
    for (const p of req.needs.pairing ?? []) of(req.host).pairing.push({ p, req });
  }
  const names = [...new Set([...hosts, ...byHost.keys()])];
  const found = await Promise.all(
    names.map((name) => AT_ONCE.run(() => checkHost(inventory, name, byHost.get(name)))),
  );
  return found.flat();
}

/** "(needed by step 'Title')" */
const by = (req: NeedRequest) => `needed by step '${req.title}'`;

async function checkHost(inventory: Inventory, name: string, needs?: HostNeeds): Promise<Problem[]> {
  const h = inventory.hosts.get(name);
  if (!h) return [];
  const at = (message: string) =>
    inventory.doc.problem(['hosts', name], `preflight: ${message}`, { key: true });
  let t: Transport;
  if (h.transport === 'ssh' && h.ssh) {
    try {
      t = await openSsh(h.ssh);
    } catch (err) {
      return [at(`ssh: ${(err as Error).message}`)];
    }
  } else if (needs) t = new LocalTransport({ envFilter: withoutEnv(h.secretEnv ?? []) });
  else return [];
  try {
    if (t.kind === 'ssh') {
      const r = await t.exec(commandLine({ script: 'true' }, h.become));
      if (r.exitCode !== 0)
        return [
          at(
            h.become
              ? `become (sudo -n) does not work for ${h.ssh!.user}@${h.ssh!.host}: ${r.stderr.trim().split('\n').slice(-2).join(' ') || `exit ${r.exitCode}`}`
              : `ssh: a command on ${h.ssh!.host} failed (exit ${r.exitCode}): ${r.stderr.trim()}`,
          ),
        ];
    }
    if (!needs) return [];
    return [...(await checkBinaries(t, h, needs)), ...(await checkServer(t, h, needs))];
  } catch (err) {
    return [at(`${t.kind}: ${(err as Error).message}`)];
  } finally {
    await t.close();
  }
}

/** One command for every program: a name on PATH (as the steps' commands see it), or a path. */
async function checkBinaries(t: Transport, h: InventoryHost, needs: HostNeeds): Promise<Problem[]> {
  const names = [...new Set(needs.binaries.map((x) => x.b.name))];
  if (!names.length) return [];
  const script = `for b in ${names.map(quote).join(' ')}; do case $b in /*) [ -f "$b" ] && [ -x "$b" ] ;; *) command -v "$b" >/dev/null 2>&1 ;; esac || printf 'missing %s\\n' "$b"; done`;
  const r = await t.exec(commandLine({ script }, h.become));
  if (r.exitCode !== 0)
    throw new Error(`the check for programs failed (exit ${r.exitCode}): ${r.stderr.trim()}`);
  const missing = new Set(
    r.stdout
      .split('\n')
      .filter((l) => l.startsWith('missing '))
      .map((l) => l.slice('missing '.length)),
  );
  return needs.binaries
    .filter((x) => missing.has(x.b.name))
    .map(({ b, req }) =>
      req.problem(
        `preflight: ${b.name} not found on ${h.name} (${by(req)}${b.package ? `, Debian package: ${b.package}` : ''})`,
      ),
    );
}

/** Destinations and the archive: the directories over the transport, the rest read from PostgreSQL. */
async function checkServer(t: Transport, h: InventoryHost, needs: HostNeeds): Promise<Problem[]> {
  const problems: Problem[] = [];
  let pg: PgSession | undefined;
  let tried = false;
  // A server that does not answer now may be started by an earlier step (pg.ctl start): its
  // archive and the room for its copy are then left to the steps, which check them again.
  const session = async (): Promise<PgSession | undefined> => {
    if (tried || !h.pg) return pg;
    tried = true;
    pg = await openPg(h.name, h.pg, 'pgrunbook-preflight').catch(() => undefined);
    await pg?.query('set default_transaction_read_only = on');
    return pg;
  };
  try {
    for (const { w, req } of needs.writable) {
      const line = w.user
        ? asUser(h, w.user, writableScript(w.path))
        : commandLine({ script: writableScript(w.path) }, h.become);
      const r = await t.exec(line);
      const m = /^(ok|no) (\d*) (.*)$/m.exec(r.stdout);
      const who = w.user ?? (h.become ? 'root (become)' : h.transport === 'ssh' ? h.ssh?.user : localUser());
      if (!m) {
        problems.push(
          req.problem(
            `preflight: could not check ${w.path} on ${h.name} (exit ${r.exitCode}): ${r.stderr.trim()} (${by(req)})`,
          ),
        );
        continue;
      }
      const [, verdict, kib, dir] = m;
      if (verdict === 'no') {
        problems.push(
          req.problem(
            `preflight: ${w.path} on ${h.name} is not writable by ${who}: ${dir === w.path ? 'it' : `${dir}, the nearest existing directory,`} is not a writable directory (${by(req)})`,
          ),
        );
        continue;
      }
      if (w.room !== 'databases' || !kib || !h.pg) continue;
      // The size of the server's databases (pg_database_size, tablespaces included) stands for
      // the copy: asking PostgreSQL is instant where `du -s` of a large PGDATA takes minutes.
      // WAL is left out, as the copy leaves it out.
      const s = await session();
      if (!s) continue;
      const size = Number(
        (
          await s.query(
            "select coalesce(sum(pg_database_size(oid)), 0)::text as bytes from pg_database where has_database_privilege(oid, 'CONNECT')",
          )
        ).rows[0]!.bytes,
      );
      const free = Number(kib) * 1024;
      if (free < size)
        problems.push(
          req.problem(
            `preflight: only ${human(free)} free in ${dir} on ${h.name}, and the copy to ${w.path} needs about ${human(size)} (the size of its databases) (${by(req)})`,
          ),
        );
    }
    if (needs.archive.length) {
      const s = await session();
      const found = s ? await archiveProblems(s) : [];
      for (const req of needs.archive)
        for (const f of found)
          problems.push(req.problem(`preflight: WAL archiving on ${h.name}: ${f} (${by(req)})`));
    }
    problems.push(...(await checkPairings(t, h, needs, session)));
  } finally {
    await pg?.close();
  }
  return problems;
}

/**
 * A backup's labels describe the server the pg: settings reach: the directory a step will copy
 * (its `dir`, else the host's pgdata) must be that server's data_directory, symlinks resolved,
 * with its system identifier in global/pg_control. The same check the steps run again.
 */
async function checkPairings(
  t: Transport,
  h: InventoryHost,
  needs: HostNeeds,
  session: () => Promise<PgSession | undefined>,
): Promise<Problem[]> {
  const pgdata =
    typeof h.vars.pgdata === 'string' && h.vars.pgdata.startsWith('/') ? h.vars.pgdata : undefined;
  const wanted = needs.pairing.flatMap(({ p, req }) => {
    const dir = p.dir ?? pgdata;
    if (!dir) return [];
    const claim: Claim = {
      what: p.dir ? `${req.title} will copy` : "the inventory's pgdata is",
      dir,
      control: `${dir}/global/pg_control`,
    };
    return [{ claim, req }];
  });
  if (!wanted.length) return [];
  const s = await session();
  if (!s) return [];
  const id = await serverIdentity(s);
  const found = await checkPairing(
    t,
    id,
    wanted.map((w) => w.claim),
    { become: h.become },
  );
  const problems: Problem[] = [];
  for (const [i, c] of found.claims.entries()) {
    const req = wanted[i]!.req;
    if (c.problem) problems.push(req.problem(`preflight: on ${h.name}, ${c.problem} (${by(req)})`));
  }
  return problems;
}

/**
 * The nearest existing directory of PATH (the step creates the rest), whether the user may create
 * entries in it, and its free space in KiB: `ok KIB DIR` or `no - DIR`.
 */
function writableScript(path: string): string {
  return [
    `p=${quote(path)}`,
    'while [ ! -e "$p" ] && [ "$p" != / ]; do p=$(dirname -- "$p"); done',
    `if [ -d "$p" ] && [ -w "$p" ] && [ -x "$p" ]; then echo "ok $(df -Pk -- "$p" | awk 'NR==2 {print $4}') $p"; else echo "no  $p"; fi`,
  ].join('\n');
}

function human(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i ? 1 : 0)} ${units[i]}`;
}

function localUser(): string {
  try {
    return userInfo().username;
  } catch {
    return 'the user running pgrunbook';
  }
}

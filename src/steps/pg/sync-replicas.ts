// `pg.sync_replicas`: after pg_upgrade --link on the leader, bring each replica to the new major
// the way PostgreSQL documents it (pg_upgrade, "Upgrade streaming replication standby servers"):
// from the leader, one rsync of the old and new data directories together, so that the hard links
// between them are recreated on the replica and only the files pg_upgrade wrote are sent. Run on
// the leader; the replicas are reached with rsync over ssh from there (in parallel). Tablespaces
// get the same treatment, each in its own directory: the replica's location of it (read from its
// own pg_tblspc links, which may differ from the leader's), and its new data directory's link
// then points there too.
import { basename, dirname } from 'node:path';
import { Type } from '@sinclair/typebox';
import { asLogin, asUser } from '../../connections/run-as.js';
import { StepFailure } from '../../errors.js';
import type { InventoryHost } from '../../inventory/inventory.js';
import { joinArgv, quote } from '../../util/shell.js';
import { defineStep, type PlanContext } from '../define.js';

const Params = Type.Object(
  {
    replicas: Type.Array(Type.String({ minLength: 1 }), {
      description: 'inventory host names of the replicas',
    }),
    except: Type.Optional(
      Type.Array(Type.String({ minLength: 1 }), {
        description:
          'replicas not to sync (they are cloned afresh instead, e.g. by Patroni from an empty data directory)',
      }),
    ),
    old_data_dir: Type.Optional(
      Type.String({
        pattern: '^/',
        description: "the leader's old data directory (default: host var pgdata)",
      }),
    ),
    new_data_dir: Type.Optional(
      Type.String({
        pattern: '^/',
        description: "the leader's new, upgraded data directory (default: host var pgdata_new)",
      }),
    ),
    ssh: Type.Optional(
      Type.String({
        description:
          "rsync's remote shell (default: host var rsync_ssh, else `ssh -o BatchMode=yes`): unknown host keys are refused",
      }),
    ),
    check: Type.Optional(
      Type.Boolean({
        description:
          'only check, changing nothing, that the leader reaches each replica over ssh and that rsync runs there and may write the parent directory',
      }),
    ),
    run_as: Type.Optional(
      Type.String({
        minLength: 1,
        description: 'OS user on the leader that runs rsync (default: the login, through become)',
      }),
    ),
  },
  { additionalProperties: false },
);

const Outputs = Type.Object({
  replicas: Type.Array(Type.Object({ host: Type.String(), seconds: Type.Number() })),
  seconds: Type.Number(),
});

type P = typeof Params.static;

const RSYNC = ['rsync', '--archive', '--delete', '--hard-links', '--size-only', '--no-inc-recursive'];

const str = (v: unknown) => (typeof v === 'string' && v ? v : undefined);

/**
 * A directory as rsync must see it: no trailing slash (with one, rsync copies the contents into
 * the replica's parent, and --delete wipes everything else there), never `/`.
 */
function dir(path: string | undefined, what: string): string | undefined {
  if (path === undefined) return undefined;
  const d = path.replace(/\/+$/, '');
  if (!d.startsWith('/'))
    throw new StepFailure(`pg.sync_replicas: ${what} ${path} is not a directory below /`);
  return d;
}

function dirs(ctx: PlanContext, p: P): { old: string; nu: string } {
  const old = dir(p.old_data_dir ?? str(ctx.host.vars.pgdata), 'old data directory');
  const nu = dir(p.new_data_dir ?? str(ctx.host.vars.pgdata_new), 'new data directory');
  if (!old || !nu)
    throw new StepFailure(
      `pg.sync_replicas: old/new data directory not given and host vars pgdata/pgdata_new not set for ${ctx.host.name}`,
    );
  return { old, nu };
}

/** Where a replica is reached and where its directories are; refuses layouts rsync cannot serve. */
export function target(
  ctx: PlanContext,
  p: P,
  name: string,
): { dest: string; parent: string; sameHost: boolean } {
  const r: InventoryHost | undefined = ctx.peer(name);
  if (!r) throw new StepFailure(`pg.sync_replicas: no host "${name}" in the inventory`);
  const { old, nu } = dirs(ctx, p);
  const rOld = dir(str(r.vars.pgdata), `${name}'s pgdata`);
  const rNew = dir(str(r.vars.pgdata_new), `${name}'s pgdata_new`);
  if (!rOld || !rNew)
    throw new StepFailure(`pg.sync_replicas: host vars pgdata/pgdata_new not set for replica ${name}`);
  // rsync recreates OLD and NEW by their names inside one directory of the replica.
  if (dirname(rOld) !== dirname(rNew) || basename(rOld) !== basename(old) || basename(rNew) !== basename(nu))
    throw new StepFailure(
      `pg.sync_replicas: replica ${name} has pgdata ${rOld} and pgdata_new ${rNew}; they must sit in one directory with the leader's names (${basename(old)}, ${basename(nu)})`,
    );
  if (basename(old) === basename(nu))
    throw new StepFailure(
      `pg.sync_replicas: the old and new data directories are both named "${basename(old)}": on the replica both would land as ${dirname(rOld)}/${basename(old)}; give them different names`,
    );
  const addr = str(r.vars.rsync_host) ?? r.ssh?.host;
  if (!addr)
    throw new StepFailure(
      `pg.sync_replicas: no address for replica ${name} (host var rsync_host or ssh.host)`,
    );
  const user = str(r.vars.rsync_user) ?? r.ssh?.user;
  const self = str(ctx.host.vars.rsync_host) ?? ctx.host.ssh?.host;
  if (addr === self && dirname(rOld) === dirname(old))
    throw new StepFailure(
      `pg.sync_replicas: replica ${name} resolves to this leader's own directories (${addr}:${dirname(old)})`,
    );
  return { dest: `${user ? `${user}@` : ''}${addr}`, parent: dirname(rOld), sameHost: addr === self };
}

const chosen = (p: P) => p.replicas.filter((r) => !(p.except ?? []).includes(r));

/** The pre-flight: ssh from the leader as rsync will, rsync present there, the parent writable. */
function checkScript(ctx: PlanContext, p: P, name: string): string {
  const { dest, parent } = target(ctx, p, name);
  const e = p.ssh ?? str(ctx.host.vars.rsync_ssh) ?? 'ssh -o BatchMode=yes';
  const remote = `command -v rsync >/dev/null || { echo 'no rsync on the replica' >&2; exit 1; }; test -d ${quote(parent)} && test -w ${quote(parent)} || { echo ${quote(`${parent} is not a writable directory there`)} >&2; exit 1; }; echo ok`;
  // `e` is split into words as rsync would split it.
  const s = `${e} ${quote(dest)} ${quote(remote)}`;
  return p.run_as ? asUser(ctx.host, p.run_as, s) : asLogin(ctx.host, s);
}

function script(ctx: PlanContext, p: P, name: string): string {
  const { old, nu } = dirs(ctx, p);
  const { dest, parent, sameHost } = target(ctx, p, name);
  const e = p.ssh ?? str(ctx.host.vars.rsync_ssh) ?? 'ssh -o BatchMode=yes';
  const rsync = joinArgv([...RSYNC, '-e', e]);
  const rOld = `${parent}/${basename(old)}`;
  const rNew = `${parent}/${basename(nu)}`;
  // pg_tblspc's links are the replica's own (it may keep a tablespace elsewhere than the leader,
  // e.g. cloned with pg_basebackup --tablespace-mapping): never overwritten by the leader's.
  const keepLinks = [`/${basename(old)}/pg_tblspc/*`, `/${basename(nu)}/pg_tblspc/*`].map(
    (x) => `--exclude=${quote(x)}`,
  );
  const lines = [
    'set -e',
    `${joinArgv([...RSYNC, '-e', e])} ${keepLinks.join(' ')} ${quote(old)} ${quote(nu)} ${quote(`${dest}:${parent}`)}`,
    // Tablespaces: the replica's own locations, read over ssh, then its links. Skipped when the
    // leader has none: two ssh round trips saved inside the upgrade's window.
    'has=',
    `for l in ${quote(`${old}/pg_tblspc`)}/*; do if [ -L "$l" ]; then has=1; fi; done`,
    '[ -n "$has" ] || exit 0',
    `sq() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\\\\\''/g")"; }`,
    // Where the replica keeps each tablespace: the links in its old data directory (kept by the
    // rsync above).
    `map=$(${e} ${quote(dest)} ${quote(`cd ${quote(`${rOld}/pg_tblspc`)} && for l in *; do if [ -L "$l" ]; then printf '%s %s\\n' "$l" "$(readlink "$l")"; fi; done`)})`,
    // Tablespaces: each holds PG_OLD_* and PG_NEW_* directories side by side; one rsync of both
    // per tablespace, into the replica's own location of it, then its new data directory's link.
    `o=$(cat ${quote(`${old}/PG_VERSION`)}); n=$(cat ${quote(`${nu}/PG_VERSION`)}); links=:`,
    `for l in ${quote(`${old}/pg_tblspc`)}/*; do`,
    '  [ -L "$l" ] || continue; oid=$(basename "$l"); t=$(readlink "$l")',
    `  rt=$(printf '%s\\n' "$map" | sed -n "s/^$oid //p")`,
    `  [ -n "$rt" ] || { echo ${quote(`${name} has no link for tablespace`)} "$oid" ${quote(`in ${rOld}/pg_tblspc: it does not match the leader`)} >&2; exit 1; }`,
    ...(sameHost
      ? [
          `  [ "$rt" != "$t" ] || { echo ${quote(`${name} keeps tablespace`)} "$oid" ${quote('in the same directory as this leader on the same host:')} "$t" >&2; exit 1; }`,
        ]
      : []),
    `  ${rsync} "$t"/PG_"$o"_* "$t"/PG_"$n"_* ${quote(`${dest}:`)}"$rt"`,
    `  links="$links && ln -sfn -- $(sq "$rt") $(sq ${quote(`${rNew}/pg_tblspc/`)}"$oid")"`,
    'done',
    `${e} ${quote(dest)} "$links"`,
  ];
  const s = lines.join('\n');
  return p.run_as ? asUser(ctx.host, p.run_as, s) : asLogin(ctx.host, s);
}

export default defineStep({
  type: 'pg.sync_replicas',
  summary:
    "From the leader, rsync the old and new data directories to each replica (pg_upgrade's documented standby upgrade).",
  params: Params,
  outputs: Outputs,
  mutating: (p) => p.check !== true,
  marksChanges: true,
  undoSummary:
    "none: the replicas' old data directories are overwritten; past the point of no return, rollback is the snapshot",
  // rsync runs on the leader (not for check: true, which only asks the replicas) and, over ssh, on
  // each replica; the ssh program on the leader. The replicas' writable parent is left to
  // check: true, which tests it as the rsync login, where it lands.
  needs(ctx, p) {
    const e = (p.ssh ?? str(ctx.host.vars.rsync_ssh) ?? 'ssh').trim().split(/\s+/)[0]!;
    const rsync = { name: 'rsync', package: 'rsync' };
    return {
      binaries: [
        ...(p.check ? [] : [rsync]),
        {
          name: e,
          package: basename(e) === 'ssh' ? 'openssh-client' : undefined,
          param: p.ssh ? 'ssh' : undefined,
        },
        ...chosen(p).map((r) => ({ ...rsync, host: r, param: 'replicas' })),
      ],
    };
  },
  plan(ctx, p) {
    p = { ...p, replicas: chosen(p) };
    if (p.check)
      return {
        action: `check that this leader reaches ${p.replicas.length} replica(s) with rsync over ssh (changes nothing)`,
        ops: p.replicas.map((r) => ({ kind: 'command' as const, line: checkScript(ctx, p, r) })),
        noop: p.replicas.length === 0 ? 'no replica to check' : undefined,
      };
    if (p.replicas.length === 0) return { action: 'sync no replica', ops: [], noop: 'no replica to sync' };
    return {
      action: `rsync ${p.replicas.length} replica(s) from this leader`,
      ops: p.replicas.map((r) => ({ kind: 'command' as const, line: script(ctx, p, r) })),
    };
  },
  async apply(ctx, p) {
    const t = await ctx.transport();
    ctx.changing();
    const started = Date.now();
    for (const r of p.except ?? [])
      if (p.replicas.includes(r)) ctx.log(`${r}: not synced (cloned afresh instead)`);
    const lines = chosen(p).map((r) => [r, p.check ? checkScript(ctx, p, r) : script(ctx, p, r)] as const);
    const results = await Promise.all(
      lines.map(async ([name, line]) => {
        const t0 = Date.now();
        const r = await t.exec(line, { signal: ctx.signal, onOutput: (s, c) => ctx.output(s, c) });
        return { name, r, seconds: (Date.now() - t0) / 1000 };
      }),
    );
    const failed = results.filter((x) => x.r.exitCode !== 0);
    if (failed.length > 0)
      throw new StepFailure(
        failed
          .map(
            (x) =>
              `${p.check ? 'checking' : 'rsync to'} ${x.name} failed (exit ${x.r.exitCode}): ${x.r.stderr.trim().split('\n').slice(-4).join('\n')}`,
          )
          .join('\n'),
      );
    for (const x of results)
      ctx.log(
        `${x.name}: ${p.check ? 'reachable, rsync there, parent writable' : 'synced'} in ${x.seconds.toFixed(1)} s`,
      );
    return {
      replicas: results.map((x) => ({ host: x.name, seconds: x.seconds })),
      seconds: (Date.now() - started) / 1000,
    };
  },
});

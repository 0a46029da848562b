// `fs.snapshot`: take a copy of PGDATA (and its tablespaces) while the backup is open. The
// low-level API makes any copy method valid; providers differ in speed, not in correctness.

import { dirname } from 'node:path';
import { Type } from '@sinclair/typebox';
import { openPg } from '../../connections/pg.js';
import { checkPairing, pairingLines, serverIdentity } from '../../connections/pg-identity.js';
import { StepFailure } from '../../errors.js';
import { quote } from '../../util/shell.js';
import { defineStep, type Operation } from '../define.js';
import { run } from '../remote-files.js';

const Params = Type.Object(
  {
    provider: Type.Union([Type.Literal('copy'), Type.Literal('btrfs')], { description: 'copy or btrfs' }),
    to: Type.String({
      pattern: '^/',
      description: 'copy: the backup directory (data goes to TO/data); btrfs: the snapshot path',
    }),
    source: Type.Optional(
      Type.String({ pattern: '^/', description: "PGDATA (default: the server's data_directory)" }),
    ),
    keep: Type.Optional(
      Type.Boolean({ description: 'keep what was taken even if the run fails (default false)' }),
    ),
  },
  { additionalProperties: false },
);

const Tablespace = Type.Object({ oid: Type.String(), source: Type.String(), path: Type.String() });

const Outputs = Type.Object({
  provider: Type.String(),
  id: Type.String({ description: 'what identifies the snapshot (its path)' }),
  data: Type.String({ description: 'where the copy of PGDATA is' }),
  source: Type.String(),
  tablespaces: Type.Array(Tablespace),
  seconds: Type.Number(),
  tool: Type.String({ description: 'what copied: rsync, tar (where rsync is not installed) or btrfs' }),
});

// What pg_basebackup leaves out too: runtime state and WAL (the archive provides the WAL).
const EXCLUDES = [
  'postmaster.pid',
  'postmaster.opts',
  'pg_wal/*',
  'pg_replslot/*',
  'pg_stat_tmp/*',
  'pgsql_tmp*',
  'backup_label',
  'tablespace_map',
];

/**
 * Copied on its own, after everything else (data and tablespaces), as pg_basebackup does: a
 * backup taken from a standby has no end-of-backup WAL record, and it is the control file copied
 * last whose minimum recovery point makes the restored copy replay far enough to be consistent.
 */
const CONTROL_FILE = 'global/pg_control';

function copyScript(source: string, to: string): string {
  const ex = EXCLUDES.map((e) => `--exclude=${quote(e)}`).join(' ');
  // rsync where it is installed; GNU tar (in every base system) where it is not, so that a bare
  // machine can take a backup. rsync exit 24 and tar exit 1 mean files changed or vanished during
  // the copy: normal for a live cluster under the backup API, which WAL replay makes consistent.
  // tar's status is kept in a file: in a pipeline, sh reports only the extracting side's.
  // `from` and `dest` are shell words, quoted already (a tablespace's are variables).
  // The data directory's copy leaves the control file out (anchored: rsync's leading /, tar's ./).
  const copy = (from: string, dest: string, data = false) =>
    [
      'if command -v rsync >/dev/null 2>&1; then',
      '  echo "copy-tool rsync"',
      `  rsync -a ${ex}${data ? ` --exclude=${quote(`/${CONTROL_FILE}`)}` : ''} ${from}/ ${dest}/ || [ $? -eq 24 ]`,
      'else',
      '  echo "copy-tool tar"',
      `  { st=0; tar -C ${from} ${ex}${data ? ` --anchored --exclude=${quote(`./${CONTROL_FILE}`)} --no-anchored` : ''} -cf - . || st=$?; echo "$st" > ${dest}/.pgrunbook-tar-status; } | tar -C ${dest} -xpf -`,
      `  st=$(cat ${dest}/.pgrunbook-tar-status); rm -f ${dest}/.pgrunbook-tar-status; [ "$st" -le 1 ]`,
      'fi',
    ].join('\n');
  const tablespace = `${quote(`${to}/tablespaces`)}/"$oid"`;
  return [
    'set -e',
    `mkdir -p -m 700 ${quote(`${to}/data`)}`,
    copy(quote(source), quote(`${to}/data`), true),
    `mkdir -p ${quote(`${to}/data/pg_wal/archive_status`)}`,
    // Tablespaces are symlinks in pg_tblspc: copy what they point at, report where.
    `for l in ${quote(source)}/pg_tblspc/*; do [ -L "$l" ] || continue; oid=$(basename "$l"); target=$(readlink -f "$l")`,
    `mkdir -p -m 700 ${tablespace}`,
    copy('"$target"', tablespace),
    'echo "tablespace $oid $target"; done',
    // A source without one is not a data directory the server wrote (a test tree): nothing to order.
    `if [ -f ${quote(`${source}/${CONTROL_FILE}`)} ]; then`,
    `mkdir -p -m 700 ${quote(`${to}/data/global`)}`,
    `cp -p ${quote(`${source}/${CONTROL_FILE}`)} ${quote(`${to}/data/${CONTROL_FILE}`)}`,
    `echo "copied last: ${CONTROL_FILE}"; fi`,
    // The copy (data and tablespaces) is durable before the backup is declared complete.
    `sync -f ${quote(`${to}/data`)}`,
  ].join('\n');
}

function btrfsScript(source: string, to: string): string {
  return [
    'set -e',
    `btrfs subvolume snapshot -r ${quote(source)} ${quote(to)} >/dev/null`,
    `for l in ${quote(source)}/pg_tblspc/*; do [ -L "$l" ] || continue; echo "tablespace-unsupported $(basename "$l")"; done`,
  ].join('\n');
}

/** The paths a snapshot creates: its artifacts, removed by the undo or after a partial copy. */
function madePaths(provider: string, to: string): string[] {
  return provider === 'btrfs' ? [to] : [`${to}/data`, `${to}/tablespaces`];
}

/** Fails (exit 17) when one of the paths exists: a snapshot never mixes with what was there. */
function refuseExisting(paths: string[]): string {
  return paths
    .map(
      (p) =>
        `if [ -e ${quote(p)} ] || [ -L ${quote(p)} ]; then echo "${p} already exists: refusing to copy into it (a snapshot never mixes with what was there)" >&2; exit 17; fi`,
    )
    .join('\n');
}

// Idempotent (a partial copy may lack tablespaces/), and fails if a path is still there.
function removeScript(provider: string, to: string): string {
  const check = madePaths(provider, to)
    .map((p) => `if [ -e ${quote(p)} ]; then echo "${p} is still there" >&2; exit 1; fi`)
    .join('\n');
  return provider === 'btrfs'
    ? `if [ -e ${quote(to)} ]; then btrfs subvolume delete ${quote(to)} >/dev/null; fi\n${check}`
    : `rm -rf -- ${quote(`${to}/data`)} ${quote(`${to}/tablespaces`)}\n${check}`;
}

export default defineStep({
  type: 'fs.snapshot',
  summary:
    'Snapshot PGDATA during a backup: copy (rsync, or tar where rsync is not installed, of data and tablespaces; global/pg_control last) or btrfs (read-only subvolume snapshot).',
  params: Params,
  outputs: Outputs,
  mutating: true,
  marksChanges: true,
  undoSummary:
    'removes what it took, unless keep: true or a backup.write_labels completed the backup over it (then it is kept whatever fails later): an aborted backup leaves nothing behind',
  // No binary: the copy uses rsync or, without it, GNU tar (in every base system); btrfs is the
  // provider's own prerequisite. A copy needs room for the databases; a btrfs snapshot shares its
  // blocks, and is created beside its path.
  // A source given is checked to be the data directory of the server the pg: settings reach
  // (whose backup the labels will be): the labels describe no other.
  needs: (_ctx, p) => ({
    writable: [
      p.provider === 'btrfs'
        ? { path: dirname(p.to), param: 'to' }
        : { path: p.to, room: 'databases' as const, param: 'to' },
    ],
    ...(p.source ? { pairing: [{ dir: p.source, param: 'source' }] } : {}),
  }),
  async preview(ctx, p) {
    // The pairing the run will check when the labels are kept: what is copied, whose it is.
    if (!ctx.host.pg) return { summary: `copies ${p.source ?? '(no source, no pg: settings)'}`, lines: [] };
    const s = await openPg(ctx.host.name, ctx.host.pg, 'pgrunbook-preview');
    try {
      await s.query('set default_transaction_read_only = on');
      const id = await serverIdentity(s);
      const dir = p.source ?? id.data_directory;
      const what = p.source ? 'will copy its source' : "will copy the server's data_directory";
      const pairing = await checkPairing(
        await ctx.transport(),
        id,
        [{ what, dir, control: `${dir}/global/pg_control` }],
        { become: ctx.host.become, signal: ctx.signal },
      );
      return {
        summary: pairing.problems.length
          ? `copies another server's directory than the labels': ${pairing.problems.join('; ')}`
          : `copies ${dir}, the data directory of server ${id.system_identifier} (the labels' server)`,
        lines: pairingLines(id, pairing),
      };
    } finally {
      await s.close();
    }
  },
  plan(ctx, p) {
    const source = p.source ?? '$PGDATA (data_directory, learned when run)';
    const ops: Operation[] = [
      { kind: 'command', line: refuseExisting(madePaths(p.provider, p.to)) },
      {
        kind: 'command',
        line: p.provider === 'btrfs' ? btrfsScript(source, p.to) : copyScript(source, p.to),
      },
    ];
    void ctx;
    return {
      action: `${p.provider === 'btrfs' ? 'read-only btrfs snapshot' : 'copy'} of ${source} to ${p.to}`,
      ops,
      undo: p.keep
        ? { action: 'none: keep: true', ops: [] }
        : {
            // Until the labels are written the copy is not a backup; after that the runner keeps it.
            action: 'remove the snapshot (unless backup.write_labels completed the backup: then kept)',
            ops: [{ kind: 'command', line: removeScript(p.provider, p.to) }],
          },
    };
  },
  async apply(ctx, p) {
    const t = await ctx.transport();
    let source = p.source;
    if (!source) {
      const pg = await ctx.pg();
      source = String((await pg.query("select current_setting('data_directory') as d")).rows[0]!.d);
    }
    // Checked, then named before the first byte is written: a failure or a kill -9 mid-copy
    // leaves a partial copy that the runner (or resume) removes and the summary lists. The copy is
    // the step's only change: no ctx.changing() (see ApplyContext.artifact).
    const made = madePaths(p.provider, p.to);
    await run(t, refuseExisting(made), `checking ${made.join(', ')}`, {
      become: ctx.host.become,
      signal: ctx.signal,
    });
    ctx.artifact({ paths: made, remove: removeScript(p.provider, p.to) });
    const started = Date.now();
    const out = await run(
      t,
      p.provider === 'btrfs' ? btrfsScript(source, p.to) : copyScript(source, p.to),
      `${p.provider} snapshot of ${source}`,
      {
        become: ctx.host.become,
        signal: ctx.signal,
      },
    );
    if (/^tablespace-unsupported /m.test(out)) {
      throw new StepFailure(
        'the btrfs provider snapshots one subvolume; this cluster has tablespaces elsewhere: use provider copy',
      );
    }
    const tablespaces = [...out.matchAll(/^tablespace (\S+) (.*)$/gm)].map((m) => ({
      oid: m[1]!,
      source: m[2]!,
      path: `${p.to}/tablespaces/${m[1]}`,
    }));
    const data = p.provider === 'btrfs' ? p.to : `${p.to}/data`;
    const tool = p.provider === 'btrfs' ? 'btrfs' : out.includes('copy-tool tar') ? 'tar' : 'rsync';
    if (p.provider === 'copy')
      ctx.log(
        out.includes(`copied last: ${CONTROL_FILE}`)
          ? `${CONTROL_FILE} copied last, after the data directory and ${tablespaces.length} tablespace(s)`
          : `no ${CONTROL_FILE} in ${source}: not a data directory a server wrote`,
      );
    ctx.log(
      `${p.provider} snapshot of ${source} at ${data} in ${((Date.now() - started) / 1000).toFixed(2)}s (${tool})`,
    );
    return {
      provider: p.provider,
      id: p.to,
      data,
      source,
      tablespaces,
      seconds: (Date.now() - started) / 1000,
      tool,
    };
  },
  async undo(ctx, p) {
    if (p.keep) return;
    const t = await ctx.transport();
    await run(t, removeScript(p.provider, p.to), `removing the snapshot ${p.to}`, {
      become: ctx.host.become,
      signal: ctx.signal,
    });
  },
});

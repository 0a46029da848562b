// `pg.controldata`: what pg_control says about a data directory — read with pg_controldata over
// the host's transport, so it works on a stopped cluster too. Upgrades compare these facts between
// nodes (checksums, WAL segment size, block size, the latest checkpoint) before pg_upgrade.
import { Type } from '@sinclair/typebox';
import { commandLine } from '../../connections/transport.js';
import { StepFailure } from '../../errors.js';
import { quote } from '../../util/shell.js';
import { defineStep, type PlanContext } from '../define.js';
import { knownBinDir, pgBinary } from './binaries.js';

const Params = Type.Object(
  {
    data_dir: Type.Optional(
      Type.String({ pattern: '^/', description: 'the data directory (default: host var pgdata)' }),
    ),
    bin_dir: Type.Optional(
      Type.String({
        pattern: '^/',
        description:
          "where pg_controldata is (default: host var pg_bin_dir, else Debian's /usr/lib/postgresql/MAJOR/bin from PG_VERSION)",
      }),
    ),
  },
  { additionalProperties: false },
);

const Outputs = Type.Object({
  pg_version: Type.String({ description: 'the major version, from PG_VERSION' }),
  system_identifier: Type.String(),
  cluster_state: Type.String({ description: 'e.g. "in production", "shut down", "shut down in recovery"' }),
  checkpoint_lsn: Type.String({ description: 'Latest checkpoint location' }),
  redo_lsn: Type.String(),
  timeline: Type.Integer(),
  checksums: Type.Boolean({ description: 'data page checksums on' }),
  block_size: Type.Integer(),
  wal_segment_size: Type.Integer({ description: 'bytes' }),
  catalog_version: Type.String(),
  fields: Type.Record(Type.String(), Type.String(), { description: 'every line pg_controldata printed' }),
});

type Out = typeof Outputs.static;

/** Parses pg_controldata's `Name:   value` lines (LC_ALL=C, so the names are English). */
export function parseControldata(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const i = line.indexOf(':');
    if (i <= 0) continue;
    out[line.slice(0, i).trim()] = line.slice(i + 1).trim();
  }
  return out;
}

/** The facts an upgrade compares, from the parsed fields; throws naming a missing one. */
export function controlFacts(f: Record<string, string>, pgVersion: string): Omit<Out, 'fields'> {
  const need = (k: string) => {
    const v = f[k];
    if (v === undefined) throw new StepFailure(`pg_controldata printed no "${k}" line`);
    return v;
  };
  return {
    pg_version: pgVersion,
    system_identifier: need('Database system identifier'),
    cluster_state: need('Database cluster state'),
    checkpoint_lsn: need('Latest checkpoint location'),
    redo_lsn: need("Latest checkpoint's REDO location"),
    timeline: Number(need("Latest checkpoint's TimeLineID")),
    checksums: Number(need('Data page checksum version')) > 0,
    block_size: Number(need('Database block size')),
    wal_segment_size: Number(need('Bytes per WAL segment')),
    catalog_version: need('Catalog version number'),
  };
}

const dataDirOf = (ctx: PlanContext, p: { data_dir?: string }): string => {
  const d = p.data_dir ?? ctx.host.vars.pgdata;
  if (typeof d !== 'string' || !d.startsWith('/'))
    throw new StepFailure(
      `pg.controldata: data_dir not given and host var pgdata not set for ${ctx.host.name}`,
    );
  return d;
};

/** One script: the major version, then pg_controldata in the C locale from the right bin dir. */
function script(ctx: PlanContext, p: { data_dir?: string; bin_dir?: string }): string {
  const data = dataDirOf(ctx, p);
  const bin =
    p.bin_dir ?? (typeof ctx.host.vars.pg_bin_dir === 'string' ? ctx.host.vars.pg_bin_dir : undefined);
  const tool = bin ? quote(`${bin}/pg_controldata`) : '"/usr/lib/postgresql/$v/bin/pg_controldata"';
  return commandLine(
    {
      script: [
        `v=$(cat ${quote(`${data}/PG_VERSION`)}) || exit 1`,
        'echo "PG_VERSION: $v"',
        `LC_ALL=C ${tool} -D ${quote(data)}`,
      ].join('\n'),
    },
    ctx.host.become,
  );
}

export default defineStep({
  type: 'pg.controldata',
  summary:
    "Read a data directory's pg_control (pg_controldata): checksums, WAL segment size, latest checkpoint, state.",
  params: Params,
  outputs: Outputs,
  mutating: false,
  undoSummary: 'none (reads only)',
  needs(ctx, p) {
    // Without bin_dir or pg_bin_dir, the directory follows the data directory's PG_VERSION.
    const bin = knownBinDir(p, ctx.host.vars);
    return bin ? { binaries: [pgBinary(bin.dir, 'pg_controldata', bin.param)] } : {};
  },
  plan(ctx, p) {
    return { action: 'read pg_control', ops: [{ kind: 'command', line: script(ctx, p) }] };
  },
  async apply(ctx, p) {
    const t = await ctx.transport();
    const r = await t.exec(script(ctx, p), { signal: ctx.signal });
    if (r.exitCode !== 0)
      throw new StepFailure(
        `pg_controldata failed (exit ${r.exitCode}): ${(r.stderr || r.stdout).trim().slice(-500)}`,
      );
    const fields = parseControldata(r.stdout);
    const facts = controlFacts(fields, fields.PG_VERSION ?? '');
    delete fields.PG_VERSION;
    ctx.log(
      `PostgreSQL ${facts.pg_version}, ${facts.cluster_state}, checkpoint ${facts.checkpoint_lsn} on timeline ${facts.timeline}, checksums ${facts.checksums ? 'on' : 'off'}`,
    );
    return { ...facts, fields };
  },
});

// `gcp.backup_snapshots`: the first step of a GCP restore — read a backup's manifest (checked like
// every restore reads it) and name the persistent-disk snapshots it took, with the one of the disk
// that holds PGDATA. A backup without a GCP snapshot is refused here, before anything is created.
import { Type } from '@sinclair/typebox';
import { StepFailure } from '../../errors.js';
import { quote } from '../../util/shell.js';
import { readCheckedManifest } from '../backup/manifest.js';
import { defineStep } from '../define.js';
import { becomeTransport } from '../remote-files.js';
import { gcpOf } from './common.js';

const Params = Type.Object(
  {
    from: Type.String({
      pattern: '^/',
      description: 'the backup directory (manifest.json, backup_label, …)',
    }),
    pgdata_disk: Type.Optional(
      Type.String({
        description:
          'the source disk holding PGDATA when the backup has several and the inventory marked none pgdata: true ("" : not given)',
      }),
    ),
  },
  { additionalProperties: false },
);

const Snapshot = Type.Object({
  name: Type.String({ description: 'the snapshot' }),
  disk: Type.String({ description: 'the disk it was taken of' }),
  zone: Type.Union([Type.String(), Type.Null()]),
  region: Type.Union([Type.String(), Type.Null()]),
  device_name: Type.Union([Type.String(), Type.Null()]),
  pgdata: Type.Union([Type.Boolean(), Type.Null()]),
});

const Outputs = Type.Object({
  backup_id: Type.String(),
  status: Type.String({ description: "the manifest's status: complete or verify_failed" }),
  project: Type.String(),
  snapshots: Type.Array(Snapshot, { description: 'every GCP snapshot the backup took' }),
  pgdata: Snapshot,
});

type Snap = typeof Snapshot.static;

interface GcpEntry {
  provider?: string;
  project?: string;
  snapshots?: {
    name?: string;
    disk?: string;
    zone?: string | null;
    region?: string | null;
    device_name?: string | null;
    pgdata?: boolean | null;
  }[];
}

/** The snapshot of the disk that holds PGDATA: named, marked, or the only one. */
function pgdataOf(snaps: Snap[], named: string | undefined, from: string): Snap {
  const names = snaps.map((s) => `${s.name} (disk ${s.disk})`).join(', ');
  if (named) {
    const s = snaps.find((x) => x.disk === named);
    if (!s)
      throw new StepFailure(
        `pgdata_disk: the backup in ${from} has no snapshot of disk ${named}; it has ${names}`,
      );
    return s;
  }
  const marked = snaps.filter((x) => x.pgdata === true);
  if (marked.length === 1) return marked[0]!;
  if (snaps.length === 1) return snaps[0]!;
  throw new StepFailure(
    `the backup in ${from} has ${snaps.length} disk snapshots (${names}) and ${marked.length ? 'several are' : 'none is'} marked pgdata: say which disk held PGDATA with pgdata_disk (gcp-restore-verify.yml: -e gcp_restore_pgdata_disk=DISK)`,
  );
}

export default defineStep({
  type: 'gcp.backup_snapshots',
  summary:
    "Read a backup's manifest (complete or verify_failed, labels' sha256 checked) and name its GCP disk snapshots and the one holding PGDATA; refuses a backup without any.",
  params: Params,
  outputs: Outputs,
  mutating: false,
  undoSummary: 'none: it only reads',
  plan(ctx, p) {
    const s = gcpOf(ctx);
    return {
      action: `read the GCP snapshots of the backup in ${p.from}`,
      ops: [
        { kind: 'command', line: `cat ${quote(`${p.from}/manifest.json`)}` },
        {
          kind: 'note',
          text: `check backup_label (and tablespace_map) against the manifest's sha256; refuse a backup with no gcp snapshot, or one of another project than ${s.project}`,
        },
      ],
    };
  },
  async apply(ctx, p) {
    const s = gcpOf(ctx);
    const m = await readCheckedManifest(await becomeTransport(ctx), p.from, ctx.signal, { unproven: true });
    const entries = ((m.snapshots ?? []) as GcpEntry[]).filter((e) => e.provider === 'gcp');
    const providers = [...new Set((m.snapshots ?? []).map((e) => e.provider ?? 'unknown'))];
    if (entries.length === 0 || entries.every((e) => !e.snapshots?.length))
      throw new StepFailure(
        `the backup in ${p.from} has no GCP disk snapshot (its manifest names ${providers.length ? `only ${providers.join(', ')} snapshots` : 'no snapshot'}): nothing to make a disk from; prove it with playbooks/restore-verify.yml instead`,
      );
    const other = entries.find((e) => e.project && e.project !== s.project);
    if (other)
      throw new StepFailure(
        `the backup's snapshots are in project ${other.project}, this host's gcp settings say ${s.project}: disks are made in the snapshots' project`,
      );
    const snapshots: Snap[] = entries.flatMap((e) =>
      (e.snapshots ?? []).map((x) => ({
        name: String(x.name),
        disk: String(x.disk),
        zone: x.zone ?? null,
        region: x.region ?? null,
        device_name: x.device_name ?? null,
        pgdata: x.pgdata ?? null,
      })),
    );
    const pgdata = pgdataOf(snapshots, p.pgdata_disk || undefined, p.from);
    ctx.log(
      `backup ${m.backup_id} (${m.status}): ${snapshots.map((x) => x.name).join(', ')}; PGDATA is on ${pgdata.disk}, snapshot ${pgdata.name}`,
    );
    return { backup_id: m.backup_id, status: m.status, project: s.project, snapshots, pgdata };
  },
});

// `gcp.snapshot`: persistent-disk snapshots of the host's data disks, taken while the low-level
// backup is open (the GCP provider beside fs.snapshot's copy and btrfs). Deterministic names per
// backup and disk, a requestId per create, a DONE operation checked for its error, then the
// snapshot polled to READY. Undo deletes what this run created, unless keep.
import { Type } from '@sinclair/typebox';
import type { GcpDiskRef } from '../../connections/gcp-settings.js';
import { StepFailure } from '../../errors.js';
import { done, notYet, poll } from '../../util/poll.js';
import { type ApplyContext, defineStep, type Operation } from '../define.js';
import {
  computeOf,
  diskRefOf,
  diskUrl,
  gcpModule,
  gcpOf,
  instanceUrl,
  labelsOf,
  labelValue,
  opWait,
  resourceName,
  runIdOf,
  snapshotUrl,
} from './common.js';

const Params = Type.Object(
  {
    backup_id: Type.String({
      minLength: 1,
      description: 'names and labels the snapshots (e.g. "{{ backup_id }}")',
    }),
    labels: Type.Optional(
      Type.Record(Type.String(), Type.Unknown(), {
        description: 'more labels; keys and values are lowercased and fitted to GCE label rules',
      }),
    ),
    name_prefix: Type.Optional(
      Type.String({ minLength: 1, description: 'snapshot name prefix (default pgrb)' }),
    ),
    guest_flush: Type.Optional(
      Type.Boolean({
        description: 'ask the guest agent to flush file systems first (zonal disks; default false)',
      }),
    ),
    storage_location: Type.Optional(
      Type.String({
        minLength: 1,
        description: 'multi-region or region to store the snapshots in, e.g. "eu"',
      }),
    ),
    sequential: Type.Optional(
      Type.Boolean({ description: 'one disk after another instead of all at once (default false)' }),
    ),
    keep: Type.Optional(
      Type.Boolean({ description: 'keep the snapshots when the run fails (default false)' }),
    ),
    timeout: Type.Optional(
      Type.Number({ minimum: 1, description: 'seconds per disk until the snapshot is READY (default 1800)' }),
    ),
  },
  { additionalProperties: false },
);

const Taken = Type.Object({
  name: Type.String(),
  disk: Type.String(),
  zone: Type.Union([Type.String(), Type.Null()]),
  region: Type.Union([Type.String(), Type.Null()]),
  device_name: Type.Union([Type.String(), Type.Null()]),
  pgdata: Type.Union([Type.Boolean(), Type.Null()], { description: 'holds PGDATA (null: not known)' }),
  self_link: Type.String(),
  status: Type.String(),
  storage_bytes: Type.Union([Type.String(), Type.Null()]),
  created_by_run: Type.Boolean({
    description: 'made by this run (or an earlier attempt of it): its undo deletes it',
  }),
});

const Outputs = Type.Object({
  provider: Type.Literal('gcp'),
  id: Type.String({ description: 'the snapshot names, comma-separated' }),
  project: Type.String(),
  snapshots: Type.Array(Taken),
  seconds: Type.Number(),
});

type Out = typeof Outputs.static;
type P = typeof Params.static;

/** Label keys pgrunbook sets; the rest come from `labels`. */
const RUN_LABEL = 'pgrb-run';

export default defineStep({
  type: 'gcp.snapshot',
  summary:
    "Snapshot the host's persistent disks (named in the inventory, or every non-boot disk of the instance) through the Compute API, and wait until READY.",
  params: Params,
  outputs: Outputs,
  mutating: true,
  marksChanges: true,
  undoSummary:
    'delete the snapshots this run created, unless keep: true or a backup.write_labels completed the backup over them (then they are kept whatever fails later)',
  plan(ctx, p) {
    const s = gcpOf(ctx);
    const ops: Operation[] = [];
    const disks = s.disks;
    const timeout = p.timeout ?? 1800;
    if (!disks)
      ops.push(
        { kind: 'http', method: 'GET', url: instanceUrl(s) },
        { kind: 'note', text: 'disks: every non-boot disk attached to the instance (known after apply)' },
      );
    const list: (GcpDiskRef | undefined)[] = disks ?? [undefined];
    // A backup id known only when run (it holds the run id) is shown as a placeholder.
    const later = ctx.unknown.has('backup_id') || p.backup_id.includes('(known after apply)');
    const prefix = p.name_prefix ?? 'pgrb';
    for (const d of list) {
      const name = later
        ? `${resourceName(prefix)}-{backup_id}-${d ? resourceName(d.name) : '{disk}'}`
        : d
          ? resourceName(prefix, p.backup_id, d.name)
          : `${resourceName(prefix, p.backup_id)}-{disk}`;
      const url = d ? diskUrl(s, d) : `${diskUrl(s, { name: '{disk}' })}`;
      ops.push(
        { kind: 'http', method: 'GET', url: snapshotUrl(s, name), body: undefined },
        {
          kind: 'http',
          method: 'POST',
          url: `${url}/createSnapshot?requestId={uuid}${p.guest_flush && !d?.region ? '&guestFlush=true' : ''}`,
          body: {
            name,
            labels: later ? { ...labelsFor(ctx, p), 'pgrb-backup': '{backup_id}' } : labelsFor(ctx, p),
            ...(p.storage_location ? { storageLocations: [p.storage_location] } : {}),
          },
        },
        opWait(name, timeout),
        { kind: 'wait', what: `GET ${snapshotUrl(s, name)} reports status READY`, timeoutSeconds: timeout },
      );
    }
    if (disks && disks.length > 1)
      ops.push({ kind: 'note', text: p.sequential ? 'one disk after another' : 'all disks at once' });
    return {
      action: `snapshot ${disks ? disks.map((d) => d.name).join(', ') : "the instance's data disks"} (Compute API, project ${s.project})`,
      ops,
      undo: p.keep
        ? { action: 'none: keep: true (the snapshots stay if the run fails)', ops: [] }
        : {
            action:
              'delete the snapshots this run created (unless backup.write_labels completed the backup: then kept)',
            ops: [{ kind: 'http', method: 'DELETE', url: snapshotUrl(s, '{each snapshot}') }],
          },
    };
  },
  async apply(ctx, p) {
    const started = Date.now();
    const s = gcpOf(ctx);
    const disks = s.disks ?? (await discover(ctx));
    if (disks.length === 0) throw new StepFailure(`instance ${s.instance} has no data disk to snapshot`);
    ctx.log(`disks: ${disks.map((d) => `${d.name}${d.deviceName ? ` (${d.deviceName})` : ''}`).join(', ')}`);
    ctx.changing();
    // Every disk's outcome is awaited: a failed sibling must not leave others running unobserved,
    // and what was taken is deleted again (the step fails, so no undo will be pushed for it).
    const settled = p.sequential
      ? await (async () => {
          const out: PromiseSettledResult<Out['snapshots'][number]>[] = [];
          for (const d of disks) {
            const r = await snapshotOne(ctx, p, d).then(
              (value) => ({ status: 'fulfilled' as const, value }),
              (reason: unknown) => ({ status: 'rejected' as const, reason }),
            );
            out.push(r);
            if (r.status === 'rejected') break;
          }
          return out;
        })()
      : await Promise.allSettled(disks.map((d) => snapshotOne(ctx, p, d)));
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    const taken = settled.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    if (failed) {
      await removeOwn(ctx, taken);
      throw failed.reason;
    }
    return {
      provider: 'gcp' as const,
      id: taken.map((t) => t.name).join(','),
      project: s.project,
      snapshots: taken,
      seconds: Math.round((Date.now() - started) / 100) / 10,
    };
  },
  async undo(ctx, p, out) {
    if (p.keep) return;
    const { newRequestId } = await gcpModule();
    const compute = await computeOf(ctx);
    await Promise.all(
      out.snapshots
        .filter((t) => t.created_by_run)
        .map(async (t) => {
          const op = await compute.deleteSnapshot(t.name, newRequestId(), ctx.signal);
          if (op)
            await compute.waitDone(op, { timeoutMs: 600_000, signal: ctx.signal, what: `delete ${t.name}` });
          ctx.log(`snapshot ${t.name} deleted`);
        }),
    );
  },
  undoPlan(ctx, _p, out: Out) {
    const s = gcpOf(ctx);
    const mine = out.snapshots.filter((t) => t.created_by_run);
    return {
      action: mine.length
        ? `delete ${mine.map((t) => t.name).join(', ')}`
        : 'none: no snapshot was created by this run',
      ops: mine.map((t) => ({ kind: 'http' as const, method: 'DELETE', url: snapshotUrl(s, t.name) })),
    };
  },
});

function labelsFor(ctx: Parameters<typeof runIdOf>[0], p: P): Record<string, string> {
  const runId = runIdOf(ctx);
  return labelsOf({
    ...(p.labels ?? {}),
    // A plan has no run id yet; it shows where it goes.
    [RUN_LABEL]: runId.startsWith('(') ? '{run-id}' : runId,
    'pgrb-backup': p.backup_id,
    'pgrb-host': ctx.host.name,
  });
}

/** Every non-boot disk of the instance, from instances.get. */
async function discover(ctx: ApplyContext): Promise<GcpDiskRef[]> {
  const s = gcpOf(ctx);
  const compute = await computeOf(ctx);
  const inst = await compute.getInstance(ctx.signal);
  return (inst.disks ?? [])
    .filter((a) => !a.boot && a.source)
    .map((a) => ({ ...diskRefOf(a.source!, s.zone), deviceName: a.deviceName ?? undefined }));
}

async function snapshotOne(ctx: ApplyContext, p: P, d: GcpDiskRef): Promise<Out['snapshots'][number]> {
  const { newRequestId, GceError } = await gcpModule();
  const compute = await computeOf(ctx);
  const name = resourceName(p.name_prefix ?? 'pgrb', p.backup_id, d.name);
  const timeoutMs = (p.timeout ?? 1800) * 1000;
  const runId = runIdOf(ctx);
  // A re-run (resume) of the same backup finds its snapshot instead of making a second one.
  const snap = await compute.findSnapshot(name, ctx.signal);
  let created = false;
  if (snap) {
    const owner = snap.labels?.[RUN_LABEL];
    // Names are global to the project and slugs can collide: adopt only this disk's, this host's.
    const fromDisk = String(snap.sourceDisk ?? '').endsWith(compute.diskPath(d));
    if (
      owner === labelValue(runId) &&
      (!fromDisk || snap.labels?.['pgrb-host'] !== labelValue(ctx.host.name))
    )
      throw new StepFailure(
        `snapshot ${name} exists from this run but of another disk or host (${snap.sourceDisk}): names collide; set a distinct backup_id per host`,
      );
    if (owner !== labelValue(runId))
      throw new StepFailure(
        `a snapshot named ${name} already exists${owner ? ` (made by run ${owner})` : ''}: choose another backup_id or delete it`,
      );
    ctx.log(
      `snapshot ${name} of ${d.name} already exists from this run (${snap.status}): not creating another`,
    );
    // Still this run's own: its undo deletes it like one made just now.
    created = true;
  } else {
    await compute.getDisk(d, ctx.signal);
    const requestId = newRequestId();
    ctx.log(`creating snapshot ${name} of ${compute.diskPath(d)} (requestId ${requestId})`);
    const op = await compute.createSnapshot(
      d,
      {
        name,
        labels: labelsFor(ctx, p),
        description: `pgrunbook backup ${p.backup_id} of ${ctx.host.name}`,
        ...(p.storage_location ? { storageLocations: [p.storage_location] } : {}),
      },
      { guestFlush: p.guest_flush, requestId, signal: ctx.signal },
    );
    created = true;
    try {
      await compute.waitDone(op, {
        timeoutMs,
        signal: ctx.signal,
        what: `snapshot ${name} of disk ${d.name}`,
        onProgress: (o) =>
          ctx.log(`snapshot ${name}: operation ${o.name} ${o.status}${o.progress ? ` ${o.progress}%` : ''}`),
      });
    } catch (err) {
      if (err instanceof GceError)
        throw new StepFailure(`snapshot ${name} of disk ${d.name} failed: ${err.message}`);
      // Still running in GCE: deleting now would race it. Say what may be left behind.
      throw new StepFailure(
        `${(err as Error).message}; the operation may still create ${name}: \`pgrunbook resume\` adopts it, else delete it by hand`,
      );
    }
  }
  try {
    return await untilReady(ctx, p, d, name, created);
  } catch (err) {
    if (created) await removeOwn(ctx, [{ name }]);
    throw err;
  }
}

/** Best-effort delete of snapshots this step made before it failed; never throws. */
async function removeOwn(ctx: ApplyContext, snaps: { name: string }[]): Promise<void> {
  const { newRequestId } = await gcpModule();
  const compute = await computeOf(ctx);
  for (const t of snaps) {
    try {
      // Without the step's signal: after Ctrl-C the clean-up still has to happen.
      const op = await compute.deleteSnapshot(t.name, newRequestId());
      if (op) await compute.waitDone(op, { timeoutMs: 600_000, what: `delete ${t.name}` });
      ctx.log(`snapshot ${t.name} deleted (the step failed)`);
    } catch (err) {
      ctx.log(`snapshot ${t.name} could NOT be deleted: ${(err as Error).message}; delete it by hand`);
    }
  }
}

async function untilReady(
  ctx: ApplyContext,
  p: P,
  d: GcpDiskRef,
  name: string,
  created: boolean,
): Promise<Out['snapshots'][number]> {
  const compute = await computeOf(ctx);
  const s = gcpOf(ctx);
  // DONE is not READY: the upload can still be going on.
  let last = '';
  const snap = await poll(
    async () => {
      const found = await compute.findSnapshot(name, ctx.signal);
      const status = found?.status ?? 'MISSING';
      if (status !== last) ctx.log(`snapshot ${name}: ${status}`);
      last = status;
      if (status === 'READY') return done(found!);
      if (status === 'FAILED' || status === 'MISSING' || status === 'DELETING')
        throw new StepFailure(`snapshot ${name} of disk ${d.name} ended ${status}`);
      return notYet();
    },
    {
      timeoutMs: (p.timeout ?? 1800) * 1000,
      intervalMs: 1000,
      signal: ctx.signal,
      onTimeout: () =>
        new StepFailure(
          `snapshot ${name} of disk ${d.name} not READY within ${p.timeout ?? 1800}s (status ${last})`,
        ),
    },
  );
  return {
    name,
    disk: d.name,
    zone: d.region ? null : (d.zone ?? s.zone ?? null),
    region: d.region ?? null,
    device_name: d.deviceName ?? null,
    pgdata: d.pgdata ?? null,
    self_link: snap.selfLink ?? '',
    status: 'READY',
    storage_bytes: snap.storageBytes != null ? String(snap.storageBytes) : null,
    created_by_run: created,
  };
}

// `gcp.disk_from_snapshot`: the first step of a restore — a new persistent disk from a snapshot.
// Undo deletes the disk this run created (unless keep).
import { Type } from '@sinclair/typebox';
import { StepFailure } from '../../errors.js';
import { done, notYet, poll } from '../../util/poll.js';
import { defineStep } from '../define.js';
import {
  computeOf,
  diskUrl,
  gcpModule,
  gcpOf,
  labelsOf,
  labelValue,
  NAME_RE,
  opWait,
  runIdOf,
  snapshotUrl,
} from './common.js';

const Params = Type.Object(
  {
    snapshot: Type.String({ minLength: 1, description: 'the snapshot name' }),
    disk: Type.String({ minLength: 1, description: 'the new disk’s name' }),
    zone: Type.Optional(Type.String({ minLength: 1, description: "zonal disk (default the host's zone)" })),
    region: Type.Optional(Type.String({ minLength: 1, description: 'regional disk: its region' })),
    size_gb: Type.Optional(Type.Integer({ minimum: 1, description: 'default: the snapshot’s disk size' })),
    type: Type.Optional(
      Type.String({ minLength: 1, description: 'disk type URL, e.g. zones/Z/diskTypes/pd-ssd' }),
    ),
    labels: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
    keep: Type.Optional(Type.Boolean({ description: 'keep the disk when the run fails (default false)' })),
    timeout: Type.Optional(Type.Number({ minimum: 1, description: 'seconds until READY (default 1800)' })),
  },
  { additionalProperties: false },
);

const Outputs = Type.Object({
  name: Type.String(),
  zone: Type.Union([Type.String(), Type.Null()]),
  region: Type.Union([Type.String(), Type.Null()]),
  self_link: Type.String(),
  size_gb: Type.Union([Type.String(), Type.Null()]),
  created_by_run: Type.Boolean(),
});

const RUN_LABEL = 'pgrb-run';

export default defineStep({
  type: 'gcp.disk_from_snapshot',
  summary: 'Create a persistent disk from a snapshot (Compute API) and wait until it is READY.',
  params: Params,
  outputs: Outputs,
  mutating: true,
  marksChanges: true,
  undoSummary: 'delete the disk this run created (unless keep: true)',
  plan(ctx, p) {
    const s = gcpOf(ctx);
    const ref = { name: p.disk, zone: p.region ? undefined : (p.zone ?? s.zone), region: p.region };
    const url = diskUrl(s, ref);
    return {
      action: `create disk ${p.disk} from snapshot ${p.snapshot} (Compute API)`,
      ops: [
        { kind: 'http', method: 'GET', url: snapshotUrl(s, p.snapshot) },
        {
          kind: 'http',
          method: 'POST',
          url: `${url.slice(0, url.lastIndexOf('/'))}?requestId={uuid}`,
          body: {
            name: p.disk,
            sourceSnapshot: `projects/${s.project}/global/snapshots/${p.snapshot}`,
            ...(p.size_gb ? { sizeGb: String(p.size_gb) } : {}),
          },
        },
        opWait(`disk ${p.disk}`, p.timeout ?? 1800),
        { kind: 'wait', what: `GET ${url} reports status READY`, timeoutSeconds: p.timeout ?? 1800 },
      ],
      undo: p.keep
        ? { action: 'none: keep: true', ops: [] }
        : { action: `delete disk ${p.disk}`, ops: [{ kind: 'http', method: 'DELETE', url }] },
    };
  },
  async apply(ctx, p) {
    if (!NAME_RE.test(p.disk))
      throw new StepFailure(
        `disk: "${p.disk}" is not a valid GCE name (lowercase letters, digits, '-'; at most 63)`,
      );
    const { newRequestId, GceError } = await gcpModule();
    const s = gcpOf(ctx);
    const compute = await computeOf(ctx);
    const ref = { name: p.disk, zone: p.region ? undefined : (p.zone ?? s.zone), region: p.region };
    const snap = await compute.findSnapshot(p.snapshot, ctx.signal);
    if (!snap) throw new StepFailure(`snapshot ${p.snapshot} not found in project ${s.project}`);
    if (snap.status !== 'READY') throw new StepFailure(`snapshot ${p.snapshot} is ${snap.status}, not READY`);
    const runLabel = labelValue(runIdOf(ctx));
    let existing: Awaited<ReturnType<typeof compute.getDisk>> | undefined;
    try {
      existing = await compute.getDisk(ref, ctx.signal);
    } catch (err) {
      if (!(err instanceof GceError && err.status === 404)) throw err;
    }
    if (existing) {
      // A re-run of this restore finds its own disk; anything else of that name is not ours.
      if (
        existing.labels?.[RUN_LABEL] !== runLabel ||
        !String(existing.sourceSnapshot ?? '').endsWith(`/${p.snapshot}`)
      )
        throw new StepFailure(
          `a disk named ${p.disk} already exists (${compute.diskPath(ref)}): choose another name`,
        );
      ctx.log(`disk ${p.disk} from ${p.snapshot} already exists from this run`);
    } else {
      ctx.changing();
      const op = await compute.insertDiskFromSnapshot(
        {
          ...ref,
          sizeGb: p.size_gb,
          type: p.type,
          labels: labelsOf({ ...(p.labels ?? {}), [RUN_LABEL]: runIdOf(ctx), 'pgrb-snapshot': p.snapshot }),
        },
        p.snapshot,
        newRequestId(),
        ctx.signal,
      );
      await compute.waitDone(op, {
        timeoutMs: (p.timeout ?? 1800) * 1000,
        signal: ctx.signal,
        what: `disk ${p.disk} from ${p.snapshot}`,
        onProgress: (o) => ctx.log(`disk ${p.disk}: operation ${o.name} ${o.status}`),
      });
    }
    return poll(
      async () => {
        const d = await compute.getDisk(ref, ctx.signal);
        if (d.status === 'READY')
          return done({
            name: p.disk,
            zone: ref.zone ?? null,
            region: ref.region ?? null,
            self_link: d.selfLink ?? '',
            size_gb: d.sizeGb != null ? String(d.sizeGb) : null,
            created_by_run: true,
          });
        if (d.status === 'FAILED') throw new StepFailure(`disk ${p.disk} ended FAILED`);
        return notYet(d.status);
      },
      {
        timeoutMs: (p.timeout ?? 1800) * 1000,
        intervalMs: 1000,
        signal: ctx.signal,
        onTimeout: (status) =>
          new StepFailure(`disk ${p.disk} not READY within ${p.timeout ?? 1800}s (${status})`),
      },
    );
  },
  async undo(ctx, p, out) {
    if (p.keep || !out.created_by_run) return;
    const { newRequestId } = await gcpModule();
    const compute = await computeOf(ctx);
    const ref = { name: out.name, zone: out.zone ?? undefined, region: out.region ?? undefined };
    const op = await compute.deleteDisk(ref, newRequestId(), ctx.signal);
    if (op)
      await compute.waitDone(op, { timeoutMs: 600_000, signal: ctx.signal, what: `delete disk ${out.name}` });
  },
});

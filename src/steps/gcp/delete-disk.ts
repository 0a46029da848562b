// `gcp.delete_disk`: the end of a GCP restore — detach a disk this run made from every instance
// that holds it, then delete it. Only a disk labelled with this run's id is touched (an allowlist:
// a production disk never carries it), and a disk already gone is success, so it can run in
// `always` after a failure as well as after success, before the undo of the steps that made it.
import { Type } from '@sinclair/typebox';
import { StepFailure } from '../../errors.js';
import { defineStep } from '../define.js';
import { computeOf, diskUrl, gcpModule, gcpOf, instanceUrl, labelValue, opWait, runIdOf } from './common.js';

const Params = Type.Object(
  {
    disk: Type.String({ minLength: 1, description: 'the disk name (made by this run: label pgrb-run)' }),
    zone: Type.Optional(Type.String({ minLength: 1, description: "zonal disk (default the host's zone)" })),
    region: Type.Optional(Type.String({ minLength: 1, description: 'regional disk: its region' })),
    timeout: Type.Optional(
      Type.Number({ minimum: 1, description: 'seconds per detach and for the delete (default 300)' }),
    ),
  },
  { additionalProperties: false },
);

const Outputs = Type.Object({
  name: Type.String(),
  detached: Type.Array(Type.String(), { description: 'INSTANCE:DEVICE it was detached from' }),
  deleted: Type.Boolean({ description: 'false: there was no such disk (already deleted)' }),
});

/** The label gcp.disk_from_snapshot puts on the disks it makes. */
const RUN_LABEL = 'pgrb-run';

export default defineStep({
  type: 'gcp.delete_disk',
  summary:
    'Detach a disk this run made (label pgrb-run) from the instances holding it and delete it (Compute API); a disk already gone is success.',
  params: Params,
  outputs: Outputs,
  mutating: true,
  marksChanges: true,
  undoSummary: 'none: a deleted disk cannot come back (it was made by this run from a snapshot that remains)',
  plan(ctx, p) {
    const s = gcpOf(ctx);
    const ref = { name: p.disk, zone: p.region ? undefined : (p.zone ?? s.zone), region: p.region };
    const url = diskUrl(s, ref);
    const timeout = p.timeout ?? 300;
    return {
      action: `detach and delete disk ${p.disk} (Compute API)`,
      ops: [
        { kind: 'http', method: 'GET', url },
        {
          kind: 'note',
          text: `nothing to do if it does not exist; refuse unless its label ${RUN_LABEL} is this run's id`,
        },
        {
          kind: 'http',
          method: 'POST',
          url: `${instanceUrl(s, '{each of its users}')}/detachDisk?deviceName={its device}&requestId={uuid}`,
        },
        opWait('detachDisk', timeout),
        { kind: 'http', method: 'DELETE', url: `${url}?requestId={uuid}` },
        opWait(`delete disk ${p.disk}`, timeout),
      ],
    };
  },
  async apply(ctx, p) {
    const { newRequestId, GceError } = await gcpModule();
    const s = gcpOf(ctx);
    const compute = await computeOf(ctx);
    const ref = { name: p.disk, zone: p.region ? undefined : (p.zone ?? s.zone), region: p.region };
    const timeoutMs = (p.timeout ?? 300) * 1000;
    let disk: Awaited<ReturnType<typeof compute.getDisk>>;
    try {
      disk = await compute.getDisk(ref, ctx.signal);
    } catch (err) {
      if (err instanceof GceError && err.status === 404) {
        ctx.log(`disk ${p.disk}: not found, nothing to delete`);
        return { name: p.disk, detached: [], deleted: false };
      }
      throw err;
    }
    const run = labelValue(runIdOf(ctx));
    const owner = disk.labels?.[RUN_LABEL];
    if (owner !== run)
      throw new StepFailure(
        `disk ${p.disk} was not made by this run (its label ${RUN_LABEL} is ${owner ? `"${owner}"` : 'missing'}, this run is "${run}"): refusing to delete it`,
      );
    ctx.changing();
    const detached: string[] = [];
    for (const user of disk.users ?? []) {
      const m = /\/zones\/([^/]+)\/instances\/([^/]+)$/.exec(user);
      if (!m || m[1] !== s.zone)
        throw new StepFailure(
          `disk ${p.disk} is attached to ${user}, outside zone ${s.zone}: detach it by hand`,
        );
      const instance = m[2]!;
      const inst = await compute.getInstance(ctx.signal, instance);
      const path = compute.diskPath(ref);
      for (const a of inst.disks ?? []) {
        if (!a.deviceName || !String(a.source ?? '').endsWith(path)) continue;
        const op = await compute.detachDisk(instance, a.deviceName, newRequestId(), ctx.signal);
        await compute.waitDone(op, {
          timeoutMs,
          signal: ctx.signal,
          what: `detach ${a.deviceName} from ${instance}`,
        });
        ctx.log(`disk ${p.disk} detached from ${instance} (${a.deviceName})`);
        detached.push(`${instance}:${a.deviceName}`);
      }
    }
    const op = await compute.deleteDisk(ref, newRequestId(), ctx.signal);
    if (op) await compute.waitDone(op, { timeoutMs, signal: ctx.signal, what: `delete disk ${p.disk}` });
    ctx.log(`disk ${p.disk} deleted`);
    return { name: p.disk, detached, deleted: true };
  },
});

// `gcp.attach_disk` / `gcp.detach_disk`: the restore path's attach and the rollback's detach, each
// the other's undo.
import { Type } from '@sinclair/typebox';
import { StepFailure } from '../../errors.js';
import { defineStep } from '../define.js';
import { computeOf, diskRefOf, diskUrl, gcpModule, gcpOf, instanceUrl, opWait } from './common.js';

const AttachParams = Type.Object(
  {
    disk: Type.String({ minLength: 1, description: 'the disk name' }),
    zone: Type.Optional(Type.String({ minLength: 1, description: "zonal disk (default the host's zone)" })),
    region: Type.Optional(Type.String({ minLength: 1, description: 'regional disk: its region' })),
    device_name: Type.String({ minLength: 1, description: 'the device name (/dev/disk/by-id/google-NAME)' }),
    instance: Type.Optional(Type.String({ minLength: 1, description: "default: the host's instance" })),
    timeout: Type.Optional(Type.Number({ minimum: 1, description: 'seconds (default 300)' })),
  },
  { additionalProperties: false },
);

const AttachOutputs = Type.Object({
  instance: Type.String(),
  device_name: Type.String(),
  source: Type.String(),
});

export const attachDisk = defineStep({
  type: 'gcp.attach_disk',
  summary: 'Attach a persistent disk to an instance under a device name (Compute API).',
  params: AttachParams,
  outputs: AttachOutputs,
  mutating: true,
  marksChanges: true,
  undoSummary: 'detach it again',
  plan(ctx, p) {
    const s = gcpOf(ctx);
    const inst = instanceUrl(s, p.instance ?? s.instance);
    const ref = { name: p.disk, zone: p.region ? undefined : (p.zone ?? s.zone), region: p.region };
    return {
      action: `attach disk ${p.disk} to ${p.instance ?? s.instance} as ${p.device_name}`,
      ops: [
        {
          kind: 'http',
          method: 'POST',
          url: `${inst}/attachDisk?requestId={uuid}`,
          body: { source: diskUrl(s, ref), deviceName: p.device_name },
        },
        opWait('attachDisk', p.timeout ?? 300),
      ],
      undo: {
        action: `detach ${p.device_name} (unless no longer attached)`,
        ops: [
          { kind: 'http', method: 'GET', url: inst },
          { kind: 'http', method: 'POST', url: `${inst}/detachDisk?deviceName=${p.device_name}` },
        ],
      },
    };
  },
  async apply(ctx, p) {
    const { newRequestId } = await gcpModule();
    const s = gcpOf(ctx);
    const compute = await computeOf(ctx);
    const instance = p.instance ?? s.instance;
    const ref = { name: p.disk, zone: p.region ? undefined : (p.zone ?? s.zone), region: p.region };
    ctx.changing();
    const op = await compute.attachDisk(instance, ref, p.device_name, newRequestId(), ctx.signal);
    await compute.waitDone(op, {
      timeoutMs: (p.timeout ?? 300) * 1000,
      signal: ctx.signal,
      what: `attach ${p.disk}`,
    });
    ctx.log(`disk ${p.disk} attached to ${instance} as ${p.device_name}`);
    return { instance, device_name: p.device_name, source: compute.diskPath(ref) };
  },
  async undo(ctx, p, out) {
    const { newRequestId } = await gcpModule();
    const compute = await computeOf(ctx);
    // A clean-up in `always` (gcp.delete_disk) may have detached it already: then nothing to undo.
    const inst = await compute.getInstance(ctx.signal, out.instance);
    const att = (inst.disks ?? []).find((d) => d.deviceName === out.device_name);
    if (!att || !String(att.source ?? '').endsWith(out.source)) {
      ctx.log(`${out.device_name}: no longer attached to ${out.instance} as ${p.disk}, nothing to detach`);
      return;
    }
    const op = await compute.detachDisk(out.instance, out.device_name, newRequestId(), ctx.signal);
    await compute.waitDone(op, {
      timeoutMs: (p.timeout ?? 300) * 1000,
      signal: ctx.signal,
      what: `detach ${out.device_name}`,
    });
  },
});

const DetachParams = Type.Object(
  {
    device_name: Type.String({ minLength: 1 }),
    force: Type.Optional(
      Type.Boolean({ description: 'detach even a disk the inventory marks pgdata: true (default false)' }),
    ),
    instance: Type.Optional(Type.String({ minLength: 1, description: "default: the host's instance" })),
    timeout: Type.Optional(Type.Number({ minimum: 1, description: 'seconds (default 300)' })),
  },
  { additionalProperties: false },
);

const DetachOutputs = Type.Object({
  instance: Type.String(),
  device_name: Type.String(),
  source: Type.String({ description: 'the disk that was attached, for the undo' }),
});

export const detachDisk = defineStep({
  type: 'gcp.detach_disk',
  summary: 'Detach the disk attached under a device name from an instance (Compute API).',
  params: DetachParams,
  outputs: DetachOutputs,
  mutating: true,
  marksChanges: true,
  undoSummary: 'attach the same disk again under the same device name',
  confirm: (p) => `Detach ${String(p.device_name)} from the instance?`,
  plan(ctx, p) {
    const s = gcpOf(ctx);
    const inst = instanceUrl(s, p.instance ?? s.instance);
    return {
      action: `detach ${p.device_name} from ${p.instance ?? s.instance}`,
      ops: [
        { kind: 'http', method: 'GET', url: inst },
        {
          kind: 'http',
          method: 'POST',
          url: `${inst}/detachDisk?deviceName=${p.device_name}&requestId={uuid}`,
        },
        opWait('detachDisk', p.timeout ?? 300),
      ],
      undo: {
        action: `attach the disk again as ${p.device_name}`,
        ops: [{ kind: 'http', method: 'POST', url: `${inst}/attachDisk` }],
      },
    };
  },
  async apply(ctx, p) {
    const { newRequestId } = await gcpModule();
    const s = gcpOf(ctx);
    const compute = await computeOf(ctx);
    const instance = p.instance ?? s.instance;
    const inst = await compute.getInstance(ctx.signal, instance);
    const att = (inst.disks ?? []).find((d) => d.deviceName === p.device_name);
    if (!att?.source) throw new StepFailure(`no disk attached to ${instance} as ${p.device_name}`);
    if (att.boot) throw new StepFailure(`${p.device_name} is ${instance}'s boot disk: refusing to detach it`);
    // Pulling PGDATA from under a running PostgreSQL crashes it.
    const ref = diskRefOf(att.source, s.zone);
    const marked = s.disks?.find((x) => x.name === ref.name && x.pgdata);
    if (marked && !p.force && instance === s.instance)
      throw new StepFailure(
        `${p.device_name} is ${ref.name}, which the inventory marks pgdata: true: refusing to detach it (force: true if PostgreSQL is stopped)`,
      );
    ctx.changing();
    const op = await compute.detachDisk(instance, p.device_name, newRequestId(), ctx.signal);
    await compute.waitDone(op, {
      timeoutMs: (p.timeout ?? 300) * 1000,
      signal: ctx.signal,
      what: `detach ${p.device_name}`,
    });
    return { instance, device_name: p.device_name, source: att.source };
  },
  async undo(ctx, p, out) {
    const { newRequestId } = await gcpModule();
    const s = gcpOf(ctx);
    const compute = await computeOf(ctx);
    const op = await compute.attachDisk(
      out.instance,
      diskRefOf(out.source, s.zone),
      out.device_name,
      newRequestId(),
      ctx.signal,
    );
    await compute.waitDone(op, {
      timeoutMs: (p.timeout ?? 300) * 1000,
      signal: ctx.signal,
      what: `re-attach ${out.device_name}`,
    });
  },
});

// Instances: list, get, attachDisk, detachDisk. Instances themselves are made with addInstance.
import type { Ctx, Req, Route } from './context.js';
import { inUse, invalid, invalidField, notFound, notReady } from './errors.js';
import { page, parseFilter } from './filter.js';
import { diskRel, parseDiskRef, resourcePath, selfLink } from './links.js';
import { renderInstance, renderOperation } from './render.js';
import type { AttachmentRec, InstanceRec } from './state.js';
import { checkName, zoneInRegion } from './validate.js';

function getInstance(ctx: Ctx, req: Req): { rel: string; inst: InstanceRec } {
  const rel = `zones/${req.params.zone}/instances/${req.params.instance}`;
  const inst = ctx.store.instances.get(rel);
  if (!inst) throw notFound(resourcePath(ctx.store.project, rel));
  return { rel, inst };
}

function list(ctx: Ctx, req: Req) {
  const keep = parseFilter(req.query.filter);
  const all = [...ctx.store.instances.values()]
    .filter((i) => i.zone === req.params.zone)
    .sort((a, b) => a.name.localeCompare(b.name))
    .map((i) => renderInstance(ctx.store, i))
    .filter((i) => keep(i as unknown as Record<string, unknown>));
  const rel = `zones/${req.params.zone}/instances`;
  return {
    kind: 'compute#instanceList',
    id: resourcePath(ctx.store.project, rel),
    ...page(all, req.query),
    selfLink: selfLink(ctx.store.project, rel),
  };
}

function attachDisk(ctx: Ctx, req: Req) {
  const { store } = ctx;
  const { rel, inst } = getInstance(ctx, req);
  const b = req.body;
  if (typeof b.source !== 'string' || b.source === '')
    throw invalidField('resource.source', b.source, 'The source disk is required.');
  const ref = parseDiskRef(b.source, store.project);
  if (!ref) throw invalidField('resource.source', b.source, 'The URL is malformed.');
  const dRel = diskRel(ref.loc, ref.name);
  const disk = store.disks.get(dRel);
  if (!disk) throw notFound(resourcePath(store.project, dRel));
  if (disk.loc.kind === 'zone' ? disk.loc.name !== inst.zone : !zoneInRegion(inst.zone, disk.loc.name))
    throw invalidField('resource.source', b.source, `Disk must be in the instance's zone (${inst.zone}).`);
  if (disk.status !== 'READY') throw notReady(resourcePath(store.project, dRel));
  const mode = b.mode === 'READ_ONLY' ? 'READ_ONLY' : 'READ_WRITE';
  for (const [userRel, user] of store.instances) {
    const a = user.disks.find((x) => x.diskRel === dRel);
    if (a && (mode === 'READ_WRITE' || a.mode === 'READ_WRITE'))
      throw inUse(resourcePath(store.project, dRel), resourcePath(store.project, userRel));
  }
  const deviceName = b.deviceName === undefined ? disk.name : checkName(b.deviceName, 'resource.deviceName');
  if (inst.disks.some((a) => a.deviceName === deviceName))
    throw invalidField(
      'resource.deviceName',
      deviceName,
      `The device name is already in use on instance '${inst.name}'.`,
    );
  const attachment: AttachmentRec = {
    deviceName,
    diskRel: dRel,
    boot: b.boot === true,
    index: firstFreeIndex(inst),
    mode,
  };
  inst.disks.push(attachment);
  const op = ctx.ops.start({
    scope: { kind: 'zone', name: inst.zone },
    operationType: 'attachDisk',
    targetRel: rel,
    targetId: inst.id,
    requestId: req.requestId,
    rollback: () => {
      inst.disks = inst.disks.filter((a) => a !== attachment);
    },
  });
  return renderOperation(store, op);
}

function firstFreeIndex(inst: InstanceRec): number {
  const used = new Set(inst.disks.map((a) => a.index));
  let i = 0;
  while (used.has(i)) i++;
  return i;
}

function detachDisk(ctx: Ctx, req: Req) {
  const { rel, inst } = getInstance(ctx, req);
  const deviceName = req.query.deviceName;
  if (!deviceName) throw invalidField('deviceName', deviceName, 'Required.');
  const attachment = inst.disks.find((a) => a.deviceName === deviceName);
  if (!attachment) throw invalid(`No attached disk found with device name '${deviceName}'`);
  if (attachment.boot)
    throw invalidField(
      'deviceName',
      deviceName,
      'The boot disk cannot be detached while the instance is running.',
    );
  inst.disks = inst.disks.filter((a) => a !== attachment);
  const op = ctx.ops.start({
    scope: { kind: 'zone', name: inst.zone },
    operationType: 'detachDisk',
    targetRel: rel,
    targetId: inst.id,
    requestId: req.requestId,
    rollback: () => {
      inst.disks.push(attachment);
    },
  });
  return renderOperation(ctx.store, op);
}

/** The routes of `projects/{p}/zones/{z}/instances`. */
export const instanceRoutes: Route[] = [
  { method: 'GET', pattern: 'zones/:zone/instances', handler: list },
  {
    method: 'GET',
    pattern: 'zones/:zone/instances/:instance',
    handler: (ctx, req) => renderInstance(ctx.store, getInstance(ctx, req).inst),
  },
  {
    method: 'POST',
    pattern: 'zones/:zone/instances/:instance/attachDisk',
    handler: attachDisk,
    mutating: true,
  },
  {
    method: 'POST',
    pattern: 'zones/:zone/instances/:instance/detachDisk',
    handler: detachDisk,
    mutating: true,
  },
];

// Zonal and regional disks: list, get, insert (blank or from a snapshot), delete,
// createSnapshot, setLabels. A disk is a directory.
import { mkdir } from 'node:fs/promises';
import type { Ctx, Req, Route } from './context.js';
import { alreadyExists, conditionNotMet, inUse, invalidField, notFound, notReady } from './errors.js';
import { page, parseFilter } from './filter.js';
import { diskRel, type Location, parseSnapshotRef, resourcePath, selfLink } from './links.js';
import { renderDisk, renderOperation } from './render.js';
import { takeSnapshot } from './snapshots.js';
import { type DiskRec, now } from './state.js';
import { copyTree, removeTree } from './storage.js';
import {
  checkLabels,
  checkName,
  checkSizeGb,
  checkZone,
  labelFingerprint,
  zoneInRegion,
} from './validate.js';

const DEFAULT_SIZE_GB = 10;

/** The location a route's parameters name. */
const locOf = (req: Req): Location =>
  req.params.zone !== undefined
    ? { kind: 'zone', name: req.params.zone }
    : { kind: 'region', name: req.params.region! };

function getDisk(ctx: Ctx, req: Req): DiskRec {
  const rel = diskRel(locOf(req), req.params.disk!);
  const d = ctx.store.disks.get(rel);
  if (!d) throw notFound(resourcePath(ctx.store.project, rel));
  return d;
}

function list(ctx: Ctx, req: Req) {
  const loc = locOf(req);
  const keep = parseFilter(req.query.filter);
  const all = [...ctx.store.disks.values()]
    .filter((d) => d.loc.kind === loc.kind && d.loc.name === loc.name)
    .sort((a, b) => a.name.localeCompare(b.name))
    .map((d) => renderDisk(ctx.store, d))
    .filter((d) => keep(d as unknown as Record<string, unknown>));
  const rel = `${loc.kind}s/${loc.name}/disks`;
  return {
    kind: 'compute#diskList',
    id: resourcePath(ctx.store.project, rel),
    ...page(all, req.query),
    selfLink: selfLink(ctx.store.project, rel),
  };
}

function insert(ctx: Ctx, req: Req) {
  const { store, ops } = ctx;
  const loc = locOf(req);
  const b = req.body;
  const name = checkName(b.name);
  const labels = checkLabels(b.labels);
  let sizeGb = checkSizeGb(b.sizeGb);
  if (b.sourceImage !== undefined || b.sourceDisk !== undefined)
    throw invalidField(
      b.sourceImage !== undefined ? 'resource.sourceImage' : 'resource.sourceDisk',
      b.sourceImage ?? b.sourceDisk,
      'The emulator makes disks blank or from a snapshot only.',
    );
  const replicaZones = checkReplicaZones(loc, b.replicaZones);
  const rel = diskRel(loc, name);
  if (store.disks.has(rel)) throw alreadyExists(resourcePath(store.project, rel));
  let snap: { name: string; id: string; dir: string; sizeGb: number } | undefined;
  if (b.sourceSnapshot !== undefined) {
    const snapName =
      typeof b.sourceSnapshot === 'string' ? parseSnapshotRef(b.sourceSnapshot, store.project) : undefined;
    if (!snapName) throw invalidField('resource.sourceSnapshot', b.sourceSnapshot, 'The URL is malformed.');
    const s = store.snapshots.get(snapName);
    const path = resourcePath(store.project, `global/snapshots/${snapName}`);
    if (!s) throw notFound(path);
    if (s.status !== 'READY') throw notReady(path);
    snap = { name: s.name, id: s.id, dir: s.dir, sizeGb: s.diskSizeGb };
    if (sizeGb !== undefined && sizeGb < s.diskSizeGb)
      throw invalidField(
        'resource.sizeGb',
        sizeGb,
        `Requested disk size cannot be smaller than the snapshot size (${s.diskSizeGb} GB).`,
      );
    sizeGb ??= s.diskSizeGb;
  }
  const disk: DiskRec = {
    id: store.newId(),
    name,
    loc,
    sizeGb: sizeGb ?? DEFAULT_SIZE_GB,
    type: typeof b.type === 'string' && b.type ? b.type.slice(b.type.lastIndexOf('/') + 1) : 'pd-balanced',
    description: typeof b.description === 'string' ? b.description : undefined,
    labels,
    status: 'CREATING',
    dir: store.diskDir(loc, name),
    adopted: false,
    created: now(),
    sourceSnapshot: snap ? selfLink(store.project, `global/snapshots/${snap.name}`) : undefined,
    sourceSnapshotId: snap?.id,
    replicaZones,
  };
  store.disks.set(rel, disk);
  const op = ops.start({
    scope: loc,
    operationType: 'insert',
    targetRel: rel,
    targetId: disk.id,
    requestId: req.requestId,
    work: async () => {
      // A directory left by an earlier emulator run under the same root is not this disk.
      await removeTree(disk.dir, store.root);
      if (snap) await copyTree(snap.dir, disk.dir, { readOnly: false });
      else await mkdir(disk.dir, { recursive: true });
    },
    finish: () => {
      disk.status = 'READY';
    },
    rollback: async () => {
      store.disks.delete(rel);
      await removeTree(disk.dir, store.root);
    },
  });
  return renderOperation(store, op);
}

function checkReplicaZones(loc: Location, v: unknown): string[] | undefined {
  if (v === undefined) return undefined;
  const zones = Array.isArray(v) ? v.map((z) => String(z).slice(String(z).lastIndexOf('/') + 1)) : [];
  if (loc.kind !== 'region' || zones.length !== 2 || zones.some((z) => !zoneInRegion(checkZone(z), loc.name)))
    throw invalidField(
      'resource.replicaZones',
      JSON.stringify(v),
      'A regional disk needs exactly two replica zones in its region.',
    );
  return zones;
}

function remove(ctx: Ctx, req: Req) {
  const { store } = ctx;
  const d = getDisk(ctx, req);
  const rel = diskRel(d.loc, d.name);
  const users = store.usersOf(rel);
  if (users.length) throw inUse(resourcePath(store.project, rel), resourcePath(store.project, users[0]!));
  // Deleting the directory under a copy in progress would leave a torn snapshot.
  const copying = [...store.snapshots.values()].find(
    (s) => s.sourceDiskId === d.id && s.status === 'CREATING',
  );
  if (copying)
    throw inUse(
      resourcePath(store.project, rel),
      resourcePath(store.project, `global/snapshots/${copying.name}`),
    );
  if (d.status !== 'READY') throw notReady(resourcePath(store.project, rel));
  d.status = 'DELETING';
  const op = ctx.ops.start({
    scope: d.loc,
    operationType: 'delete',
    targetRel: rel,
    targetId: d.id,
    requestId: req.requestId,
    // An adopted directory belongs to whoever handed it over: the emulator only forgets it.
    work: async () => (d.adopted ? undefined : removeTree(d.dir, store.root)),
    finish: () => {
      store.disks.delete(rel);
    },
    rollback: () => {
      d.status = 'READY';
    },
  });
  return renderOperation(store, op);
}

function createSnapshot(ctx: Ctx, req: Req) {
  const d = getDisk(ctx, req);
  return takeSnapshot(ctx, d, req.body, {
    scope: d.loc,
    operationType: 'createSnapshot',
    target: 'disk',
    requestId: req.requestId,
    guestFlush: req.query.guestFlush === 'true',
  });
}

function setLabels(ctx: Ctx, req: Req) {
  const d = getDisk(ctx, req);
  const labels = checkLabels(req.body.labels, 'labels');
  if (req.body.labelFingerprint !== labelFingerprint(d.labels)) throw conditionNotMet();
  const before = d.labels;
  d.labels = labels;
  const op = ctx.ops.start({
    scope: d.loc,
    operationType: 'setLabels',
    targetRel: diskRel(d.loc, d.name),
    targetId: d.id,
    requestId: req.requestId,
    rollback: () => {
      d.labels = before;
    },
  });
  return renderOperation(ctx.store, op);
}

function routesFor(prefix: 'zones/:zone' | 'regions/:region'): Route[] {
  return [
    { method: 'GET', pattern: `${prefix}/disks`, handler: list },
    { method: 'POST', pattern: `${prefix}/disks`, handler: insert, mutating: true },
    {
      method: 'GET',
      pattern: `${prefix}/disks/:disk`,
      handler: (ctx, req) => renderDisk(ctx.store, getDisk(ctx, req)),
    },
    { method: 'DELETE', pattern: `${prefix}/disks/:disk`, handler: remove, mutating: true },
    {
      method: 'POST',
      pattern: `${prefix}/disks/:disk/createSnapshot`,
      handler: createSnapshot,
      mutating: true,
    },
    { method: 'POST', pattern: `${prefix}/disks/:disk/setLabels`, handler: setLabels, mutating: true },
  ];
}

/** The routes of `projects/{p}/zones/{z}/disks` and `projects/{p}/regions/{r}/disks`. */
export const diskRoutes: Route[] = [...routesFor('zones/:zone'), ...routesFor('regions/:region')];

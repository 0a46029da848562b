// Global snapshots: list, get, insert (from sourceDisk), delete, setLabels — and the snapshot
// taking itself, shared with disks.createSnapshot.
import type { Ctx, Req, Route } from './context.js';
import { alreadyExists, conditionNotMet, invalidField, notFound, notReady } from './errors.js';
import { page, parseFilter } from './filter.js';
import { diskRel, parseDiskRef, resourcePath, type Scope, selfLink } from './links.js';
import { renderOperation, renderSnapshot } from './render.js';
import { type DiskRec, now, type SnapshotRec } from './state.js';
import { copyTree, removeTree, treeBytes } from './storage.js';
import { checkLabels, checkName, labelFingerprint } from './validate.js';

/** The multi-region GCE stores a snapshot in by default, from the disk's location. */
function defaultStorageLocation(locName: string): string {
  if (locName.startsWith('europe-')) return 'eu';
  if (locName.startsWith('asia-')) return 'asia';
  return 'us';
}

/**
 * Takes a snapshot of `disk`: the record appears at once (CREATING), the directory copy runs in
 * the operation (UPLOADING when it is complete), READY when the operation is DONE.
 */
export function takeSnapshot(
  ctx: Ctx,
  disk: DiskRec,
  body: Record<string, unknown>,
  op: {
    scope: Scope;
    operationType: string;
    target: 'disk' | 'snapshot';
    requestId?: string;
    guestFlush: boolean;
  },
) {
  const { store, ops } = ctx;
  const name = checkName(body.name);
  const labels = checkLabels(body.labels);
  const storageLocations = checkStorageLocations(body.storageLocations, disk.loc.name);
  if (store.snapshots.has(name)) throw alreadyExists(resourcePath(store.project, `global/snapshots/${name}`));
  if (disk.status !== 'READY') throw notReady(resourcePath(store.project, diskRel(disk.loc, disk.name)));
  const snap: SnapshotRec = {
    id: store.newId(),
    name,
    description: typeof body.description === 'string' ? body.description : undefined,
    labels,
    storageLocations,
    status: 'CREATING',
    dir: store.snapshotDir(name),
    created: now(),
    sourceDisk: selfLink(store.project, diskRel(disk.loc, disk.name)),
    sourceDiskId: disk.id,
    diskSizeGb: disk.sizeGb,
    storageBytes: 0,
    guestFlush: op.guestFlush,
  };
  store.snapshots.set(name, snap);
  const started = ops.start({
    scope: op.scope,
    operationType: op.operationType,
    targetRel: op.target === 'disk' ? diskRel(disk.loc, disk.name) : `global/snapshots/${name}`,
    targetId: op.target === 'disk' ? disk.id : snap.id,
    requestId: op.requestId,
    work: async () => {
      // A directory left by an earlier emulator run under the same root is not a snapshot.
      await removeTree(snap.dir, store.root);
      await copyTree(disk.dir, snap.dir, { readOnly: true });
      snap.status = 'UPLOADING';
      snap.storageBytes = await treeBytes(snap.dir);
    },
    finish: () => {
      snap.status = 'READY';
    },
    rollback: async () => {
      store.snapshots.delete(name);
      await removeTree(snap.dir, store.root);
    },
  });
  return renderOperation(store, started);
}

function checkStorageLocations(v: unknown, locName: string): string[] {
  if (v === undefined || v === null) return [defaultStorageLocation(locName)];
  if (!Array.isArray(v) || v.length !== 1 || typeof v[0] !== 'string' || !/^[a-z][-a-z0-9]*$/.test(v[0]))
    throw invalidField(
      'resource.storageLocations',
      JSON.stringify(v),
      'Exactly one storage location (a region or multi-region such as "eu") is supported.',
    );
  return [v[0]];
}

function getSnapshot(ctx: Ctx, name: string | undefined): SnapshotRec {
  const s = name ? ctx.store.snapshots.get(name) : undefined;
  if (!s) throw notFound(resourcePath(ctx.store.project, `global/snapshots/${name ?? ''}`));
  return s;
}

function list(ctx: Ctx, req: Req) {
  const keep = parseFilter(req.query.filter);
  const all = [...ctx.store.snapshots.values()]
    .sort((a, b) => a.name.localeCompare(b.name))
    .map((s) => renderSnapshot(ctx.store, s))
    .filter((s) => keep(s as unknown as Record<string, unknown>));
  return {
    kind: 'compute#snapshotList',
    id: resourcePath(ctx.store.project, 'global/snapshots'),
    ...page(all, req.query),
    selfLink: selfLink(ctx.store.project, 'global/snapshots'),
  };
}

function insert(ctx: Ctx, req: Req) {
  const src = req.body.sourceDisk;
  if (typeof src !== 'string' || src === '')
    throw invalidField(
      'resource.sourceDisk',
      src,
      'A source disk is required (the emulator snapshots disks only).',
    );
  const ref = parseDiskRef(src, ctx.store.project);
  if (!ref) throw invalidField('resource.sourceDisk', src, 'The URL is malformed.');
  const rel = diskRel(ref.loc, ref.name);
  const disk = ctx.store.disks.get(rel);
  if (!disk) throw notFound(resourcePath(ctx.store.project, rel));
  return takeSnapshot(ctx, disk, req.body, {
    scope: { kind: 'global' },
    operationType: 'insert',
    target: 'snapshot',
    requestId: req.requestId,
    guestFlush: req.body.guestFlush === true,
  });
}

function remove(ctx: Ctx, req: Req) {
  const s = getSnapshot(ctx, req.params.snapshot);
  if (s.status !== 'READY') throw notReady(resourcePath(ctx.store.project, `global/snapshots/${s.name}`));
  s.status = 'DELETING';
  const op = ctx.ops.start({
    scope: { kind: 'global' },
    operationType: 'delete',
    targetRel: `global/snapshots/${s.name}`,
    targetId: s.id,
    requestId: req.requestId,
    work: () => removeTree(s.dir, ctx.store.root),
    finish: () => {
      ctx.store.snapshots.delete(s.name);
    },
    rollback: () => {
      s.status = 'READY';
    },
  });
  return renderOperation(ctx.store, op);
}

function setLabels(ctx: Ctx, req: Req) {
  const s = getSnapshot(ctx, req.params.snapshot);
  const labels = checkLabels(req.body.labels, 'labels');
  if (req.body.labelFingerprint !== labelFingerprint(s.labels)) throw conditionNotMet();
  const before = s.labels;
  s.labels = labels;
  const op = ctx.ops.start({
    scope: { kind: 'global' },
    operationType: 'setLabels',
    targetRel: `global/snapshots/${s.name}`,
    targetId: s.id,
    requestId: req.requestId,
    rollback: () => {
      s.labels = before;
    },
  });
  return renderOperation(ctx.store, op);
}

/** The routes of `projects/{p}/global/snapshots`. */
export const snapshotRoutes: Route[] = [
  { method: 'GET', pattern: 'global/snapshots', handler: list },
  { method: 'POST', pattern: 'global/snapshots', handler: insert, mutating: true },
  {
    method: 'GET',
    pattern: 'global/snapshots/:snapshot',
    handler: (ctx, req) => renderSnapshot(ctx.store, getSnapshot(ctx, req.params.snapshot)),
  },
  { method: 'DELETE', pattern: 'global/snapshots/:snapshot', handler: remove, mutating: true },
  { method: 'POST', pattern: 'global/snapshots/:snapshot/setLabels', handler: setLabels, mutating: true },
];

// Resources as GCE's JSON shows them (int64 as strings, links as full URLs, empty maps omitted).
import { diskRel, scopePath, selfLink } from './links.js';
import type { DiskRec, InstanceRec, OpErrorItem, OpRec, SnapshotRec, Store } from './state.js';
import { labelFingerprint } from './validate.js';

/** A Disk resource as GCE returns it. */
export interface DiskJson {
  kind: 'compute#disk';
  id: string;
  creationTimestamp: string;
  name: string;
  description?: string;
  sizeGb: string;
  zone?: string;
  region?: string;
  replicaZones?: string[];
  status: string;
  sourceSnapshot?: string;
  sourceSnapshotId?: string;
  type: string;
  labels?: Record<string, string>;
  labelFingerprint: string;
  users?: string[];
  physicalBlockSizeBytes: string;
  selfLink: string;
}

/** A Snapshot resource as GCE returns it. */
export interface SnapshotJson {
  kind: 'compute#snapshot';
  id: string;
  creationTimestamp: string;
  name: string;
  description?: string;
  status: string;
  sourceDisk: string;
  sourceDiskId: string;
  diskSizeGb: string;
  storageBytes: string;
  storageBytesStatus: 'UPDATING' | 'UP_TO_DATE';
  storageLocations: string[];
  labels?: Record<string, string>;
  labelFingerprint: string;
  snapshotType: 'STANDARD';
  autoCreated: false;
  selfLink: string;
}

/** An Instance resource, reduced to what disks need. */
export interface InstanceJson {
  kind: 'compute#instance';
  id: string;
  creationTimestamp: string;
  name: string;
  zone: string;
  status: 'RUNNING';
  machineType: string;
  disks: {
    kind: 'compute#attachedDisk';
    type: 'PERSISTENT';
    mode: string;
    source: string;
    deviceName: string;
    index: number;
    boot: boolean;
    autoDelete: boolean;
    interface: 'SCSI';
  }[];
  selfLink: string;
}

/** An Operation resource as GCE returns it. */
export interface OperationJson {
  kind: 'compute#operation';
  id: string;
  name: string;
  zone?: string;
  region?: string;
  clientOperationId?: string;
  operationType: string;
  targetLink: string;
  targetId: string;
  status: string;
  user: string;
  progress: number;
  insertTime: string;
  startTime?: string;
  endTime?: string;
  error?: { errors: OpErrorItem[] };
  httpErrorStatusCode?: number;
  httpErrorMessage?: string;
  selfLink: string;
}

const nonEmpty = (labels: Record<string, string>) => (Object.keys(labels).length ? { ...labels } : undefined);

export function renderDisk(store: Store, d: DiskRec): DiskJson {
  const p = store.project;
  const rel = diskRel(d.loc, d.name);
  const users = store.usersOf(rel).map((u) => selfLink(p, u));
  return strip({
    kind: 'compute#disk',
    id: d.id,
    creationTimestamp: d.created,
    name: d.name,
    description: d.description,
    sizeGb: String(d.sizeGb),
    [d.loc.kind]: selfLink(p, scopePath(d.loc)),
    replicaZones: d.replicaZones?.map((z) => selfLink(p, `zones/${z}`)),
    status: d.status,
    sourceSnapshot: d.sourceSnapshot,
    sourceSnapshotId: d.sourceSnapshotId,
    type: selfLink(p, `${scopePath(d.loc)}/diskTypes/${d.type}`),
    labels: nonEmpty(d.labels),
    labelFingerprint: labelFingerprint(d.labels),
    users: users.length ? users : undefined,
    physicalBlockSizeBytes: '4096',
    selfLink: selfLink(p, rel),
  } as DiskJson);
}

export function renderSnapshot(store: Store, s: SnapshotRec): SnapshotJson {
  return strip({
    kind: 'compute#snapshot',
    id: s.id,
    creationTimestamp: s.created,
    name: s.name,
    description: s.description,
    status: s.status,
    sourceDisk: s.sourceDisk,
    sourceDiskId: s.sourceDiskId,
    diskSizeGb: String(s.diskSizeGb),
    storageBytes: String(s.storageBytes),
    storageBytesStatus: s.status === 'READY' ? 'UP_TO_DATE' : 'UPDATING',
    storageLocations: [...s.storageLocations],
    labels: nonEmpty(s.labels),
    labelFingerprint: labelFingerprint(s.labels),
    snapshotType: 'STANDARD',
    autoCreated: false,
    selfLink: selfLink(store.project, `global/snapshots/${s.name}`),
  });
}

export function renderInstance(store: Store, i: InstanceRec): InstanceJson {
  const p = store.project;
  return {
    kind: 'compute#instance',
    id: i.id,
    creationTimestamp: i.created,
    name: i.name,
    zone: selfLink(p, `zones/${i.zone}`),
    status: 'RUNNING',
    machineType: selfLink(p, `zones/${i.zone}/machineTypes/e2-standard-2`),
    disks: [...i.disks]
      .sort((a, b) => a.index - b.index)
      .map((a) => ({
        kind: 'compute#attachedDisk',
        type: 'PERSISTENT',
        mode: a.mode,
        source: selfLink(p, a.diskRel),
        deviceName: a.deviceName,
        index: a.index,
        boot: a.boot,
        autoDelete: false,
        interface: 'SCSI',
      })),
    selfLink: selfLink(p, `zones/${i.zone}/instances/${i.name}`),
  };
}

export function renderOperation(store: Store, op: OpRec): OperationJson {
  const p = store.project;
  return strip({
    kind: 'compute#operation',
    id: op.id,
    name: op.name,
    ...(op.scope.kind === 'global' ? {} : { [op.scope.kind]: selfLink(p, scopePath(op.scope)) }),
    clientOperationId: op.clientOperationId,
    operationType: op.operationType,
    targetLink: selfLink(p, op.targetRel),
    targetId: op.targetId,
    status: op.status,
    user: `emulator@${p}.iam.gserviceaccount.com`,
    progress: op.progress,
    insertTime: op.insertTime,
    startTime: op.startTime,
    endTime: op.endTime,
    error: op.error ? { errors: op.error.errors.map((e) => ({ ...e })) } : undefined,
    httpErrorStatusCode: op.httpErrorStatusCode,
    httpErrorMessage: op.httpErrorMessage,
    selfLink: selfLink(p, `${scopePath(op.scope)}/operations/${op.name}`),
  } as OperationJson);
}

/** Drops undefined fields: GCE omits unset fields rather than sending null. */
function strip<T extends object>(o: T): T {
  for (const k of Object.keys(o))
    if ((o as Record<string, unknown>)[k] === undefined) delete (o as Record<string, unknown>)[k];
  return o;
}

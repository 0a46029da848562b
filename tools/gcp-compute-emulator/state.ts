// The emulator's resources, held in memory: disks, snapshots, instances, operations, requests.
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import type { Location, Scope } from './links.js';

/** A disk's lifecycle, as GCE names it. */
export type DiskStatus =
  | 'CREATING' // insert accepted; the directory is being made or copied from a snapshot
  | 'READY' // usable: attach, snapshot, delete
  | 'DELETING'; // delete accepted; the directory goes when the operation ends

/** A persistent disk: a directory on this machine. */
export interface DiskRec {
  id: string;
  name: string;
  loc: Location;
  sizeGb: number;
  type: string;
  description?: string;
  labels: Record<string, string>;
  status: DiskStatus;
  dir: string;
  /** Created outside the emulator (addDisk with dir): deleting the disk leaves the directory. */
  adopted: boolean;
  created: string;
  sourceSnapshot?: string;
  sourceSnapshotId?: string;
  replicaZones?: string[];
}

/** A snapshot's lifecycle, as GCE names it. */
export type SnapshotStatus =
  | 'CREATING' // the copy of the disk is being taken
  | 'UPLOADING' // the copy is complete (writes to the disk are safe again); operation not DONE yet
  | 'READY' // the operation is DONE: a disk can be made from it
  | 'DELETING'; // delete accepted

/** A snapshot: a copy of a disk's directory taken at one moment. */
export interface SnapshotRec {
  id: string;
  name: string;
  description?: string;
  labels: Record<string, string>;
  storageLocations: string[];
  status: SnapshotStatus;
  dir: string;
  created: string;
  sourceDisk: string;
  sourceDiskId: string;
  diskSizeGb: number;
  storageBytes: number;
  guestFlush: boolean;
}

/** One disk attached to an instance. */
export interface AttachmentRec {
  deviceName: string;
  /** The disk's relative path, `zones/z/disks/d` or `regions/r/disks/d`. */
  diskRel: string;
  boot: boolean;
  index: number;
  mode: 'READ_WRITE' | 'READ_ONLY';
}

/** A VM: only its identity and its attached disks matter here. */
export interface InstanceRec {
  id: string;
  name: string;
  zone: string;
  created: string;
  disks: AttachmentRec[];
}

/** An operation's lifecycle. */
export type OpStatus =
  | 'PENDING' // accepted, not started
  | 'RUNNING' // its work is in progress
  | 'DONE'; // finished, successfully or with `error`

/** One error inside a failed operation. */
export interface OpErrorItem {
  code: string;
  message: string;
  location?: string;
}

/** A long-running operation, zonal, regional or global. */
export interface OpRec {
  id: string;
  name: string;
  scope: Scope;
  operationType: string;
  targetRel: string;
  targetId: string;
  status: OpStatus;
  progress: number;
  insertTime: string;
  startTime?: string;
  endTime?: string;
  clientOperationId?: string;
  error?: { errors: OpErrorItem[] };
  httpErrorStatusCode?: number;
  httpErrorMessage?: string;
  /** Resolves when the operation is DONE; never rejects. */
  finished: Promise<void>;
}

/** One HTTP request as the emulator answered it. */
export interface RequestLogEntry {
  method: string;
  path: string;
  query: Record<string, string>;
  body?: unknown;
  status: number;
}

/** RFC 3339 time of now, as GCE's timestamps are. */
export const now = () => new Date().toISOString();

/** Everything the emulator knows, keyed as GCE scopes names. */
export class Store {
  /** Keyed by relative path: `zones/z/disks/d` or `regions/r/disks/d`. */
  readonly disks = new Map<string, DiskRec>();
  readonly snapshots = new Map<string, SnapshotRec>();
  /** Keyed by `zones/z/instances/i`. */
  readonly instances = new Map<string, InstanceRec>();
  /** Keyed by operation name. */
  readonly operations = new Map<string, OpRec>();
  readonly byRequestId = new Map<string, OpRec>();
  readonly log: RequestLogEntry[] = [];
  private readonly ids = new Set<string>();

  constructor(
    readonly project: string,
    readonly root: string,
  ) {}

  /** A fresh numeric id, as GCE's uint64 ids print. */
  newId(): string {
    for (;;) {
      const id = (randomBytes(8).readBigUInt64BE() >> 1n).toString();
      if (id.length >= 15 && !this.ids.has(id)) {
        this.ids.add(id);
        return id;
      }
    }
  }

  /** Where a disk created by the emulator keeps its files. */
  diskDir(loc: Location, name: string): string {
    return join(this.root, 'disks', loc.name, name);
  }

  /** Where a snapshot keeps its copy. */
  snapshotDir(name: string): string {
    return join(this.root, 'snapshots', name);
  }

  /** The instances a disk is attached to, as `zones/z/instances/i`. */
  usersOf(diskRel: string): string[] {
    const users: string[] = [];
    for (const [rel, inst] of this.instances)
      if (inst.disks.some((a) => a.diskRel === diskRel)) users.push(rel);
    return users;
  }

  /** An operation by name or numeric id. */
  findOperation(nameOrId: string): OpRec | undefined {
    const byName = this.operations.get(nameOrId);
    if (byName) return byName;
    for (const op of this.operations.values()) if (op.id === nameOrId) return op;
    return undefined;
  }
}

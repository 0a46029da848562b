// A local Google Compute Engine (compute/v1) REST emulator whose disks are directories: start
// it, seed disks and instances, point @google-cloud/compute at `host`/`port`, inject faults.
import { mkdir, stat } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { diskRel, type Location, resourcePath, selfLink } from './links.js';
import { Operations } from './operations.js';
import {
  type DiskJson,
  type InstanceJson,
  type OperationJson,
  renderDisk,
  renderInstance,
  renderOperation,
  renderSnapshot,
  type SnapshotJson,
} from './render.js';
import { createComputeServer, type HttpFault } from './server.js';
import { type AttachmentRec, now, type RequestLogEntry, Store } from './state.js';
import { checkLabels, checkName, checkRegion, checkZone, zoneInRegion } from './validate.js';

export type { DiskJson, InstanceJson, OperationJson, RequestLogEntry, SnapshotJson };

/** How to start the emulator. */
export interface ComputeEmulatorOptions {
  /** Where disk and snapshot directories live (`<root>/disks/<zone|region>/<name>`, `<root>/snapshots/<name>`). */
  root: string;
  /** The one project it serves; other projects answer 404. Default `pgrb-lab`. */
  project?: string;
  /** How long an operation takes beyond its copy. Default 300 ms. */
  operationDelayMs?: number;
  /** How long `operations.wait` blocks before answering with an operation not DONE yet. Default 2000 ms. */
  waitMaxMs?: number;
  /** TCP port on 127.0.0.1; default 0 (any free port). */
  port?: number;
}

/** A disk to seed, READY at once. */
export interface SeedDisk {
  name: string;
  zone?: string;
  region?: string;
  sizeGb?: number;
  labels?: Record<string, string>;
  /** Adopt this existing directory (never deleted by the emulator); else `<root>/disks/<zone|region>/<name>` is created. */
  dir?: string;
}

/** An instance to seed, with disks already attached. */
export interface SeedInstance {
  name: string;
  zone: string;
  disks: { deviceName: string; disk: string; zone?: string; region?: string; boot?: boolean }[];
}

/** An HTTP-level fault: matching requests get this status and a GCE-shaped error body. */
export interface InjectHttpFault {
  /** HTTP method to match (any when absent). */
  method?: string;
  /** Tested against the request path, e.g. `/compute/v1/projects/p/global/snapshots/s1` (no query). */
  path: RegExp;
  status: number;
  /** How many matching requests fail; default 1. */
  times?: number;
  /** The response body; default `{ error: { code, message, errors: [{ message, domain, reason }] } }`. */
  body?: unknown;
  /** Carry the request out, then answer with the fault: the client loses the response of a change that happened. */
  afterHandling?: boolean;
}

/** An operation failure: matching operations end DONE with `error.errors=[{code, message}]`. */
export interface OperationFailure {
  /** Tested against the operation's operationType (`createSnapshot`, `insert`, ...) and its target (`projects/p/zones/z/disks/d`). */
  match: RegExp;
  /** GCE error code, e.g. `QUOTA_EXCEEDED`. */
  code: string;
  message: string;
  /** How many operations fail; default 1. */
  times?: number;
  /** httpErrorStatusCode to report; by default derived from the code (QUOTA_EXCEEDED → 403). */
  httpErrorStatusCode?: number;
}

/** A running emulator. */
export interface ComputeEmulator {
  /** `http://127.0.0.1:<port>` */
  url: string;
  host: string;
  port: number;
  project: string;
  root: string;
  addDisk(d: SeedDisk): Promise<{ dir: string; selfLink: string }>;
  addInstance(i: SeedInstance): Promise<void>;
  /** The directory of a disk by zone or region and name. */
  diskDir(zoneOrRegion: string, name: string): string | undefined;
  snapshotDir(name: string): string | undefined;
  snapshots(): SnapshotJson[];
  disks(): DiskJson[];
  instances(): InstanceJson[];
  operations(): OperationJson[];
  /** Every request answered so far, in order. */
  requests(): RequestLogEntry[];
  inject(f: InjectHttpFault): void;
  failOperations(f: OperationFailure): void;
  /** Operations started from now on take `ms` beyond their work. */
  slowOperations(ms: number): void;
  stop(): Promise<void>;
}

/** Starts the emulator on 127.0.0.1. */
export async function startComputeEmulator(opts: ComputeEmulatorOptions): Promise<ComputeEmulator> {
  const root = resolve(opts.root);
  await mkdir(root, { recursive: true });
  const project = opts.project ?? 'pgrb-lab';
  const store = new Store(project, root);
  const ops = new Operations(store, opts.operationDelayMs ?? 300, opts.waitMaxMs ?? 2000);
  const faults: HttpFault[] = [];
  const server = createComputeServer({ store, ops }, faults);
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(opts.port ?? 0, '127.0.0.1', () => ok());
  });
  const { port } = server.address() as AddressInfo;
  const host = '127.0.0.1';

  const locOf = (zone?: string, region?: string): Location => {
    if (zone && !region) return { kind: 'zone', name: checkZone(zone) };
    if (region && !zone) return { kind: 'region', name: checkRegion(region) };
    throw new Error('give exactly one of zone or region');
  };

  return {
    url: `http://${host}:${port}`,
    host,
    port,
    project,
    root,
    async addDisk(d) {
      const name = checkName(d.name, 'name');
      const loc = locOf(d.zone, d.region);
      const rel = diskRel(loc, name);
      if (store.disks.has(rel)) throw new Error(`disk ${resourcePath(project, rel)} already exists`);
      const labels = checkLabels(d.labels, 'labels');
      let dir: string;
      if (d.dir) {
        dir = resolve(d.dir);
        if (!(await stat(dir)).isDirectory()) throw new Error(`addDisk: ${dir} is not a directory`);
      } else {
        dir = store.diskDir(loc, name);
        await mkdir(dir, { recursive: true });
      }
      store.disks.set(rel, {
        id: store.newId(),
        name,
        loc,
        sizeGb: d.sizeGb ?? 10,
        type: 'pd-balanced',
        labels,
        status: 'READY',
        dir,
        adopted: d.dir !== undefined,
        created: now(),
      });
      return { dir, selfLink: selfLink(project, rel) };
    },
    async addInstance(i) {
      const name = checkName(i.name, 'name');
      const zone = checkZone(i.zone);
      const rel = `zones/${zone}/instances/${name}`;
      if (store.instances.has(rel)) throw new Error(`instance ${resourcePath(project, rel)} already exists`);
      const disks: AttachmentRec[] = i.disks.map((a, index) => {
        const loc = a.region ? locOf(undefined, a.region) : locOf(a.zone ?? zone);
        if (loc.kind === 'zone' ? loc.name !== zone : !zoneInRegion(zone, loc.name))
          throw new Error(`disk ${a.disk} (${loc.name}) cannot attach to an instance in ${zone}`);
        const dRel = diskRel(loc, a.disk);
        if (!store.disks.has(dRel)) throw new Error(`addInstance: no disk ${resourcePath(project, dRel)}`);
        if (store.usersOf(dRel).length) throw new Error(`addInstance: disk ${dRel} is attached elsewhere`);
        return { deviceName: a.deviceName, diskRel: dRel, boot: a.boot ?? false, index, mode: 'READ_WRITE' };
      });
      store.instances.set(rel, { id: store.newId(), name, zone, created: now(), disks });
    },
    diskDir(zoneOrRegion, name) {
      return (
        store.disks.get(`zones/${zoneOrRegion}/disks/${name}`) ??
        store.disks.get(`regions/${zoneOrRegion}/disks/${name}`)
      )?.dir;
    },
    snapshotDir: (name) => store.snapshots.get(name)?.dir,
    snapshots: () => [...store.snapshots.values()].map((s) => renderSnapshot(store, s)),
    disks: () => [...store.disks.values()].map((d) => renderDisk(store, d)),
    instances: () => [...store.instances.values()].map((i) => renderInstance(store, i)),
    operations: () => [...store.operations.values()].map((o) => renderOperation(store, o)),
    requests: () => store.log.map((e) => ({ ...e, query: { ...e.query } })),
    inject(f) {
      faults.push({ ...f, times: f.times ?? 1 });
    },
    failOperations(f) {
      ops.faults.push({ ...f, times: f.times ?? 1 });
    },
    slowOperations(ms) {
      ops.delayMs = ms;
    },
    async stop() {
      const closed = new Promise<void>((ok) => server.close(() => ok()));
      server.closeAllConnections();
      await ops.stop();
      await closed;
    },
  };
}

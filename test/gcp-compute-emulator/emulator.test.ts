// The emulator driven by the real @google-cloud/compute client (REST fallback, no auth).
import { chmod, chown, mkdir, mkdtemp, rm, stat, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ComputeEmulator, startComputeEmulator } from '../../tools/gcp-compute-emulator/index.js';
import { describeTree } from '../../tools/gcp-compute-emulator/tree.js';

type Compute = typeof import('@google-cloud/compute');
type Op = { name?: string | null; status?: unknown; zone?: string | null; region?: string | null };
/** What the client throws for an HTTP error (a GaxiosError). */
type ClientError = { code?: unknown; status?: unknown; message: string };

const P = 'pgrb-lab';
const Z = 'europe-west1-b';
const Z2 = 'europe-west1-c';
const R = 'europe-west1';
const DELAY = 20;

let emu: ComputeEmulator;
let root: string;
let c: {
  disks: InstanceType<Compute['DisksClient']>;
  regionDisks: InstanceType<Compute['RegionDisksClient']>;
  snapshots: InstanceType<Compute['SnapshotsClient']>;
  instances: InstanceType<Compute['InstancesClient']>;
  zoneOps: InstanceType<Compute['ZoneOperationsClient']>;
  regionOps: InstanceType<Compute['RegionOperationsClient']>;
  globalOps: InstanceType<Compute['GlobalOperationsClient']>;
};

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'gce-emu-'));
  emu = await startComputeEmulator({ root: join(root, 'emu'), operationDelayMs: DELAY, waitMaxMs: 300 });
  const m = await import('@google-cloud/compute');
  const { PassThroughClient } = await import('google-auth-library');
  const opts = {
    apiEndpoint: emu.host,
    port: emu.port,
    protocol: 'http',
    fallback: 'rest' as const,
    authClient: new PassThroughClient(),
  };
  c = {
    disks: new m.DisksClient(opts),
    regionDisks: new m.RegionDisksClient(opts),
    snapshots: new m.SnapshotsClient(opts),
    instances: new m.InstancesClient(opts),
    zoneOps: new m.ZoneOperationsClient(opts),
    regionOps: new m.RegionOperationsClient(opts),
    globalOps: new m.GlobalOperationsClient(opts),
  };
});

afterAll(async () => {
  await emu?.stop();
  if (root) await rm(root, { recursive: true, force: true });
});

/** The Operation inside what a mutating call returns. */
const opOf = (r: unknown): Op => (r as { latestResponse: Op }).latestResponse;
const last = (url: string) => url.slice(url.lastIndexOf('/') + 1);

/** Waits on the operation's own scope until DONE (wait may answer earlier). */
async function done(op: Op): Promise<Record<string, unknown>> {
  for (let i = 0; i < 50; i++) {
    const operation = op.name!;
    const [r] = op.zone
      ? await c.zoneOps.wait({ project: P, zone: last(op.zone), operation })
      : op.region
        ? await c.regionOps.wait({ project: P, region: last(op.region), operation })
        : await c.globalOps.wait({ project: P, operation });
    if (r.status === 'DONE') return r as Record<string, unknown>;
  }
  throw new Error(`operation ${op.name} never DONE`);
}

/** The error a call throws, which must be one. */
async function failure(
  p: Promise<unknown>,
): Promise<ClientError & { body: { error: Record<string, unknown> } }> {
  const err = (await p.then(
    () => undefined,
    (e: unknown) => e,
  )) as ClientError | undefined;
  if (!err) throw new Error('expected the call to fail');
  return Object.assign(err, { body: JSON.parse(err.message) as { error: Record<string, unknown> } });
}

/** A disk directory with the kinds of entries a data directory has. */
async function populate(dir: string): Promise<void> {
  await mkdir(join(dir, 'base', '1'), { recursive: true });
  await writeFile(join(dir, 'PG_VERSION'), '15\n');
  await writeFile(join(dir, 'base', '1', '1259'), Buffer.alloc(64 * 1024, 7));
  await chmod(join(dir, 'base', '1', '1259'), 0o600);
  await symlink('../elsewhere', join(dir, 'pg_tblspc_link'));
  await chown(join(dir, 'PG_VERSION'), 1234, 5678).catch(() => {});
  await utimes(join(dir, 'PG_VERSION'), new Date('2020-01-02T03:04:05Z'), new Date('2020-01-02T03:04:05Z'));
  await chmod(dir, 0o700);
}

describe('snapshots of a disk directory', () => {
  it('createSnapshot copies the directory; a disk made from the snapshot is an equal directory', async () => {
    const { dir, selfLink } = await emu.addDisk({
      name: 'pgdata',
      zone: Z,
      sizeGb: 20,
      labels: { role: 'db' },
    });
    expect(selfLink).toBe(`https://www.googleapis.com/compute/v1/projects/${P}/zones/${Z}/disks/pgdata`);
    await populate(dir);
    // Long enough that the in-between states below are seen on a slow machine too.
    emu.slowOperations(200);

    const [res] = await c.disks.createSnapshot({
      project: P,
      zone: Z,
      disk: 'pgdata',
      guestFlush: false,
      requestId: crypto.randomUUID(),
      snapshotResource: {
        name: 'snap-1',
        labels: { run: 'r1' },
        storageLocations: ['eu'],
        description: 'test',
      },
    });
    const op = opOf(res);
    expect(op).toMatchObject({
      status: 'PENDING',
      operationType: 'createSnapshot',
      zone: expect.stringMatching(/zones\/europe-west1-b$/),
    });
    expect((op as { targetLink?: string }).targetLink).toBe(selfLink);
    const [during] = await c.snapshots.get({ project: P, snapshot: 'snap-1' });
    expect(['CREATING', 'UPLOADING']).toContain(during.status);

    const fin = await done(op);
    expect(fin.error).toBeFalsy();
    expect(fin).toMatchObject({ progress: 100, endTime: expect.any(String) });
    const [snap] = await c.snapshots.get({ project: P, snapshot: 'snap-1' });
    expect(snap).toMatchObject({
      status: 'READY',
      sourceDisk: selfLink,
      diskSizeGb: '20',
      labels: { run: 'r1' },
      storageLocations: ['eu'],
      description: 'test',
    });
    expect(Number(snap.storageBytes)).toBeGreaterThan(64 * 1024);
    expect(snap.id).toMatch(/^\d+$/);
    const snapDir = emu.snapshotDir('snap-1')!;
    expect(await describeTree(snapDir)).toEqual(await describeTree(dir));

    // A restore in another zone, named by the snapshot's full URL.
    const [ins] = await c.disks.insert({
      project: P,
      zone: Z2,
      requestId: crypto.randomUUID(),
      diskResource: { name: 'pgdata-restored', sourceSnapshot: snap.selfLink, labels: { restored: 'yes' } },
    });
    const [creating] = await c.disks.get({ project: P, zone: Z2, disk: 'pgdata-restored' });
    expect(creating.status).toBe('CREATING');
    expect((await done(opOf(ins))).error).toBeFalsy();
    const [restored] = await c.disks.get({ project: P, zone: Z2, disk: 'pgdata-restored' });
    expect(restored).toMatchObject({ status: 'READY', sizeGb: '20', sourceSnapshotId: snap.id });
    const restoredDir = emu.diskDir(Z2, 'pgdata-restored')!;
    expect(restoredDir).toBe(join(emu.root, 'disks', Z2, 'pgdata-restored'));
    expect(await describeTree(restoredDir)).toEqual(await describeTree(snapDir));

    // The restore is writable and independent of the snapshot.
    await writeFile(join(restoredDir, 'postmaster.pid'), '1');
    await expect(stat(join(snapDir, 'postmaster.pid'))).rejects.toThrow();
    emu.slowOperations(DELAY);
  });

  it('snapshots.insert with sourceDisk is a global operation; regional disks snapshot through regionDisks', async () => {
    await emu.addDisk({ name: 'zonal', zone: Z });
    const [ins] = await c.snapshots.insert({
      project: P,
      requestId: crypto.randomUUID(),
      snapshotResource: { name: 'snap-global', sourceDisk: `projects/${P}/zones/${Z}/disks/zonal` },
    });
    const op = opOf(ins);
    expect(op.zone).toBeFalsy();
    expect(op.region).toBeFalsy();
    expect(op).toMatchObject({
      operationType: 'insert',
      targetLink: expect.stringMatching(/global\/snapshots\/snap-global$/),
    });
    expect((await done(op)).error).toBeFalsy();

    const { dir } = await emu.addDisk({ name: 'regional', region: R });
    await writeFile(join(dir, 'f'), 'x');
    const [rs] = await c.regionDisks.createSnapshot({
      project: P,
      region: R,
      disk: 'regional',
      requestId: crypto.randomUUID(),
      snapshotResource: { name: 'snap-regional' },
    });
    expect(opOf(rs).region).toMatch(/regions\/europe-west1$/);
    await done(opOf(rs));
    const [s] = await c.snapshots.get({ project: P, snapshot: 'snap-regional' });
    expect(s).toMatchObject({ status: 'READY', storageLocations: ['eu'] });
    expect(await describeTree(emu.snapshotDir('snap-regional')!)).toEqual(await describeTree(dir));

    const [d] = await c.regionDisks.get({ project: P, region: R, disk: 'regional' });
    expect(d.region).toMatch(/regions\/europe-west1$/);

    // Deleting a snapshot removes its directory.
    const snapDir = emu.snapshotDir('snap-global')!;
    const [del] = await c.snapshots.delete({
      project: P,
      snapshot: 'snap-global',
      requestId: crypto.randomUUID(),
    });
    await done(opOf(del));
    await expect(stat(snapDir)).rejects.toThrow();
    expect((await failure(c.snapshots.get({ project: P, snapshot: 'snap-global' }))).code).toBe(404);
  });
});

describe('instances', () => {
  it('attaches and detaches a disk; an attached disk cannot be deleted', async () => {
    await emu.addDisk({ name: 'boot-1', zone: Z });
    const { dir } = await emu.addDisk({ name: 'extra', zone: Z });
    await emu.addInstance({
      name: 'vm-1',
      zone: Z,
      disks: [{ deviceName: 'boot', disk: 'boot-1', boot: true }],
    });

    const [att] = await c.instances.attachDisk({
      project: P,
      zone: Z,
      instance: 'vm-1',
      requestId: crypto.randomUUID(),
      attachedDiskResource: {
        source: `https://www.googleapis.com/compute/v1/projects/${P}/zones/${Z}/disks/extra`,
        deviceName: 'data',
      },
    });
    expect(opOf(att)).toMatchObject({ operationType: 'attachDisk' });
    await done(opOf(att));
    const [vm] = await c.instances.get({ project: P, zone: Z, instance: 'vm-1' });
    expect(vm.disks?.map((d) => [d.deviceName, last(d.source!), d.boot, d.index, d.mode, d.type])).toEqual([
      ['boot', 'boot-1', true, 0, 'READ_WRITE', 'PERSISTENT'],
      ['data', 'extra', false, 1, 'READ_WRITE', 'PERSISTENT'],
    ]);
    const [extra] = await c.disks.get({ project: P, zone: Z, disk: 'extra' });
    expect(extra.users).toEqual([
      `https://www.googleapis.com/compute/v1/projects/${P}/zones/${Z}/instances/vm-1`,
    ]);

    const inUse = await failure(
      c.disks.delete({ project: P, zone: Z, disk: 'extra', requestId: crypto.randomUUID() }),
    );
    expect(inUse.code).toBe(400);
    expect(inUse.body.error.errors).toEqual([
      expect.objectContaining({ reason: 'resourceInUseByAnotherResource' }),
    ]);

    const [det] = await c.instances.detachDisk({
      project: P,
      zone: Z,
      instance: 'vm-1',
      deviceName: 'data',
      requestId: crypto.randomUUID(),
    });
    await done(opOf(det));
    const [vm2] = await c.instances.get({ project: P, zone: Z, instance: 'vm-1' });
    expect(vm2.disks?.map((d) => d.deviceName)).toEqual(['boot']);

    const [del] = await c.disks.delete({
      project: P,
      zone: Z,
      disk: 'extra',
      requestId: crypto.randomUUID(),
    });
    await done(opOf(del));
    await expect(stat(dir)).rejects.toThrow();
    const gone = await failure(c.disks.get({ project: P, zone: Z, disk: 'extra' }));
    expect(gone.code).toBe(404);
    expect(gone.body.error.message).toBe(`The resource 'projects/${P}/zones/${Z}/disks/extra' was not found`);
  });

  it('an adopted directory survives the deletion of its disk', async () => {
    const adopted = join(root, 'adopted');
    await mkdir(adopted);
    await emu.addDisk({ name: 'adopted', zone: Z, dir: adopted });
    const [del] = await c.disks.delete({ project: P, zone: Z, disk: 'adopted' });
    await done(opOf(del));
    expect((await stat(adopted)).isDirectory()).toBe(true);
    expect(emu.diskDir(Z, 'adopted')).toBeUndefined();
  });
});

describe('labels', () => {
  it('setLabels needs the current fingerprint; list filters on labels', async () => {
    await emu.addDisk({ name: 'lab-a', zone: Z2, labels: { env: 'prod' } });
    await emu.addDisk({ name: 'lab-b', zone: Z2, labels: { env: 'test' } });
    const [a] = await c.disks.get({ project: P, zone: Z2, disk: 'lab-a' });
    expect(a.labelFingerprint).toMatch(/^[A-Za-z0-9+/]+=*$/);

    const stale = await failure(
      c.disks.setLabels({
        project: P,
        zone: Z2,
        resource: 'lab-a',
        zoneSetLabelsRequestResource: { labels: { env: 'x' }, labelFingerprint: 'AAAAAAAAAAA=' },
      }),
    );
    expect(stale.code).toBe(412);
    expect(stale.body.error.errors).toEqual([expect.objectContaining({ reason: 'conditionNotMet' })]);

    const [set] = await c.disks.setLabels({
      project: P,
      zone: Z2,
      resource: 'lab-a',
      zoneSetLabelsRequestResource: {
        labels: { env: 'prod', tier: 'gold' },
        labelFingerprint: a.labelFingerprint,
      },
    });
    expect(opOf(set)).toMatchObject({ operationType: 'setLabels' });
    await done(opOf(set));
    const [a2] = await c.disks.get({ project: P, zone: Z2, disk: 'lab-a' });
    expect(a2.labels).toEqual({ env: 'prod', tier: 'gold' });
    expect(a2.labelFingerprint).not.toBe(a.labelFingerprint);

    const [prod] = await c.disks.list({ project: P, zone: Z2, filter: 'labels.env = "prod"' });
    expect(prod.map((d) => d.name)).toEqual(['lab-a']);
    const [both] = await c.disks.list({
      project: P,
      zone: Z2,
      filter: '(labels.env = "prod") OR (labels.env = "test")',
    });
    expect(both.map((d) => d.name).sort()).toEqual(['lab-a', 'lab-b']);

    // Snapshot labels work the same way, through a global operation.
    await emu.addDisk({ name: 'lab-src', zone: Z2 });
    const [cs] = await c.disks.createSnapshot({
      project: P,
      zone: Z2,
      disk: 'lab-src',
      snapshotResource: { name: 'lab-snap' },
    });
    await done(opOf(cs));
    const [s] = await c.snapshots.get({ project: P, snapshot: 'lab-snap' });
    const [sl] = await c.snapshots.setLabels({
      project: P,
      resource: 'lab-snap',
      globalSetLabelsRequestResource: { labels: { keep: 'true' }, labelFingerprint: s.labelFingerprint },
    });
    await done(opOf(sl));
    const [s2] = await c.snapshots.list({ project: P, filter: 'labels.keep = "true"' });
    expect(s2.map((x) => x.name)).toEqual(['lab-snap']);
  });
});

describe('requestId', () => {
  it('a repeated requestId returns the first operation and creates nothing more', async () => {
    await emu.addDisk({ name: 'idem', zone: Z });
    const requestId = crypto.randomUUID();
    const call = () =>
      c.disks.createSnapshot({
        project: P,
        zone: Z,
        disk: 'idem',
        requestId,
        snapshotResource: { name: 'idem-snap' },
      });
    const first = opOf((await call())[0]);
    const second = opOf((await call())[0]);
    expect(second.name).toBe(first.name);
    expect((second as { clientOperationId?: string }).clientOperationId).toBe(requestId);
    await done(first);
    const third = opOf((await call())[0]);
    expect(third).toMatchObject({ name: first.name, status: 'DONE' });
    expect(emu.snapshots().filter((s) => s.name === 'idem-snap')).toHaveLength(1);
    expect(emu.operations().filter((o) => o.clientOperationId === requestId)).toHaveLength(1);
  });

  it('rejects a requestId that is not a UUID, and the zero UUID', async () => {
    for (const requestId of ['not-a-uuid', '00000000-0000-0000-0000-000000000000']) {
      const e = await failure(
        c.disks.createSnapshot({
          project: P,
          zone: Z,
          disk: 'idem',
          requestId,
          snapshotResource: { name: 'never' },
        }),
      );
      expect(e.code).toBe(400);
      expect(e.body.error.message).toContain("Invalid value for field 'requestId'");
    }
    expect(emu.snapshotDir('never')).toBeUndefined();
  });
});

describe('validation', () => {
  it('answers GCE-shaped 400/404/409 errors', async () => {
    await emu.addDisk({ name: 'val', zone: Z });
    const badName = await failure(
      c.disks.createSnapshot({ project: P, zone: Z, disk: 'val', snapshotResource: { name: 'Bad_Name' } }),
    );
    expect(badName.code).toBe(400);
    expect(badName.body.error).toMatchObject({
      code: 400,
      message: expect.stringContaining("Invalid value for field 'resource.name': 'Bad_Name'"),
      errors: [expect.objectContaining({ domain: 'global', reason: 'invalid' })],
    });

    const badLabel = await failure(
      c.disks.createSnapshot({
        project: P,
        zone: Z,
        disk: 'val',
        snapshotResource: { name: 'ok', labels: { Env: 'x' } },
      }),
    );
    expect(badLabel.code).toBe(400);
    const longValue = await failure(
      c.disks.createSnapshot({
        project: P,
        zone: Z,
        disk: 'val',
        snapshotResource: { name: 'ok', labels: { env: 'x'.repeat(64) } },
      }),
    );
    expect(longValue.code).toBe(400);

    const missing = await failure(
      c.disks.createSnapshot({ project: P, zone: Z, disk: 'nope', snapshotResource: { name: 'ok' } }),
    );
    expect(missing.code).toBe(404);
    expect(missing.body.error.errors).toEqual([expect.objectContaining({ reason: 'notFound' })]);

    const [cs] = await c.disks.createSnapshot({
      project: P,
      zone: Z,
      disk: 'val',
      snapshotResource: { name: 'val-snap' },
    });
    const dup = await failure(
      c.disks.createSnapshot({ project: P, zone: Z, disk: 'val', snapshotResource: { name: 'val-snap' } }),
    );
    expect(dup.code).toBe(409);
    expect(dup.body.error.message).toBe(
      `The resource 'projects/${P}/global/snapshots/val-snap' already exists`,
    );
    await done(opOf(cs));

    const otherProject = await failure(c.disks.get({ project: 'someone-else', zone: Z, disk: 'val' }));
    expect(otherProject.code).toBe(404);
    expect(emu.requests().some((r) => r.status === 409 && r.path.endsWith('/disks/val/createSnapshot'))).toBe(
      true,
    );
  });
});

describe('faults', () => {
  it('an injected 503 fails one GET (the client does not retry it), then calls succeed', async () => {
    await emu.addDisk({ name: 'flaky', zone: Z });
    emu.inject({ method: 'GET', path: /\/disks\/flaky$/, status: 503 });
    const e = await failure(c.disks.get({ project: P, zone: Z, disk: 'flaky' }));
    expect(e.code).toBe(503);
    expect(e.status).toBe(503);
    expect(e.body.error).toMatchObject({
      code: 503,
      errors: [expect.objectContaining({ reason: 'backendError' })],
    });
    const [d] = await c.disks.get({ project: P, zone: Z, disk: 'flaky' });
    expect(d.status).toBe('READY');
    const log = emu.requests().filter((r) => r.path.endsWith('/disks/flaky'));
    expect(log.map((r) => r.status)).toEqual([503, 200]);
  });

  it('a response lost after the change: the retry with the same requestId gets the same operation', async () => {
    await emu.addDisk({ name: 'lost', zone: Z });
    emu.inject({ method: 'POST', path: /\/disks\/lost\/createSnapshot$/, status: 503, afterHandling: true });
    const requestId = crypto.randomUUID();
    const call = () =>
      c.disks.createSnapshot({
        project: P,
        zone: Z,
        disk: 'lost',
        requestId,
        snapshotResource: { name: 'lost-snap' },
      });
    expect((await failure(call())).code).toBe(503);
    expect(emu.snapshots().map((s) => s.name)).toContain('lost-snap');
    const op = opOf((await call())[0]);
    expect((await done(op)).error).toBeFalsy();
    expect(emu.operations().filter((o) => o.clientOperationId === requestId)).toHaveLength(1);
  });

  it('an operation failing with QUOTA_EXCEEDED ends DONE with the error; the snapshot is gone', async () => {
    await emu.addDisk({ name: 'quota', zone: Z });
    emu.failOperations({
      match: /createSnapshot/,
      code: 'QUOTA_EXCEEDED',
      message: "Quota 'SNAPSHOTS' exceeded. Limit: 0.0 globally.",
    });
    const [cs] = await c.disks.createSnapshot({
      project: P,
      zone: Z,
      disk: 'quota',
      snapshotResource: { name: 'quota-snap' },
    });
    const fin = await done(opOf(cs));
    expect(fin).toMatchObject({
      status: 'DONE',
      error: {
        errors: [{ code: 'QUOTA_EXCEEDED', message: "Quota 'SNAPSHOTS' exceeded. Limit: 0.0 globally." }],
      },
      httpErrorStatusCode: 403,
      httpErrorMessage: 'FORBIDDEN',
    });
    expect((await failure(c.snapshots.get({ project: P, snapshot: 'quota-snap' }))).code).toBe(404);
    // The fault was used up: the next snapshot works.
    const [ok] = await c.disks.createSnapshot({
      project: P,
      zone: Z,
      disk: 'quota',
      snapshotResource: { name: 'quota-snap' },
    });
    expect((await done(opOf(ok))).error).toBeFalsy();
  });

  it('wait answers before DONE when an operation is slow', async () => {
    await emu.addDisk({ name: 'slow', zone: Z });
    emu.slowOperations(700);
    try {
      const [cs] = await c.disks.createSnapshot({
        project: P,
        zone: Z,
        disk: 'slow',
        snapshotResource: { name: 'slow-snap' },
      });
      const op = opOf(cs);
      const t0 = Date.now();
      const [w] = await c.zoneOps.wait({ project: P, zone: Z, operation: op.name! });
      expect(w.status).toBe('RUNNING');
      expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
      // The copy is complete (UPLOADING) while the operation still runs.
      const [s] = await c.snapshots.get({ project: P, snapshot: 'slow-snap' });
      expect(s.status).toBe('UPLOADING');
      const [g] = await c.zoneOps.get({ project: P, zone: Z, operation: op.name! });
      expect(g.status).not.toBe('DONE');
      expect((await done(op)).status).toBe('DONE');
      const [s2] = await c.snapshots.get({ project: P, snapshot: 'slow-snap' });
      expect(s2.status).toBe('READY');
    } finally {
      emu.slowOperations(DELAY);
    }
  });
});

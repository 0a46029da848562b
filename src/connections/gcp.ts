// Compute Engine through the official @google-cloud/compute client (REST transport). The package
// costs about a second and 200 MB to load, so it is imported here, on first use by a GCP step,
// and nowhere else: validate and plan never touch it.
//
// Reads and waits are retried by this module (429/5xx, with backoff): the client's own retries
// do not cover the REST fallback reliably. Creates carry a requestId, so retrying them is safe.
import { randomUUID } from 'node:crypto';
import { ConnectionError, StepFailure } from '../errors.js';
import { done, notYet, poll } from '../util/poll.js';
import type { GcpCredentials, GcpDiskRef, GcpSettings } from './gcp-settings.js';

type ComputeModule = typeof import('@google-cloud/compute');

let loading: Promise<ComputeModule> | undefined;

/** The client package, loaded once per process on first need. */
export function loadCompute(): Promise<ComputeModule> {
  loading ??= import('@google-cloud/compute');
  return loading;
}

/** An Operation resource as GCE returns it (the fields we read). */
export interface GceOperation {
  name?: string | null;
  status?: string | null;
  progress?: number | null;
  operationType?: string | null;
  targetLink?: string | null;
  zone?: string | null;
  region?: string | null;
  httpErrorStatusCode?: number | null;
  httpErrorMessage?: string | null;
  error?: { errors?: { code?: string | null; message?: string | null }[] | null } | null;
}

/** A GCE error as a person reads it: status, reason, message, and the resource it concerns. */
export class GceError extends StepFailure {
  constructor(
    readonly status: number | undefined,
    readonly reason: string,
    readonly gceMessage: string,
    readonly resource: string,
  ) {
    super(`GCE ${status ?? ''}${status ? ' ' : ''}${reason}: ${gceMessage} (${resource})`);
  }
  get retryable(): boolean {
    return this.status === 429 || (this.status !== undefined && this.status >= 500);
  }
}

/** Turns what the client throws into a GceError (never echoing request headers or tokens). */
export function gceError(err: unknown, resource: string): GceError {
  if (err instanceof GceError) return err;
  const e = err as { code?: unknown; message?: unknown; status?: unknown };
  const status = typeof e.code === 'number' ? e.code : typeof e.status === 'number' ? e.status : undefined;
  let reason = 'error';
  let message = typeof e.message === 'string' ? e.message : String(err);
  // The REST transport puts GCE's JSON error body in the message.
  try {
    const body = JSON.parse(message) as {
      error?: { code?: number; message?: string; errors?: { reason?: string; message?: string }[] };
    };
    if (body.error) {
      message = body.error.message ?? message;
      reason = body.error.errors?.[0]?.reason ?? reason;
    }
  } catch {
    // not JSON: a network error or the client's own message
    if (/ECONNREFUSED|ECONNRESET|ETIMEDOUT|socket hang up|EAI_AGAIN/.test(message))
      return new GceError(503, 'unreachable', message, resource);
  }
  return new GceError(status, reason, message, resource);
}

/** Retry policy for reads, waits and idempotent (requestId) writes. */
export interface RetryPolicy {
  attempts: number;
  firstDelayMs: number;
  maxDelayMs: number;
}
export const DEFAULT_RETRY: RetryPolicy = { attempts: 6, firstDelayMs: 500, maxDelayMs: 8000 };

/** Calls `fn` until it succeeds, retrying 429/5xx with exponential backoff and jitter. */
export async function withRetry<T>(
  what: string,
  resource: string,
  fn: () => Promise<T>,
  opts: { signal?: AbortSignal; policy?: RetryPolicy; onRetry?: (e: GceError, attempt: number) => void } = {},
): Promise<T> {
  const p = opts.policy ?? DEFAULT_RETRY;
  return poll(
    async (attempt) => {
      try {
        return done(await fn());
      } catch (err) {
        const e = gceError(err, resource);
        if (e.retryable && attempt >= p.attempts)
          throw new GceError(
            e.status,
            e.reason,
            `${e.gceMessage} (${what}: gave up after ${attempt} attempts)`,
            resource,
          );
        if (!e.retryable || opts.signal?.aborted) throw e;
        opts.onRetry?.(e, attempt);
        return notYet();
      }
    },
    {
      // Bounded by the number of attempts (counted above), not by time.
      timeoutMs: Number.POSITIVE_INFINITY,
      intervalMs: (attempt) => {
        const delay = Math.min(p.maxDelayMs, p.firstDelayMs * 2 ** (attempt - 1));
        return delay / 2 + Math.random() * (delay / 2);
      },
      signal: opts.signal,
    },
  );
}

/** A fresh requestId: one per logical create, reused by its retries. */
export const newRequestId = (): string => randomUUID();

/** The clients one host's settings need, built once per host. */
export class Compute {
  /** Where retries are reported (the step's log); set by whoever uses the clients. */
  log: (line: string) => void = () => {};

  private constructor(
    readonly s: GcpSettings,
    private readonly c: {
      disks: InstanceType<ComputeModule['DisksClient']>;
      regionDisks: InstanceType<ComputeModule['RegionDisksClient']>;
      snapshots: InstanceType<ComputeModule['SnapshotsClient']>;
      instances: InstanceType<ComputeModule['InstancesClient']>;
      zoneOps: InstanceType<ComputeModule['ZoneOperationsClient']>;
      regionOps: InstanceType<ComputeModule['RegionOperationsClient']>;
      globalOps: InstanceType<ComputeModule['GlobalOperationsClient']>;
    },
  ) {}

  static async open(s: GcpSettings): Promise<Compute> {
    const m = await loadCompute();
    // biome-ignore lint/suspicious/noExplicitAny: ClientOptions spans auth kinds the types split.
    const opts: Record<string, any> = { fallback: 'rest', ...(await authOptions(s.credentials)) };
    if (s.endpoint) {
      opts.apiEndpoint = s.endpoint.host;
      if (s.endpoint.port) opts.port = s.endpoint.port;
      opts.protocol = s.endpoint.protocol;
    }
    return new Compute(s, {
      disks: new m.DisksClient(opts),
      regionDisks: new m.RegionDisksClient(opts),
      snapshots: new m.SnapshotsClient(opts),
      instances: new m.InstancesClient(opts),
      zoneOps: new m.ZoneOperationsClient(opts),
      regionOps: new m.RegionOperationsClient(opts),
      globalOps: new m.GlobalOperationsClient(opts),
    });
  }

  /** Per-call options: our timeout; retries are ours (withRetry), the REST fallback makes none. */
  private get call() {
    return { timeout: this.s.timeoutMs };
  }

  /** withRetry options: this step's signal, and a log line per retry. */
  private opts(signal?: AbortSignal) {
    return {
      signal,
      onRetry: (e: GceError, attempt: number) =>
        this.log(`${e.message}: retrying (attempt ${attempt + 1} of ${DEFAULT_RETRY.attempts})`),
    };
  }

  get project(): string {
    return this.s.project;
  }

  async getInstance(signal?: AbortSignal, instance = this.s.instance) {
    const path = `projects/${this.s.project}/zones/${this.s.zone}/instances/${instance}`;
    const [i] = await withRetry(
      'instances.get',
      path,
      () => this.c.instances.get({ project: this.s.project, zone: this.s.zone, instance }, this.call),
      this.opts(signal),
    );
    return i;
  }

  async getDisk(d: GcpDiskRef, signal?: AbortSignal) {
    const path = this.diskPath(d);
    const [disk] = await withRetry(
      'disks.get',
      path,
      () =>
        d.region
          ? this.c.regionDisks.get({ project: this.s.project, region: d.region, disk: d.name }, this.call)
          : this.c.disks.get(
              { project: this.s.project, zone: d.zone ?? this.s.zone, disk: d.name },
              this.call,
            ),
      this.opts(signal),
    );
    return disk;
  }

  /** The snapshot, or undefined when GCE says 404. */
  async findSnapshot(name: string, signal?: AbortSignal) {
    const path = `projects/${this.s.project}/global/snapshots/${name}`;
    try {
      const [snap] = await withRetry(
        'snapshots.get',
        path,
        () => this.c.snapshots.get({ project: this.s.project, snapshot: name }, this.call),
        this.opts(signal),
      );
      return snap;
    } catch (err) {
      if (err instanceof GceError && err.status === 404) return undefined;
      throw err;
    }
  }

  /** disks.createSnapshot (zonal or regional); returns the operation to wait for. */
  async createSnapshot(
    d: GcpDiskRef,
    body: { name: string; labels: Record<string, string>; storageLocations?: string[]; description?: string },
    opts: { guestFlush?: boolean; requestId: string; signal?: AbortSignal },
  ): Promise<GceOperation> {
    const path = this.diskPath(d);
    const [op] = await withRetry(
      'disks.createSnapshot',
      path,
      () =>
        d.region
          ? this.c.regionDisks.createSnapshot(
              {
                project: this.s.project,
                region: d.region,
                disk: d.name,
                requestId: opts.requestId,
                snapshotResource: body,
              },
              this.call,
            )
          : this.c.disks.createSnapshot(
              {
                project: this.s.project,
                zone: d.zone ?? this.s.zone,
                disk: d.name,
                guestFlush: opts.guestFlush,
                requestId: opts.requestId,
                snapshotResource: body,
              },
              this.call,
            ),
      this.opts(opts.signal),
    );
    return opOf(op);
  }

  async deleteSnapshot(
    name: string,
    requestId: string,
    signal?: AbortSignal,
  ): Promise<GceOperation | undefined> {
    const path = `projects/${this.s.project}/global/snapshots/${name}`;
    try {
      const [op] = await withRetry(
        'snapshots.delete',
        path,
        () => this.c.snapshots.delete({ project: this.s.project, snapshot: name, requestId }, this.call),
        this.opts(signal),
      );
      return opOf(op);
    } catch (err) {
      if (err instanceof GceError && err.status === 404) return undefined;
      throw err;
    }
  }

  /** snapshots.setLabels takes no requestId: the label fingerprint makes a retry safe instead. */
  async setSnapshotLabels(
    name: string,
    labels: Record<string, string>,
    fingerprint: string,
    signal?: AbortSignal,
  ): Promise<GceOperation> {
    const path = `projects/${this.s.project}/global/snapshots/${name}`;
    const [op] = await withRetry(
      'snapshots.setLabels',
      path,
      () =>
        this.c.snapshots.setLabels(
          {
            project: this.s.project,
            resource: name,
            globalSetLabelsRequestResource: { labels, labelFingerprint: fingerprint },
          },
          this.call,
        ),
      this.opts(signal),
    );
    return opOf(op);
  }

  /** disks.insert from a snapshot (zonal or regional). */
  async insertDiskFromSnapshot(
    d: GcpDiskRef & { sizeGb?: number; type?: string; labels?: Record<string, string> },
    snapshot: string,
    requestId: string,
    signal?: AbortSignal,
  ): Promise<GceOperation> {
    const source = `projects/${this.s.project}/global/snapshots/${snapshot}`;
    const diskResource = {
      name: d.name,
      sourceSnapshot: source,
      ...(d.sizeGb ? { sizeGb: String(d.sizeGb) } : {}),
      ...(d.type ? { type: d.type } : {}),
      ...(d.labels ? { labels: d.labels } : {}),
    };
    const [op] = await withRetry(
      'disks.insert',
      this.diskPath(d),
      () =>
        d.region
          ? this.c.regionDisks.insert(
              { project: this.s.project, region: d.region, requestId, diskResource },
              this.call,
            )
          : this.c.disks.insert(
              { project: this.s.project, zone: d.zone ?? this.s.zone, requestId, diskResource },
              this.call,
            ),
      this.opts(signal),
    );
    return opOf(op);
  }

  async deleteDisk(
    d: GcpDiskRef,
    requestId: string,
    signal?: AbortSignal,
  ): Promise<GceOperation | undefined> {
    try {
      const [op] = await withRetry(
        'disks.delete',
        this.diskPath(d),
        () =>
          d.region
            ? this.c.regionDisks.delete(
                { project: this.s.project, region: d.region, disk: d.name, requestId },
                this.call,
              )
            : this.c.disks.delete(
                { project: this.s.project, zone: d.zone ?? this.s.zone, disk: d.name, requestId },
                this.call,
              ),
        this.opts(signal),
      );
      return opOf(op);
    } catch (err) {
      if (err instanceof GceError && err.status === 404) return undefined;
      throw err;
    }
  }

  async attachDisk(
    instance: string,
    d: GcpDiskRef,
    deviceName: string,
    requestId: string,
    signal?: AbortSignal,
  ): Promise<GceOperation> {
    const path = `projects/${this.s.project}/zones/${this.s.zone}/instances/${instance}`;
    const [op] = await withRetry(
      'instances.attachDisk',
      path,
      () =>
        this.c.instances.attachDisk(
          {
            project: this.s.project,
            zone: this.s.zone,
            instance,
            requestId,
            attachedDiskResource: { source: this.diskPath(d), deviceName },
          },
          this.call,
        ),
      this.opts(signal),
    );
    return opOf(op);
  }

  async detachDisk(
    instance: string,
    deviceName: string,
    requestId: string,
    signal?: AbortSignal,
  ): Promise<GceOperation> {
    const path = `projects/${this.s.project}/zones/${this.s.zone}/instances/${instance}`;
    const [op] = await withRetry(
      'instances.detachDisk',
      path,
      () =>
        this.c.instances.detachDisk(
          { project: this.s.project, zone: this.s.zone, instance, deviceName, requestId },
          this.call,
        ),
      this.opts(signal),
    );
    return opOf(op);
  }

  /**
   * Waits for an operation: `wait` may return before DONE, so it loops; a DONE operation can
   * still have failed (QUOTA_EXCEEDED), which becomes a GceError naming the resource.
   */
  async waitDone(
    op: GceOperation,
    opts: { timeoutMs: number; signal?: AbortSignal; onProgress?: (op: GceOperation) => void; what: string },
  ): Promise<GceOperation> {
    let cur = op;
    if (cur.status !== 'DONE')
      // No pause between attempts: operations.wait itself waits (up to about two minutes).
      cur = await poll(
        async () => {
          cur = await this.waitOnce(cur, opts.signal);
          opts.onProgress?.(cur);
          return cur.status === 'DONE' ? done(cur) : notYet();
        },
        {
          timeoutMs: opts.timeoutMs,
          intervalMs: 0,
          signal: opts.signal,
          onTimeout: () =>
            new StepFailure(
              `${opts.what}: operation ${cur.name} (${cur.operationType ?? 'operation'} on ${shortLink(cur.targetLink)}) not DONE within ${Math.round(opts.timeoutMs / 1000)}s (last status ${cur.status})`,
            ),
        },
      );
    const errors = cur.error?.errors ?? [];
    if (errors.length) {
      const first = errors[0]!;
      throw new GceError(
        cur.httpErrorStatusCode ?? undefined,
        first.code ?? 'OPERATION_FAILED',
        errors.map((e) => e.message ?? e.code).join('; '),
        `${shortLink(cur.targetLink)}, operation ${cur.name}`,
      );
    }
    return cur;
  }

  private async waitOnce(op: GceOperation, signal?: AbortSignal): Promise<GceOperation> {
    const name = op.name ?? '';
    const project = this.s.project;
    const scope = op.zone ? `zones/${last(op.zone)}` : op.region ? `regions/${last(op.region)}` : 'global';
    const path = `projects/${project}/${scope}/operations/${name}`;
    const [r] = await withRetry(
      'operations.wait',
      path,
      () =>
        op.zone
          ? this.c.zoneOps.wait({ project, zone: last(op.zone!), operation: name }, this.call)
          : op.region
            ? this.c.regionOps.wait({ project, region: last(op.region!), operation: name }, this.call)
            : this.c.globalOps.wait({ project, operation: name }, this.call),
      this.opts(signal),
    );
    return r as GceOperation;
  }

  diskPath(d: GcpDiskRef): string {
    return d.region
      ? `projects/${this.s.project}/regions/${d.region}/disks/${d.name}`
      : `projects/${this.s.project}/zones/${d.zone ?? this.s.zone}/disks/${d.name}`;
  }

  async close(): Promise<void> {
    await Promise.all(
      Object.values(this.c).map((x) => (x as { close(): Promise<void> }).close().catch(() => {})),
    );
  }
}

/** The Operation resource behind what a mutating call returns (an ExtendedOperation). */
function opOf(x: unknown): GceOperation {
  const o = x as { latestResponse?: GceOperation; name?: string };
  return o.latestResponse ?? (o as GceOperation);
}

const last = (url: string) => url.slice(url.lastIndexOf('/') + 1);

/** `projects/p/zones/z/disks/d` from a full selfLink. */
export function shortLink(link?: string | null): string {
  if (!link) return '(unknown resource)';
  const i = link.indexOf('/projects/');
  return i >= 0 ? link.slice(i + 1) : link;
}

async function authOptions(c: GcpCredentials): Promise<Record<string, unknown>> {
  const auth = await import('google-auth-library');
  const scopes = ['https://www.googleapis.com/auth/compute'];
  switch (c.kind) {
    case 'none':
      // An emulator: no token is fetched or sent.
      return { authClient: new auth.PassThroughClient() };
    case 'adc':
      return { scopes };
    case 'key_file':
      return { keyFilename: c.path, scopes };
    case 'impersonate': {
      const source = new auth.GoogleAuth({
        keyFilename: c.keyFile,
        scopes: ['https://www.googleapis.com/auth/cloud-platform'],
      });
      const sourceClient = await source.getClient().catch((err: Error) => {
        throw new ConnectionError(`GCP credentials for impersonating ${c.target}: ${err.message}`);
      });
      return {
        authClient: new auth.Impersonated({
          sourceClient: sourceClient as never,
          targetPrincipal: c.target,
          targetScopes: scopes,
          lifetime: 3600,
        }),
      };
    }
  }
}

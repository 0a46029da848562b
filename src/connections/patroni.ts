// Patroni's REST API: member and cluster status, and the dynamic configuration (pause).
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { ConnectionError } from '../errors.js';
import { FileReadError, readRegularFile } from '../util/read-file.js';
import type { Secret } from '../util/secret.js';

/** How to reach one member's REST API. */
export interface PatroniSettings {
  url: string;
  username?: string;
  password?: Secret;
  caFile?: string;
  certFile?: string;
  keyFile?: string;
  timeoutMs: number;
  /** the member's Patroni name (default: the inventory host name) */
  member: string;
  /** patroni.yml on the host and the patronictl command, for patronictl-only operations */
  config?: string;
  patronictl: string;
  /** the cluster's DCS, where a run holds its lock (etcd v3 client URL, Patroni scope, lease TTL) */
  dcs?: { etcd3: string; scope: string; lockTtlS: number };
}

/** A member as GET /cluster lists it (Patroni 3.x and 4.x). */
export interface ClusterMember {
  name: string;
  /** leader, replica, sync_standby, standby_leader (4.x adds quorum_standby) */
  role: string;
  state: string;
  apiUrl?: string;
  host?: string;
  port?: number;
  timeline?: number;
  /** replication lag in bytes, when Patroni reports it */
  lag?: number | string;
}

/** GET /cluster, normalised. */
export interface ClusterStatus {
  scope?: string;
  paused: boolean;
  leader?: string;
  members: ClusterMember[];
}

/** One HTTP response. */
interface Reply {
  status: number;
  body: string;
}

/** A REST client for one member; basic auth is sent on requests that change things. */
export class PatroniClient {
  constructor(
    readonly memberName: string,
    private readonly s: PatroniSettings,
  ) {}

  get url(): string {
    return this.s.url;
  }

  /** Sends a request; resolves with any HTTP status, rejects only when the member is unreachable. */
  send(
    method: string,
    path: string,
    body?: unknown,
    signal?: AbortSignal,
    timeoutMs?: number,
  ): Promise<Reply> {
    const limit = timeoutMs ?? this.s.timeoutMs;
    const target = new URL(path, `${this.s.url}/`);
    const https = target.protocol === 'https:';
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (payload !== undefined) {
      headers['content-type'] = 'application/json';
      headers['content-length'] = String(Buffer.byteLength(payload));
    }
    if (method !== 'GET' && this.s.username) {
      const pw = this.s.password?.reveal() ?? '';
      headers.authorization = `Basic ${Buffer.from(`${this.s.username}:${pw}`).toString('base64')}`;
    }
    const tls = https
      ? {
          ca: this.s.caFile ? tlsFile(this.s.caFile) : undefined,
          cert: this.s.certFile ? tlsFile(this.s.certFile) : undefined,
          key: this.s.keyFile ? tlsFile(this.s.keyFile) : undefined,
        }
      : {};
    const fn = https ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      const req = fn(target, { method, headers, timeout: limit, signal, ...tls }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          text += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      });
      req.on('timeout', () => req.destroy(new Error(`no answer within ${limit / 1000}s`)));
      req.on('error', (err) =>
        reject(
          new ConnectionError(
            `Patroni REST API of ${this.memberName} at ${this.s.url} unreachable: ${err.message}`,
          ),
        ),
      );
      req.end(payload);
    });
  }

  async json(path: string, signal?: AbortSignal): Promise<Record<string, unknown>> {
    const r = await this.send('GET', path, undefined, signal);
    try {
      return JSON.parse(r.body) as Record<string, unknown>;
    } catch {
      throw new ConnectionError(`Patroni ${this.memberName}: GET ${path} answered ${r.status} without JSON`);
    }
  }

  /** GET /patroni: this member's own view (`pause: true` only while paused). */
  memberStatus(signal?: AbortSignal): Promise<Record<string, unknown>> {
    return this.json('/patroni', signal);
  }

  async cluster(signal?: AbortSignal): Promise<ClusterStatus> {
    const c = await this.json('/cluster', signal);
    const members = ((c.members as Record<string, unknown>[] | undefined) ?? []).map((m) => ({
      name: String(m.name),
      role: String(m.role),
      state: String(m.state),
      apiUrl: typeof m.api_url === 'string' ? m.api_url.replace(/\/patroni$/, '') : undefined,
      host: typeof m.host === 'string' ? m.host : undefined,
      port: typeof m.port === 'number' ? m.port : undefined,
      timeline: typeof m.timeline === 'number' ? m.timeline : undefined,
      lag: (m.lag ?? m.lag_in_mb) as number | string | undefined,
    }));
    // Patroni before 3.1 leaves the scope out of /cluster; /patroni has it.
    let scope = typeof c.scope === 'string' ? c.scope : undefined;
    if (scope === undefined) {
      // No fallback on failure: a view without its scope cannot be compared with the others.
      const me = await this.memberStatus(signal);
      const p = me.patroni as { scope?: unknown } | undefined;
      if (typeof p?.scope === 'string') scope = p.scope;
      else
        throw new ConnectionError(
          `Patroni ${this.memberName}: neither /cluster nor /patroni names the scope`,
        );
    }
    return {
      scope,
      paused: c.pause === true,
      leader: members.find((m) => m.role === 'leader' || m.role === 'standby_leader')?.name,
      members,
    };
  }

  /** PATCH /config: changes the dynamic configuration in the DCS. */
  async patchConfig(body: Record<string, unknown>, signal?: AbortSignal): Promise<void> {
    const r = await this.send('PATCH', '/config', body, signal);
    if (r.status === 401 || r.status === 403) {
      throw new ConnectionError(
        `Patroni ${this.memberName}: PATCH /config refused (${r.status}): check patroni.username/password`,
      );
    }
    if (r.status < 200 || r.status >= 300) {
      throw new ConnectionError(
        `Patroni ${this.memberName}: PATCH /config answered ${r.status}: ${r.body.trim().slice(0, 200)}`,
      );
    }
  }
}

/** A TLS file of the inventory's patroni settings; a FIFO or a huge file is refused, not read. */
function tlsFile(path: string): Buffer {
  try {
    return readRegularFile(path, 4 * 1024 * 1024);
  } catch (err) {
    if (!(err instanceof FileReadError)) throw err;
    throw new ConnectionError(`cannot read Patroni TLS file ${path}: ${err.reason}`);
  }
}

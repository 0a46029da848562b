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
  /** the cluster's DCS, where a run holds its lock */
  dcs?: DcsSettings;
}

/** A cluster's DCS as the inventory names it: where a run holds its lock, and for how long. */
export interface DcsSettings {
  kind: 'etcd3' | 'consul';
  /** etcd v3 client URL or Consul HTTP API URL */
  url: string;
  /** the Patroni scope (the lock's name) */
  scope: string;
  /** seconds the lock outlives a runner that died */
  lockTtlS: number;
  /** Consul: where its ACL token comes from, and the token once resolved */
  tokenSource?: { env: string } | { file: string };
  token?: Secret;
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
          // Stopped by the run (a signal, a timeout): say that, not that the member is unreachable.
          signal?.aborted
            ? signal.reason instanceof Error
              ? signal.reason
              : new Error(String(signal.reason))
            : new ConnectionError(
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
      throw new ConnectionError(
        `Patroni ${this.memberName}: GET ${path} answered ${r.status} without JSON: ${patroniMessage(r.body)}`,
      );
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

  /**
   * PATCH /config: changes the dynamic configuration in the DCS. Patroni writes it with the DCS's
   * compare-and-set: a 409 means another change landed in between (another member's PATCH, an
   * operator's edit), so it is sent again, a few times, rather than failing the step.
   */
  async patchConfig(body: Record<string, unknown>, signal?: AbortSignal): Promise<void> {
    let r: Reply | undefined;
    for (let attempt = 0; attempt < CONFLICT_RETRIES; attempt++) {
      if (attempt > 0) await new Promise((res) => setTimeout(res, 100 * attempt));
      r = await this.send('PATCH', '/config', body, signal);
      if (r.status !== 409) break;
    }
    const status = r!.status;
    if (status === 401 || status === 403) {
      throw new ConnectionError(
        `Patroni ${this.memberName}: PATCH /config refused (${status}): check patroni.username/password`,
      );
    }
    if (status === 409)
      throw new ConnectionError(
        `Patroni ${this.memberName}: PATCH /config answered 409 ${CONFLICT_RETRIES} times: ${patroniMessage(r!.body)} — the write to the DCS did not take: another change of the configuration kept landing first, or the DCS (etcd, Consul) refused or is unreachable from the member`,
      );
    if (status >= 500)
      throw new DcsError(
        `Patroni ${this.memberName}: PATCH /config answered ${status}: ${patroniMessage(r!.body)} — the member could not write to its DCS (etcd, Consul): is the DCS up and reachable from it?`,
      );
    if (status < 200 || status >= 300) {
      throw new ConnectionError(
        `Patroni ${this.memberName}: PATCH /config answered ${status}: ${patroniMessage(r!.body)}`,
      );
    }
  }
}

/** Attempts of a PATCH /config that conflicts with another change. */
const CONFLICT_RETRIES = 5;

/** The member answered, but could not reach its DCS: a different failure from an unreachable member. */
export class DcsError extends ConnectionError {}

/**
 * What a Patroni answer says, as one line of text. Errors from Patroni's HTTP server are HTML
 * pages ("Error response … Message: Conflict."): their message and explanation, not the markup.
 */
export function patroniMessage(body: string): string {
  const text = body.trim();
  if (!text) return '(no text)';
  if (/^<!DOCTYPE|^<html|<\/(?:p|h1|title|body)>/i.test(text)) {
    const pick = (label: string) =>
      new RegExp(`${label}:\\s*([^<]*)`, 'i').exec(text)?.[1]?.trim().replace(/\.$/, '');
    const message = pick('Message');
    const explanation = pick('Error code explanation');
    const parts = [...new Set([message, explanation].filter((x): x is string => !!x))];
    if (parts.length) return oneLine(parts.join(': '));
    return oneLine(text.replace(/<[^>]*>/g, ' '));
  }
  return oneLine(text);
}

function oneLine(s: string): string {
  const t = s
    .replace(/&quot;/g, '"')
    .replace(/&amp;/g, '&')
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>');
  const line = t.replace(/\s+/g, ' ').trim();
  return line.length > 200 ? `${line.slice(0, 200)}…` : line;
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

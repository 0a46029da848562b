// The HTTP side: parses requests below /compute/v1/projects/{project}/, answers injected faults,
// routes to the handlers, turns GceHttpErrors into GCE's JSON errors, and logs every request.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Ctx, Req, Route } from './context.js';
import { diskRoutes } from './disks.js';
import { errorBody, GceHttpError, injectedDefaults, notFound } from './errors.js';
import { instanceRoutes } from './instances.js';
import { operationRoutes } from './operation-routes.js';
import { renderOperation } from './render.js';
import { snapshotRoutes } from './snapshots.js';
import { checkRegion, checkRequestId, checkZone } from './validate.js';

/** An injected HTTP fault (see ComputeEmulator.inject). */
export interface HttpFault {
  method?: string;
  path: RegExp;
  status: number;
  times: number;
  body?: unknown;
  /** Handle the request first, then answer with the fault: a response lost after the change. */
  afterHandling?: boolean;
}

const ROUTES: Route[] = [...diskRoutes, ...snapshotRoutes, ...instanceRoutes, ...operationRoutes];
const PREFIX = /^\/compute\/v1\/projects\/([^/]+)\/(.+)$/;

/** An HTTP server for the emulator (not listening yet). */
export function createComputeServer(ctx: Ctx, faults: HttpFault[]): Server {
  return createServer((req, res) => {
    serve(ctx, faults, req, res).catch(() => {
      // Only reading the request can fail here (the client went away): nobody to answer.
      res.destroy();
    });
  });
}

async function serve(ctx: Ctx, faults: HttpFault[], req: IncomingMessage, res: ServerResponse) {
  const method = (req.method ?? 'GET').toUpperCase();
  const url = new URL(req.url ?? '/', 'http://emulator');
  const path = url.pathname;
  const query = Object.fromEntries(url.searchParams);
  const raw = await readBody(req);
  const parsed = parseJson(raw);
  const answer = (status: number, body: unknown) => {
    ctx.store.log.push({
      method,
      path,
      query,
      ...(raw ? { body: parsed.ok ? parsed.value : raw } : {}),
      status,
    });
    const text = JSON.stringify(body);
    res.writeHead(status, {
      'content-type': 'application/json; charset=UTF-8',
      'content-length': Buffer.byteLength(text),
    });
    res.end(text);
  };
  const fault = takeFault(faults, method, path);
  const faultAnswer = (f: HttpFault) => {
    const d = injectedDefaults(f.status);
    answer(f.status, f.body ?? errorBody(f.status, d.reason, d.message));
  };
  if (fault && !fault.afterHandling) return faultAnswer(fault);
  try {
    const body = await route(ctx, method, path, query, parsed);
    if (fault) return faultAnswer(fault);
    answer(200, body);
  } catch (err) {
    if (fault) return faultAnswer(fault);
    if (err instanceof GceHttpError)
      return answer(err.status, errorBody(err.status, err.reason, err.message));
    const message = err instanceof Error ? err.message : String(err);
    answer(500, errorBody(500, 'backendError', `Emulator internal error: ${message}`));
  }
}

async function route(
  ctx: Ctx,
  method: string,
  path: string,
  query: Record<string, string>,
  parsed: { ok: true; value: unknown } | { ok: false },
): Promise<unknown> {
  const m = PREFIX.exec(path);
  if (!m) throw notFound(path);
  const project = decodeURIComponent(m[1]!);
  if (project !== ctx.store.project) throw notFound(`projects/${project}`);
  const segments = m[2]!.split('/').map((s) => decodeURIComponent(s));
  for (const r of ROUTES) {
    if (r.method !== method) continue;
    const params = matchPattern(r.pattern, segments);
    if (!params) continue;
    if (params.zone !== undefined) checkZone(params.zone);
    if (params.region !== undefined) checkRegion(params.region);
    if (!parsed.ok) throw new GceHttpError(400, 'parseError', 'Invalid JSON payload received.');
    const value = parsed.value;
    const body =
      value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
    const req: Req = { params, query, body };
    if (r.mutating) {
      req.requestId = checkRequestId(query.requestId);
      // A retried call (same requestId) gets the first call's operation and changes nothing.
      const seen = req.requestId ? ctx.store.byRequestId.get(req.requestId) : undefined;
      if (seen) return renderOperation(ctx.store, seen);
    }
    return await r.handler(ctx, req);
  }
  throw notFound(`${method} ${path} (not emulated)`);
}

function matchPattern(pattern: string, segments: string[]): Record<string, string> | undefined {
  const parts = pattern.split('/');
  if (parts.length !== segments.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i]!;
    const s = segments[i]!;
    if (p.startsWith(':')) params[p.slice(1)] = s;
    else if (p !== s) return undefined;
  }
  return params;
}

function takeFault(faults: HttpFault[], method: string, path: string): HttpFault | undefined {
  for (const f of faults) {
    if (f.times <= 0 || (f.method && f.method.toUpperCase() !== method)) continue;
    f.path.lastIndex = 0;
    if (f.path.test(path)) {
      f.times--;
      return f;
    }
  }
  return undefined;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** The body as JSON; empty and `""` (what the client sends to `wait`) count as no body. */
function parseJson(raw: string): { ok: true; value: unknown } | { ok: false } {
  if (raw.trim() === '') return { ok: true, value: undefined };
  try {
    return { ok: true, value: JSON.parse(raw) };
  } catch {
    return { ok: false };
  }
}

// A fake Patroni REST API for unit tests: a node:http server on 127.0.0.1:0 answering fixed JSON
// per path, and logging what was asked. The shapes follow Patroni's docs/rest_api.rst (4.x) and
// the 3.x answers (no `scope` in /cluster, /patroni role `master`). Real clusters are exercised in
// test/integration/patroni-leader.test.ts.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { formatProblem } from '../../../src/errors.js';
import { type Inventory, loadInventory } from '../../../src/inventory/inventory.js';

/** An answer other than 200 + JSON. */
export class Raw {
  constructor(
    readonly status: number,
    readonly body: string,
  ) {}
}

/** A fixed answer, or one computed from how many times this path was asked before (0, 1, …). */
export type Route = unknown | ((n: number) => unknown);

export interface FakePatroni {
  url: string;
  /** `METHOD /path` of every request, in order */
  requests: string[];
  routes: Record<string, Route>;
  close(): Promise<void>;
}

const servers = new Set<Server>();

const stop = (server: Server) =>
  new Promise<void>((resolve) => {
    servers.delete(server);
    server.closeAllConnections();
    server.close(() => resolve());
  });

/** Starts a fake member answering `routes` (path → JSON); other paths answer 404. */
export async function fakePatroni(routes: Record<string, Route>): Promise<FakePatroni> {
  const requests: string[] = [];
  const counts = new Map<string, number>();
  const fake = { requests, routes } as FakePatroni;
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    requests.push(`${req.method} ${path}`);
    const route = fake.routes[path];
    if (route === undefined) {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
      return;
    }
    const n = counts.get(path) ?? 0;
    counts.set(path, n + 1);
    const answer = typeof route === 'function' ? (route as (n: number) => unknown)(n) : route;
    if (answer instanceof Raw) res.writeHead(answer.status, { 'content-type': 'text/html' }).end(answer.body);
    else res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
  });
  servers.add(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  fake.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  fake.close = () => stop(server);
  return fake;
}

/** A URL on 127.0.0.1 where nothing listens (a port just freed). */
export async function deadUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `http://127.0.0.1:${port}`;
}

/** Closes every fake still open (for afterEach/afterAll). */
export async function closeFakes(): Promise<void> {
  await Promise.all([...servers].map(stop));
}

type MemberSpec = { name: string; role: string; timeline?: number; url?: string; state?: string };

/** GET /cluster of Patroni 4.x: `scope` present, replicas `streaming` with receive/replay lag. */
export function cluster4(scope: string, members: MemberSpec[]) {
  return {
    members: members.map((m, i) => ({
      name: m.name,
      role: m.role,
      state: m.state ?? (m.role.includes('leader') ? 'running' : 'streaming'),
      api_url: `${m.url ?? `http://10.0.0.${i + 1}:8008`}/patroni`,
      host: `10.0.0.${i + 1}`,
      port: 5432,
      timeline: m.timeline ?? 1,
      tags: { clonefrom: true },
      ...(m.role.includes('leader')
        ? {}
        : {
            receive_lag: 0,
            receive_lsn: '0/4000060',
            replay_lag: 0,
            replay_lsn: '0/4000060',
            lag: 0,
            lsn: '0/4000060',
          }),
    })),
    scope,
  };
}

/** GET /cluster of Patroni 3.0: no `scope` (GET /patroni has it), replicas `running` with `lag`. */
export function cluster3(members: MemberSpec[]) {
  return {
    members: members.map((m, i) => ({
      name: m.name,
      role: m.role,
      state: m.state ?? 'running',
      api_url: `${m.url ?? `http://10.0.0.${i + 1}:8008`}/patroni`,
      host: `10.0.0.${i + 1}`,
      port: 5432,
      timeline: m.timeline ?? 1,
      ...(m.role.includes('leader') ? {} : { lag: 0 }),
    })),
  };
}

/** GET /patroni: a member's own status (`role` master on 3.x, primary on 4.x). */
export function memberStatus(o: {
  role: string;
  scope: string;
  name?: string;
  version?: string;
  timeline?: number;
}) {
  return {
    state: 'running',
    postmaster_start_time: '2026-11-25 10:00:00.000000+00:00',
    role: o.role,
    server_version: 150004,
    xlog: { location: 67395656 },
    timeline: o.timeline ?? 1,
    dcs_last_seen: 1764064800,
    database_system_identifier: '7268616322854375442',
    patroni: {
      version: o.version ?? '4.0.4',
      scope: o.scope,
      ...(o.name ? { name: o.name } : {}),
    },
  };
}

const dirs: string[] = [];

/** Writes an inventory file and loads it; no problems allowed. */
export function inventoryOf(text: string): Inventory {
  const r = loadInventory(writeTemp('inventory.yml', text));
  expect(r.problems.map(formatProblem)).toEqual([]);
  return r.inventory!;
}

/** Writes `text` to a fresh temporary directory and returns the file's path. */
export function writeTemp(name: string, text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'pgrb-patroni-'));
  dirs.push(dir);
  const file = join(dir, name);
  writeFileSync(file, text);
  return file;
}

/** Removes the temporary directories written so far. */
export function removeTemps(): void {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

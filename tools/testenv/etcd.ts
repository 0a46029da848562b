import type { ChildProcess } from 'node:child_process';
import { open, readFile } from 'node:fs/promises';
import { request } from 'node:http';
import { join } from 'node:path';
import { makeTempDir, SERVER_USER, spawnAs } from './osuser.js';
import { freePort } from './ports.js';
import { armWatchdog, shQuote, stopDaemon } from './procs.js';

// A running single-member etcd (v3 API); stop() ends it and deletes its data dir and log.
export interface EtcdServer {
  // `http://127.0.0.1:PORT`, for Patroni's etcd3 `hosts` and for etcdctl --endpoints.
  clientUrl: string;
  clientPort: number;
  peerPort: number;
  pid: number;
  dataDir: string;
  logFile: string;
  rootDir: string;
  stop(): Promise<void>;
}

const PORT_ATTEMPTS = 3;
const READY_TIMEOUT_MS = 15_000;

// Status and body of one HTTP request; a fresh connection each time (agent: false), so that no
// keep-alive socket outlives the server or holds the test worker open.
export function httpRequest(
  method: string,
  url: string,
  body?: unknown,
  timeoutMs = 3000,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = request(
      url,
      {
        method,
        agent: false,
        timeout: timeoutMs,
        headers: data ? { 'content-type': 'application/json', 'content-length': data.length } : {},
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${url}: timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(data);
  });
}

// etcd as the server user on free 127.0.0.1 client and peer ports, in its own temp data dir.
export async function startEtcd(): Promise<EtcdServer> {
  const rootDir = await makeTempDir('pgrb-etcd-');
  const dataDir = join(rootDir, 'data');
  const logFile = join(rootDir, 'etcd.log');
  let child: ChildProcess | undefined;
  try {
    for (let attempt = 1; ; attempt++) {
      const [clientPort, peerPort] = [await freePort(), await freePort()];
      const clientUrl = `http://127.0.0.1:${clientPort}`;
      const peerUrl = `http://127.0.0.1:${peerPort}`;
      const log = await open(logFile, 'w', 0o644);
      try {
        // etcd stays in the foreground: child.pid is etcd itself, and the death signal ends it
        // if this worker dies.
        child = await spawnAs(
          SERVER_USER,
          [
            '/usr/bin/etcd',
            '--name',
            't',
            '--data-dir',
            dataDir,
            '--listen-client-urls',
            clientUrl,
            '--advertise-client-urls',
            clientUrl,
            '--listen-peer-urls',
            peerUrl,
            '--initial-advertise-peer-urls',
            peerUrl,
            '--initial-cluster',
            `t=${peerUrl}`,
            '--initial-cluster-state',
            'new',
          ],
          { cwd: rootDir, dieWithParent: true, stdio: ['ignore', log.fd, log.fd] },
        );
      } finally {
        await log.close();
      }
      const c = child;
      c.unref();
      const exited = new Promise<string>((res) => {
        c.once('exit', (code, sig) => res(`etcd exited (${sig ?? code})`));
        c.once('error', (e) => res(`etcd could not start: ${e.message}`));
      });
      const gaveUp = { done: false };
      const why = await Promise.race([waitHealthy(clientUrl, gaveUp), exited]);
      gaveUp.done = true;
      if (why !== 'ready') {
        const text = await readFile(logFile, 'utf8').catch(() => '');
        await stopDaemon(c, rootDir, undefined, false);
        if (attempt < PORT_ATTEMPTS && /address already in use/i.test(text)) continue;
        throw new Error(`startEtcd: ${why}\n--- ${logFile} ---\n${text.slice(-4000)}`);
      }
      const pid = c.pid as number;
      // The death signal (SIGTERM) ends etcd if this worker dies; the watchdog makes sure and
      // removes the files.
      const watchdog = armWatchdog(
        `sleep 0.5; kill -KILL ${pid} 2>/dev/null; sleep 0.2; rm -rf ${shQuote(rootDir)}`,
      );
      let stopping: Promise<void> | undefined;
      return {
        clientUrl,
        clientPort,
        peerPort,
        pid,
        dataDir,
        logFile,
        rootDir,
        stop: () => {
          stopping ??= stopDaemon(c, rootDir, watchdog, true);
          return stopping;
        },
      };
    }
  } catch (err) {
    await stopDaemon(child, rootDir, undefined, true).catch(() => {});
    throw err;
  }
}

// Resolves 'ready' once GET /health says {"health":"true"}.
async function waitHealthy(clientUrl: string, cancel: { done: boolean }): Promise<string> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (cancel.done) return 'cancelled';
    try {
      const r = await httpRequest('GET', `${clientUrl}/health`, undefined, 1000);
      if (r.status === 200 && JSON.parse(r.body).health === 'true') return 'ready';
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) return `etcd at ${clientUrl} not healthy within ${READY_TIMEOUT_MS} ms`;
    await new Promise((r) => setTimeout(r, 50));
  }
}

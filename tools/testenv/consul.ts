import type { ChildProcess } from 'node:child_process';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { httpRequest } from './etcd.js';
import { makeTempDir, SERVER_USER, spawnAs } from './osuser.js';
import { freePort } from './ports.js';
import { armWatchdog, shQuote, stopDaemon } from './procs.js';

// A running single Consul dev agent (server + client in one, state in memory); stop() ends it and
// deletes its data dir and log.
export interface ConsulServer {
  // `http://127.0.0.1:PORT` of its HTTP API, for pgrunbook's `patroni.dcs.consul` and curl.
  httpUrl: string;
  // Patroni's `consul.host` is `127.0.0.1:httpPort`.
  httpPort: number;
  // The master token when started with ACLs enforced (Patroni's `consul.token` then).
  token?: string;
  pid: number;
  rootDir: string;
  logFile: string;
  stop(): Promise<void>;
}

// Options for startConsul.
export interface StartConsulOptions {
  // ACLs enforced (default policy deny) with this master (management) token; the anonymous token
  // may then do nothing. Default: ACLs off, as a dev agent has them.
  aclMasterToken?: string;
}

const PORT_ATTEMPTS = 3;
const READY_TIMEOUT_MS = 20_000;

// `consul agent -dev` as the server user, every port it would listen on free and on 127.0.0.1
// (DNS and gRPC off: nothing here uses them), its own data dir (dev mode keeps the state in
// memory; the dir holds its node id). Resolves once it has elected itself leader, i.e. sessions
// and KV writes work. Consul's defaults are kept, notably session_ttl_min 10 s, as in production.
export async function startConsul(opts: StartConsulOptions = {}): Promise<ConsulServer> {
  const rootDir = await makeTempDir('pgrb-consul-');
  const dataDir = join(rootDir, 'data');
  const logFile = join(rootDir, 'consul.log');
  let child: ChildProcess | undefined;
  try {
    for (let attempt = 1; ; attempt++) {
      const [httpPort, serfLan, serfWan, serverPort] = [
        await freePort(),
        await freePort(),
        await freePort(),
        await freePort(),
      ];
      const httpUrl = `http://127.0.0.1:${httpPort}`;
      const log = await open(logFile, 'w', 0o644);
      try {
        child = await spawnAs(
          SERVER_USER,
          [
            '/usr/bin/consul',
            'agent',
            '-dev',
            '-node',
            't',
            '-bind',
            '127.0.0.1',
            '-client',
            '127.0.0.1',
            '-advertise',
            '127.0.0.1',
            '-http-port',
            String(httpPort),
            '-dns-port',
            '-1',
            '-grpc-port',
            '-1',
            '-serf-lan-port',
            String(serfLan),
            '-serf-wan-port',
            String(serfWan),
            '-server-port',
            String(serverPort),
            '-data-dir',
            dataDir,
            '-log-level',
            'info',
            ...(opts.aclMasterToken
              ? [
                  '-hcl',
                  `acl { enabled = true, default_policy = "deny", enable_token_persistence = false, tokens { master = ${JSON.stringify(opts.aclMasterToken)}, agent = ${JSON.stringify(opts.aclMasterToken)} } }`,
                ]
              : []),
          ],
          // The agent stays in the foreground: child.pid is consul itself.
          { cwd: rootDir, dieWithParent: true, stdio: ['ignore', log.fd, log.fd] },
        );
      } finally {
        await log.close();
      }
      const c = child;
      c.unref();
      const exited = new Promise<string>((res) => {
        c.once('exit', (code, sig) => res(`consul exited (${sig ?? code})`));
        c.once('error', (e) => res(`consul could not start: ${e.message}`));
      });
      const gaveUp = { done: false };
      const why = await Promise.race([waitLeader(httpUrl, gaveUp, opts.aclMasterToken), exited]);
      gaveUp.done = true;
      if (why !== 'ready') {
        const text = await readFile(logFile, 'utf8').catch(() => '');
        await stopDaemon(c, rootDir, undefined, false);
        if (attempt < PORT_ATTEMPTS && /address already in use/i.test(text)) continue;
        throw new Error(`startConsul: ${why}\n--- ${logFile} ---\n${text.slice(-4000)}`);
      }
      const pid = c.pid as number;
      // The death signal (SIGTERM) ends consul if this worker dies; the watchdog makes sure and
      // removes the files.
      const watchdog = armWatchdog(
        `sleep 0.5; kill -KILL ${pid} 2>/dev/null; sleep 0.2; rm -rf ${shQuote(rootDir)}`,
      );
      let stopping: Promise<void> | undefined;
      return {
        httpUrl,
        httpPort,
        ...(opts.aclMasterToken ? { token: opts.aclMasterToken } : {}),
        pid,
        rootDir,
        logFile,
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

// Resolves 'ready' once GET /v1/status/leader names a leader (an empty string before the
// election) and a KV write goes through.
async function waitLeader(httpUrl: string, cancel: { done: boolean }, token?: string): Promise<string> {
  const t = token ? `?token=${encodeURIComponent(token)}` : '';
  const deadline = Date.now() + READY_TIMEOUT_MS;
  for (;;) {
    if (cancel.done) return 'cancelled';
    try {
      const r = await httpRequest('GET', `${httpUrl}/v1/status/leader`, undefined, 1000);
      if (r.status === 200 && JSON.parse(r.body) !== '') {
        const w = await httpRequest('PUT', `${httpUrl}/v1/kv/pgrb-testenv-ready${t}`, 'ok', 1000);
        if (w.status === 200 && w.body.trim() === 'true') {
          await httpRequest('DELETE', `${httpUrl}/v1/kv/pgrb-testenv-ready${t}`, undefined, 1000);
          return 'ready';
        }
      }
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) return `consul at ${httpUrl} has no leader within ${READY_TIMEOUT_MS} ms`;
    await new Promise((r) => setTimeout(r, 50));
  }
}

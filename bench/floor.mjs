// The floor of the SSH fan-out benchmark: the least a Node.js runner can pay for HOSTS × STEPS
// commands over ssh2. One connection per host alias (TCP_NODELAY, host key checked against the
// known_hosts line), then each step on every host in parallel before the next one (lockstep, as
// pgrunbook runs steps). No YAML, no validation, no events, no journal.
//
// In-process:  import { runFloor } from './floor.mjs'
// As a child:  node bench/floor.mjs '<json FloorConfig>'   (prints one JSON FloorResult line)
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import ssh2 from 'ssh2';

const { Client } = ssh2;

/** The raw key blob that known_hosts lists for `[host]:port` (or `host` on port 22). */
function knownKey(knownHostsFile, host, port) {
  const name = port === 22 ? host : `[${host}]:${port}`;
  for (const line of readFileSync(knownHostsFile, 'utf8').split('\n')) {
    const [patterns, , b64] = line.trim().split(/\s+/);
    if (patterns && b64 && patterns.split(',').includes(name)) return Buffer.from(b64, 'base64');
  }
  throw new Error(`floor: ${name} is not in ${knownHostsFile}`);
}

function connect(cfg, privateKey, expectedKey) {
  return new Promise((resolve, reject) => {
    const c = new Client();
    c.once('ready', () => resolve(c));
    // Kept for the connection's life: a later error (the server going away) must not crash us.
    c.on('error', (err) =>
      reject(new Error(`floor: ssh to ${cfg.user}@${cfg.host}:${cfg.port}: ${err.message}`)),
    );
    c.connect({
      host: cfg.host,
      port: cfg.port,
      username: cfg.user,
      privateKey,
      readyTimeout: 15_000,
      hostVerifier: (key) => Buffer.isBuffer(key) && key.equals(expectedKey),
    });
    c.setNoDelay(true);
  });
}

function exec(c, command) {
  return new Promise((resolve, reject) => {
    c.exec(command, (err, ch) => {
      if (err) {
        reject(err);
        return;
      }
      let stdout = '';
      let code = null;
      ch.on('data', (d) => {
        stdout += d.toString('utf8');
      });
      ch.stderr.on('data', () => {});
      ch.on('exit', (c2) => {
        code = c2;
      });
      ch.on('close', () => resolve({ code, stdout }));
      ch.end();
    });
  });
}

/**
 * Runs the floor once.
 * cfg: { host, port, user, identityFile, knownHostsFile, hosts, steps, command, expectStdout }
 * Returns { ms, connectMs, ok, bad, error? }: ms runs from before the first connect to the last exit.
 */
export async function runFloor(cfg) {
  const privateKey = readFileSync(cfg.identityFile);
  const expectedKey = knownKey(cfg.knownHostsFile, cfg.host, cfg.port);
  const t0 = performance.now();
  const conns = [];
  let ok = 0;
  let bad = 0;
  let error;
  let connectMs = 0;
  try {
    const opened = await Promise.allSettled(
      Array.from({ length: cfg.hosts }, () => connect(cfg, privateKey, expectedKey)),
    );
    for (const o of opened) if (o.status === 'fulfilled') conns.push(o.value);
    const failedOpen = opened.find((o) => o.status === 'rejected');
    if (failedOpen) throw failedOpen.reason;
    connectMs = performance.now() - t0;
    for (let s = 0; s < cfg.steps; s++) {
      const results = await Promise.all(conns.map((c) => exec(c, cfg.command)));
      for (const r of results) {
        if (r.code === 0 && r.stdout === cfg.expectStdout) ok++;
        else bad++;
      }
    }
  } catch (err) {
    error = err instanceof Error ? err.message : String(err);
  } finally {
    for (const c of conns) c.end();
  }
  return { ms: performance.now() - t0, connectMs, ok, bad, error };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const r = await runFloor(JSON.parse(process.argv[2] ?? '{}'));
  process.stdout.write(`${JSON.stringify(r)}\n`);
  process.exitCode = r.error || r.bad > 0 ? 1 : 0;
}

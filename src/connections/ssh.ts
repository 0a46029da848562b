// The `ssh` transport: one ssh2 connection per host for the whole run, many exec channels.
import { readFileSync } from 'node:fs';
import { Client, type ClientChannel } from 'ssh2';
import { ConnectionError } from '../errors.js';
import type { Secret } from '../util/secret.js';
import { Semaphore } from '../util/semaphore.js';
import { checkKnownHosts, fingerprint, knownHostsName, readKnownHosts } from './known-hosts.js';
import type { ExecOptions, ExecResult, Transport } from './transport.js';

/** Everything needed to open and trust one SSH connection. */
export interface SshSettings {
  /** Inventory name of the host, for messages. */
  hostName: string;
  host: string;
  port: number;
  user: string;
  identityFile?: string;
  passphrase?: Secret;
  knownHostsFile: string;
  /** A pinned `SHA256:…` fingerprint; when set, known_hosts is not consulted. */
  hostKey?: string;
  acceptUnknownHostKey: boolean;
  connectTimeoutMs: number;
  keepaliveIntervalMs: number;
  /** Concurrent exec channels; OpenSSH's default MaxSessions is 10. */
  maxChannels: number;
}

/** Opens a verified connection; refuses unknown or changed host keys with their fingerprint. */
export async function openSsh(s: SshSettings): Promise<SshTransport> {
  const client = new Client();
  let refusal: string | undefined;
  const verify = (key: Buffer): boolean => {
    const fp = fingerprint(key);
    if (s.hostKey) {
      if (fp === s.hostKey) return true;
      refusal = `host key of ${s.hostName} (${s.host}:${s.port}) is ${fp}, but the inventory pins ${s.hostKey}; refusing to connect`;
      return false;
    }
    const verdict = checkKnownHosts(readKnownHosts(s.knownHostsFile), s.host, s.port, key);
    if (verdict === 'trusted') return true;
    if (verdict === 'unknown' && s.acceptUnknownHostKey) return true;
    const name = knownHostsName(s.host, s.port);
    if (verdict === 'unknown') {
      refusal =
        `unknown host key for ${s.hostName} (${name}): ${fp} is not in ${s.knownHostsFile}. ` +
        `If you trust it, pin it in the inventory (ssh.host_key: ${fp}) or add it with ssh-keyscan -p ${s.port} ${s.host} >> ${s.knownHostsFile}`;
    } else if (verdict === 'changed') {
      refusal =
        `HOST KEY CHANGED for ${s.hostName} (${name}): it now presents ${fp}, which ${s.knownHostsFile} does not list for it. ` +
        'This can be a man-in-the-middle attack; if the host was rebuilt, remove its old line and verify the new key out of band';
    } else {
      refusal = `host key ${fp} of ${s.hostName} (${name}) is marked @revoked in ${s.knownHostsFile}`;
    }
    return false;
  };
  let privateKey: Buffer | undefined;
  if (s.identityFile) {
    try {
      privateKey = readFileSync(s.identityFile);
    } catch (err) {
      throw new ConnectionError(
        `${s.hostName}: cannot read identity file ${s.identityFile}: ${(err as Error).message}`,
      );
    }
  }
  await new Promise<void>((resolve, reject) => {
    client.once('ready', () => resolve());
    client.once('error', (err) => {
      const msg = refusal ?? `${s.hostName}: ssh to ${s.user}@${s.host}:${s.port} failed: ${err.message}`;
      reject(new ConnectionError(msg));
    });
    client.connect({
      host: s.host,
      port: s.port,
      username: s.user,
      privateKey,
      passphrase: s.passphrase?.reveal(),
      agent: privateKey ? undefined : process.env.SSH_AUTH_SOCK,
      readyTimeout: s.connectTimeoutMs,
      keepaliveInterval: s.keepaliveIntervalMs,
      keepaliveCountMax: 3,
      hostVerifier: verify,
    });
    // Without TCP_NODELAY every exec round trip waits for a delayed ACK (~44 ms instead of ~2 ms).
    client.setNoDelay(true);
  });
  return new SshTransport(client, s);
}

/** An open SSH connection; exec channels are capped so OpenSSH's MaxSessions is never hit. */
export class SshTransport implements Transport {
  readonly kind = 'ssh' as const;
  readonly #channels: Semaphore;
  #closed = false;
  readonly #pendingKills = new Set<Promise<void>>();
  #lost: Error | undefined;

  constructor(
    private readonly client: Client,
    private readonly s: SshSettings,
  ) {
    this.#channels = new Semaphore(s.maxChannels);
    client.on('error', (err) => {
      this.#lost = err;
    });
    client.on('close', () => {
      if (!this.#closed) this.#lost ??= new Error('connection closed by the server');
    });
  }

  async exec(line: string, opts: ExecOptions = {}): Promise<ExecResult> {
    return this.#channels.run(() => this.#exec(line, opts));
  }

  #exec(line: string, opts: ExecOptions): Promise<ExecResult> {
    if (this.#lost) {
      return Promise.reject(
        new ConnectionError(`${this.s.hostName}: ssh connection lost: ${this.#lost.message}`),
      );
    }
    // OpenSSH ignores "signal" channel requests and leaves a non-pty command running when its
    // channel closes. sshd starts each command as a session leader, so the shell's PID names the
    // whole process group: learn it from the first stderr line, and kill the group on abort.
    const wrapped = `printf '%s\\n' "$$" >&2; ${line}`;
    return new Promise((resolve, reject) => {
      this.client.exec(wrapped, (err: Error | undefined, ch: ClientChannel) => {
        if (err) {
          reject(new ConnectionError(`${this.s.hostName}: cannot open an ssh channel: ${err.message}`));
          return;
        }
        let stdout = '';
        let stderr = '';
        let pidLine: string | undefined = '';
        let pid: number | undefined;
        let exitCode: number | null = null;
        let signal: string | null = null;
        const onAbort = () => {
          if (pid) void this.#killGroup(pid);
          ch.close();
        };
        opts.signal?.addEventListener('abort', onAbort, { once: true });
        ch.on('data', (c: Buffer) => {
          const t = c.toString('utf8');
          stdout += t;
          opts.onOutput?.('stdout', t);
        });
        ch.stderr.on('data', (c: Buffer) => {
          let t = c.toString('utf8');
          if (pidLine !== undefined) {
            pidLine += t;
            const nl = pidLine.indexOf('\n');
            if (nl < 0) return;
            pid = Number.parseInt(pidLine.slice(0, nl), 10) || undefined;
            t = pidLine.slice(nl + 1);
            pidLine = undefined;
            if (opts.signal?.aborted && pid) void this.#killGroup(pid);
            if (!t) return;
          }
          stderr += t;
          opts.onOutput?.('stderr', t);
        });
        ch.on('exit', (code: number | null, sig?: string) => {
          exitCode = code;
          signal = sig ?? null;
        });
        ch.on('close', () => {
          opts.signal?.removeEventListener('abort', onAbort);
          if (exitCode === null && signal === null && opts.signal?.aborted) signal = 'TERM';
          resolve({ exitCode, signal, stdout, stderr });
        });
        // No empty data packet when there is no input: EOF alone.
        if (opts.stdin) ch.end(opts.stdin);
        else ch.end();
        if (opts.signal?.aborted) onAbort();
      });
    });
  }

  /** Terminates a remote command's process group over a fresh channel. */
  #killGroup(pid: number): Promise<void> {
    const p = new Promise<void>((resolve) => {
      this.client.exec(`kill -TERM -- -${pid} 2>/dev/null; true`, (err, ch) => {
        if (err) return resolve();
        ch.on('close', () => resolve());
        ch.resume();
        ch.stderr.resume();
        ch.end();
      });
    });
    this.#pendingKills.add(p);
    void p.finally(() => this.#pendingKills.delete(p));
    return p;
  }

  async close(): Promise<void> {
    // Let cancellations reach the host before hanging up.
    if (this.#pendingKills.size > 0) {
      await Promise.race([Promise.all(this.#pendingKills), new Promise((r) => setTimeout(r, 3000).unref())]);
    }
    this.#closed = true;
    this.client.end();
  }
}

// The `ssh` transport: one ssh2 connection per host for the whole run, many exec channels.
import { Client, type ClientChannel } from 'ssh2';
import { ConnectionError } from '../errors.js';
import { done, notYet, PollTimeout, poll } from '../util/poll.js';
import { FileReadError, readRegularFile } from '../util/read-file.js';
import type { Secret } from '../util/secret.js';
import { Semaphore } from '../util/semaphore.js';
import { heldCommand } from './held.js';
import {
  checkKnownHosts,
  fingerprint,
  hostKeyAlgorithms,
  keyTypeOf,
  knownHostsName,
  knownKeyTypes,
  readKnownHosts,
} from './known-hosts.js';
import type { ExecOptions, ExecResult, HeldCommand, Transport } from './transport.js';

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

/** Why the host key of an open connection was trusted. */
export type HostKeyTrust =
  /** it equals the inventory's `ssh.host_key` */
  | 'pinned'
  /** known_hosts lists it for the host */
  | 'known'
  /** known_hosts does not know the host and `accept_unknown_host_key` is on: worth journaling */
  | 'accepted-unknown';

/** Options of one open beyond the inventory's settings. */
export interface OpenSshOptions {
  /**
   * A fingerprint the host must present again, on top of the usual checks: a reconnect during a
   * run after an unknown key was accepted must not accept a different unknown key.
   */
  sameKeyAs?: string;
}

/** How long an abort waits for the remote shell's PID before it gives up on killing the group. */
export const PID_WAIT_MS = 5000;
/** How long a cancelled command gets between SIGTERM and SIGKILL (enforced on the host). */
export const KILL_GRACE_MS = 3000;
/** How long to wait for a channel to close after the kill or a local close before giving up. */
const CLOSE_WAIT_MS = 2000;

/** Opens a verified connection; refuses unknown or changed host keys with their fingerprint. */
export async function openSsh(s: SshSettings, opts: OpenSshOptions = {}): Promise<SshTransport> {
  const client = new Client();
  const name = knownHostsName(s.host, s.port);
  let knownText = '';
  if (!s.hostKey) {
    try {
      knownText = readKnownHosts(s.knownHostsFile, { mustExist: s.acceptUnknownHostKey });
    } catch (err) {
      throw new ConnectionError(
        `${s.hostName}: ${(err as Error).message}` +
          (s.acceptUnknownHostKey
            ? '; accept_unknown_host_key needs a readable known_hosts file, or every key would count as unknown and be accepted (create it, even empty, or pin ssh.host_key)'
            : ''),
      );
    }
  }
  const knownTypes = s.hostKey ? [] : knownKeyTypes(knownText, s.host, s.port);
  let refusal: string | undefined;
  let trusted: { fingerprint: string; keyType: string; trust: HostKeyTrust } | undefined;
  const verify = (key: Buffer): boolean => {
    const fp = fingerprint(key);
    const keyType = keyTypeOf(key) ?? 'unknown';
    if (opts.sameKeyAs && fp !== opts.sameKeyAs) {
      refusal =
        `HOST KEY CHANGED for ${s.hostName} (${name}) during this run: it presented ${opts.sameKeyAs} ` +
        `when first connected and now presents ${fp}; refusing to reconnect`;
      return false;
    }
    if (s.hostKey) {
      if (fp === s.hostKey) {
        trusted = { fingerprint: fp, keyType, trust: 'pinned' };
        return true;
      }
      refusal = `host key of ${s.hostName} (${s.host}:${s.port}) is ${fp}, but the inventory pins ${s.hostKey}; refusing to connect`;
      return false;
    }
    const verdict = checkKnownHosts(knownText, s.host, s.port, key);
    if (verdict === 'trusted') {
      trusted = { fingerprint: fp, keyType, trust: 'known' };
      return true;
    }
    if (verdict === 'unknown' && s.acceptUnknownHostKey) {
      trusted = { fingerprint: fp, keyType, trust: 'accepted-unknown' };
      return true;
    }
    if (verdict === 'unknown') {
      refusal =
        `unknown host key for ${s.hostName} (${name}): ${fp} is not in ${s.knownHostsFile}. ` +
        `If you trust it, pin it in the inventory (ssh.host_key: ${fp}) or add it with ssh-keyscan -p ${s.port} ${s.host} >> ${s.knownHostsFile}`;
    } else if (verdict === 'changed' && !knownTypes.includes(keyType)) {
      // The algorithms known_hosts can verify were offered first; the server has none of them.
      refusal =
        `cannot verify the host key of ${s.hostName} (${name}): it presents a ${keyType} key (${fp}), but ${s.knownHostsFile} ` +
        `lists only ${knownTypes.join(', ')} keys for it, which the server no longer offers. ` +
        'If the host was re-keyed, verify the new key out of band and replace its line';
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
      privateKey = readRegularFile(s.identityFile, 1024 * 1024);
    } catch (err) {
      if (!(err instanceof FileReadError)) throw err;
      throw new ConnectionError(`${s.hostName}: cannot read identity file ${s.identityFile}: ${err.reason}`);
    }
  }
  const serverHostKey = hostKeyAlgorithms(knownTypes);
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
      // Host key types known_hosts can verify go first, as OpenSSH orders them.
      ...(serverHostKey ? { algorithms: { serverHostKey: serverHostKey as never } } : {}),
    });
    // Without TCP_NODELAY every exec round trip waits for a delayed ACK (~44 ms instead of ~2 ms).
    client.setNoDelay(true);
  });
  if (!trusted) {
    client.end();
    throw new ConnectionError(`${s.hostName}: ssh connected without verifying a host key`);
  }
  return new SshTransport(client, s, trusted);
}

/** Resolves true if `p` settles within `ms`, false otherwise; the timer never holds the process. */
async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((r) => {
    timer = setTimeout(() => r(false), ms);
  });
  try {
    return await Promise.race([p.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Shell text run on the host to cancel a command: SIGTERM to its process group now, then, in a
 * detached background job that outlives this channel and even the connection, SIGKILL if any
 * member is still alive after the grace period. `kill -SIG -PGID` without `--`: dash rejects `--`.
 */
export function killScript(pid: number, graceMs = KILL_GRACE_MS): string {
  if (!Number.isSafeInteger(pid) || pid <= 1) throw new Error(`bad process group ${pid}`);
  const ticks = Math.max(1, Math.ceil(graceMs / 100));
  return [
    `kill -TERM -${pid} 2>/dev/null || exit 0;`,
    `(n=0; while kill -0 -${pid} 2>/dev/null; do`,
    `if [ "$n" -ge ${ticks} ]; then kill -KILL -${pid} 2>/dev/null; exit 0; fi;`,
    // Fractional sleep is not POSIX: fall back to whole seconds where it is refused.
    'if sleep 0.1 2>/dev/null; then n=$((n+1)); else sleep 1; n=$((n+10)); fi;',
    'done) </dev/null >/dev/null 2>&1 &',
  ].join(' ');
}

/**
 * The command line sent for `line`, with a lifeline: if the runner dies (kill -9, a crash, a lost
 * network), nothing of ours can send a kill, yet the command must not run on unattended. The
 * channel's stdin is kept open by the runner until the command has ended (the exit status came);
 * the command reads its `stdinBytes` of input through a pipe, and a watcher, started once that
 * input is read, waits for EOF on the channel's stdin. EOF while the shell still runs means the
 * runner is gone: the watcher sends SIGTERM to the shell's process group, and SIGKILL once the
 * shell is gone or after the grace period. The watcher only ignores SIGTERM once it acts, so an
 * abort's group kill ends it at once. `line` runs in a subshell at the end of a pipeline, so its
 * status is the shell's; its own `exit` ends only that subshell, with that status.
 */
export function withLifeline(line: string, stdinBytes: number, graceMs = KILL_GRACE_MS): string {
  if (!Number.isSafeInteger(stdinBytes) || stdinBytes < 0) throw new Error(`bad input size ${stdinBytes}`);
  const ticks = Math.max(1, Math.ceil(graceMs / 100));
  const watcher = [
    'cat >/dev/null 2>&1;',
    'kill -0 $$ 2>/dev/null || exit 0;',
    "trap '' TERM;",
    'kill -TERM -$$ 2>/dev/null;',
    `n=0; while kill -0 $$ 2>/dev/null && [ "$n" -lt ${ticks} ]; do`,
    'if sleep 0.1 2>/dev/null; then n=$((n+1)); else sleep 1; n=$((n+10)); fi; done;',
    'kill -KILL -$$ 2>/dev/null',
  ].join(' ');
  // An asynchronous list reads /dev/null unless told otherwise: the watcher gets the channel's
  // stdin through fd 3, and holds nothing else of the channel (its output would keep it open).
  // An abort's SIGTERM reaches the whole group: the shell waits for the command before it goes
  // (a command that ignores SIGTERM ends by the SIGKILL, and that is the status reported), then
  // ends by the same signal. Traps with an action are reset in subshells: the command is not deaf.
  return (
    `trap 'trap - TERM; kill -TERM $$' TERM; printf '%s\\n' "$$" >&2; ` +
    `{ exec 3<&0; head -c ${stdinBytes} 2>/dev/null; (${watcher}) <&3 3<&- >/dev/null 2>&1 & } | { ${line}\n}`
  );
}

/** An open SSH connection; exec channels are capped so OpenSSH's MaxSessions is never hit. */
export class SshTransport implements Transport {
  readonly kind = 'ssh' as const;
  readonly #channels: Semaphore;
  /**
   * Kill channels are outside the exec cap (aborted commands hold exec slots until they end, so
   * sharing it could deadlock) but serialised: each lives a few milliseconds. With the default
   * max_channels 8, exec plus kill channels stay under OpenSSH's MaxSessions 10.
   */
  readonly #killSlots = new Semaphore(1);
  #closed = false;
  /** Channels being opened: an abort can only register once its channel is open. */
  readonly #opening = new Set<Promise<void>>();
  /** Cancellations until their kill is sent (or given up): close() waits for those. */
  readonly #pendingCancels = new Set<Promise<void>>();
  #lost: Error | undefined;
  /** The host key this connection verified, `SHA256:…`. */
  readonly hostKeyFingerprint: string;
  /** Its type, e.g. `ssh-ed25519`. */
  readonly hostKeyType: string;
  /** How it was trusted: `accepted-unknown` should be journaled. */
  readonly hostKeyTrust: HostKeyTrust;

  constructor(
    private readonly client: Client,
    private readonly s: SshSettings,
    hostKey: { fingerprint: string; keyType: string; trust: HostKeyTrust },
  ) {
    this.hostKeyFingerprint = hostKey.fingerprint;
    this.hostKeyType = hostKey.keyType;
    this.hostKeyTrust = hostKey.trust;
    this.#channels = new Semaphore(s.maxChannels);
    client.on('error', (err) => {
      this.#lost ??= err;
    });
    client.on('close', () => {
      if (!this.#closed) this.#lost ??= new Error('connection closed by the server');
    });
  }

  /** Why the connection ended other than by `close()`, if it did; a lost transport runs nothing. */
  get lost(): string | undefined {
    return this.#lost?.message;
  }

  /** The settings this connection was opened with. */
  get settings(): SshSettings {
    return this.s;
  }

  async exec(line: string, opts: ExecOptions = {}): Promise<ExecResult> {
    return this.#channels.run(() => this.#exec(line, opts));
  }

  #exec(line: string, opts: ExecOptions): Promise<ExecResult> {
    if (this.#lost || this.#closed) {
      const why = this.#lost?.message ?? 'closed by pgrunbook';
      return Promise.reject(new ConnectionError(`${this.s.hostName}: ssh connection lost: ${why}`));
    }
    // Aborted while waiting for a channel: never start it.
    if (opts.signal?.aborted)
      return Promise.resolve({ exitCode: null, signal: 'SIGTERM', stdout: '', stderr: '' });
    // OpenSSH ignores "signal" channel requests and leaves a non-pty command running when its
    // channel closes. sshd starts each command as a session leader, so the shell's PID names the
    // whole process group: learn it from the first stderr line, and kill the group on abort. If
    // the runner itself dies, the lifeline in `withLifeline` ends the group on the host.
    const input = opts.stdin ?? '';
    const wrapped = withLifeline(line, Buffer.byteLength(input, 'utf8'));
    let opened: () => void = () => {};
    const opening = new Promise<void>((r) => {
      opened = r;
    });
    this.#opening.add(opening);
    void opening.then(() => this.#opening.delete(opening));
    return new Promise((resolve, reject) => {
      const onChannel = (err: Error | undefined, ch: ClientChannel) => {
        opened();
        if (err) {
          reject(new ConnectionError(`${this.s.hostName}: cannot open an ssh channel: ${err.message}`));
          return;
        }
        let stdout = '';
        let stderr = '';
        let pidLine: string | undefined = '';
        let exitCode: number | null = null;
        let signal: string | null = null;
        let settled = false;
        let inputEnded = false;
        const endInput = () => {
          if (inputEnded) return;
          inputEnded = true;
          try {
            ch.end();
          } catch {
            // the connection is gone: so is the lifeline
          }
        };
        let setPid: (pid: number | undefined) => void = () => {};
        const pidKnown = new Promise<number | undefined>((r) => {
          setPid = r;
        });
        let markClosed: () => void = () => {};
        const closed = new Promise<void>((r) => {
          markClosed = r;
        });
        const finish = (unconfirmed = false) => {
          if (settled) return;
          settled = true;
          opts.signal?.removeEventListener('abort', onAbort);
          setPid(undefined);
          if (exitCode === null && signal === null && opts.signal?.aborted) signal = 'SIGTERM';
          if (unconfirmed)
            stderr += '\n[pgrunbook: cancelled, but the host did not confirm that the command ended]\n';
          resolve({ exitCode, signal, stdout, stderr });
        };
        const onAbort = () => {
          let killSent: () => void = () => {};
          const sent = new Promise<void>((r) => {
            killSent = r;
          });
          this.#pendingCancels.add(sent);
          void sent.then(() => this.#pendingCancels.delete(sent));
          void this.#cancel(ch, pidKnown, closed, () => finish(true), killSent).finally(killSent);
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
            setPid(Number.parseInt(pidLine.slice(0, nl), 10) || undefined);
            t = pidLine.slice(nl + 1);
            pidLine = undefined;
            if (!t) return;
          }
          stderr += t;
          opts.onOutput?.('stderr', t);
        });
        ch.on('exit', (code: number | null, sig?: string) => {
          exitCode = code;
          signal = sig ?? null;
          // The command has ended: cut the lifeline so its watcher ends too (it sees the shell
          // gone and kills nothing), which also lets the channel close.
          endInput();
        });
        ch.on('close', () => {
          markClosed();
          finish();
        });
        // The input, then nothing until the command ends: the channel's stdin stays open as the
        // lifeline. No empty data packet when there is no input.
        if (input) ch.write(input);
        if (opts.signal?.aborted) onAbort();
      };
      try {
        this.client.exec(wrapped, onChannel);
      } catch (err) {
        opened();
        // ssh2 throws "Not connected" synchronously once the socket is gone.
        this.#lost ??= err as Error;
        reject(new ConnectionError(`${this.s.hostName}: ssh connection lost: ${(err as Error).message}`));
      }
    });
  }

  /**
   * Starts a held command: a channel of its own, without the lifeline every `exec` gets, so its
   * channel closing (the runner gone, the connection lost) is something it reacts to rather
   * than the end of it. It takes one of the connection's channel slots for as long as it lives.
   */
  hold(line: string): Promise<HeldCommand> {
    if (this.#lost || this.#closed) {
      const why = this.#lost?.message ?? 'closed by pgrunbook';
      return Promise.reject(new ConnectionError(`${this.s.hostName}: ssh connection lost: ${why}`));
    }
    return new Promise((resolve, reject) => {
      void this.#channels.run(
        () =>
          new Promise<void>((release) => {
            try {
              this.client.exec(line, (err, ch) => {
                if (err) {
                  release();
                  reject(
                    new ConnectionError(`${this.s.hostName}: cannot open an ssh channel: ${err.message}`),
                  );
                  return;
                }
                let code: number | null = null;
                let sig: string | null = null;
                const parts = heldCommand({ write: (t) => ch.write(t), end: () => ch.end() });
                ch.on('data', (c: Buffer) => parts.stdout(c.toString('utf8')));
                ch.stderr.on('data', (c: Buffer) => parts.stderr(c.toString('utf8')));
                ch.on('exit', (c: number | null, s?: string) => {
                  code = c;
                  sig = s ?? null;
                });
                ch.on('close', () => {
                  parts.ended(code, sig);
                  release();
                });
                resolve(parts.command);
              });
            } catch (err) {
              this.#lost ??= err as Error;
              release();
              reject(
                new ConnectionError(`${this.s.hostName}: ssh connection lost: ${(err as Error).message}`),
              );
            }
          }),
      );
    });
  }

  /**
   * Cancels one running command: waits (bounded) for its PID if the abort came first, kills its
   * process group on the host (TERM, then KILL after the grace period), and only closes the
   * channel locally if the command still has not ended. Never rejects.
   */
  async #cancel(
    ch: ClientChannel,
    pidKnown: Promise<number | undefined>,
    closed: Promise<void>,
    giveUp: () => void,
    killSent: () => void,
  ): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const pid = await Promise.race([
      pidKnown,
      closed.then(() => 'closed' as const),
      new Promise<'timeout'>((r) => {
        timer = setTimeout(() => r('timeout'), PID_WAIT_MS);
      }),
    ]);
    clearTimeout(timer);
    if (pid === 'closed') return;
    if (typeof pid === 'number') {
      const sent = await this.#killGroup(pid);
      killSent();
      if (sent && (await within(closed, KILL_GRACE_MS + CLOSE_WAIT_MS))) return;
    }
    // No PID, no kill channel, or the group outlived SIGKILL (e.g. it runs as another user).
    try {
      ch.close();
    } catch {
      // the connection is gone
    }
    // sshd answers a close only once the command's output is closed: do not wait for ever.
    if (!(await within(closed, CLOSE_WAIT_MS))) giveUp();
  }

  /**
   * Sends the kill script over a fresh channel; resolves whether it ran. Never throws: on a lost
   * connection ssh2 throws "Not connected" synchronously, and a full server (MaxSessions) refuses
   * the channel, which is retried until the PID deadline.
   */
  #killGroup(pid: number): Promise<boolean> {
    const deadline = Date.now() + PID_WAIT_MS;
    const once = (): Promise<boolean | 'retry'> =>
      new Promise((resolve) => {
        try {
          this.client.exec(killScript(pid), (err, ch) => {
            if (err) return resolve(this.#lost ? false : 'retry');
            ch.on('close', () => resolve(true));
            ch.resume();
            ch.stderr.resume();
            ch.end();
          });
        } catch {
          resolve(false);
        }
      });
    // The deadline was set on entry: time spent waiting for a kill slot counts against it. No
    // signal: this runs because of an abort.
    return this.#killSlots.run(() =>
      poll(
        async () => {
          const r = await once();
          return r === 'retry' && !this.#lost ? notYet() : done(r === true);
        },
        { timeoutMs: deadline - Date.now(), intervalMs: 100 },
      ).catch((err) => {
        if (err instanceof PollTimeout) return false;
        throw err;
      }),
    );
  }

  async close(): Promise<void> {
    // Let cancellations reach the host before hanging up: the kill is sent only once the PID is
    // known, and after that the host enforces the TERM → KILL escalation on its own. A channel
    // still opening may carry an aborted command that the server is already starting.
    if (this.#opening.size > 0) await within(Promise.all(this.#opening), this.s.connectTimeoutMs);
    if (this.#pendingCancels.size > 0) {
      await within(Promise.all(this.#pendingCancels), PID_WAIT_MS + CLOSE_WAIT_MS);
    }
    this.#closed = true;
    this.client.end();
  }
}

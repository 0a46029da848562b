// pgbench as the clients of a test: connected the whole time (no reconnect), every transaction
// logged with its latency (-l), failures read from its own stderr. pgbench has no clean stop on a
// signal, so it runs with a long -T and is killed: what its log buffers held at that moment (the
// last fraction of a second) is lost, which is after anything a test measures.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pgBinDir } from './postgres.js';

export interface PgbenchResult {
  /** transactions logged */
  transactions: number;
  /** the longest transaction latency, ms */
  maxLatencyMs: number;
  /** lines of pgbench's stderr that report a failed transaction or an aborted client */
  failures: string[];
  /** clients that logged a transaction in the last `tailMs` before the stop (all of them: none gave up) */
  clientsAtEnd: number;
  /**
   * The longest latency, ms, of the transactions that ended between `from` and `to` (epoch ms):
   * what the clients lived through in one phase of a longer run (a switchover within a build).
   */
  maxLatencyBetween(from: number, to: number): number;
}

export interface PgbenchLoad {
  stop(tailMs?: number): Promise<PgbenchResult>;
}

export function startPgbench(
  target: { host: string; port: number; user: string; password: string },
  clients = 4,
): PgbenchLoad {
  const dir = mkdtempSync(join(tmpdir(), 'pgrb-pgbench-'));
  const child: ChildProcess = spawn(
    join(pgBinDir(15), 'pgbench'),
    [
      '-h',
      target.host,
      '-p',
      String(target.port),
      '-U',
      target.user,
      '-n',
      '-c',
      String(clients),
      '-j',
      '2',
      '-T',
      '3600',
      '-l',
      `--log-prefix=${join(dir, 'tx')}`,
      'postgres',
    ],
    {
      env: { ...process.env, PGPASSWORD: target.password, PGCONNECT_TIMEOUT: '10' },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (c: string) => {
    stderr += c;
  });
  const exited = new Promise<void>((res) => child.once('exit', () => res()));
  return {
    stop: async (tailMs = 3000) => {
      const stoppedAt = Date.now();
      child.kill('SIGKILL');
      await exited;
      let transactions = 0;
      let maxUs = 0;
      // [ended at (epoch ms), latency (ms)] of every transaction.
      const ends: [number, number][] = [];
      const lastAt = new Map<string, number>();
      for (const f of readdirSync(dir)) {
        for (const line of readFileSync(join(dir, f), 'utf8').split('\n')) {
          // client_id transaction_no time(us) script_no time_epoch time_us
          const [client, , latency, , epoch, us] = line.trim().split(/\s+/);
          if (!client || latency === undefined || epoch === undefined || us === undefined) continue;
          transactions++;
          maxUs = Math.max(maxUs, Number(latency));
          const endedAt = Number(epoch) * 1000 + Number(us) / 1000;
          ends.push([endedAt, Number(latency) / 1000]);
          lastAt.set(client, Math.max(lastAt.get(client) ?? 0, endedAt));
        }
      }
      rmSync(dir, { recursive: true, force: true });
      const failures = stderr.split('\n').filter((l) => /abort|error|fail/i.test(l));
      const clientsAtEnd = [...lastAt.values()].filter((t) => t >= stoppedAt - tailMs).length;
      const maxLatencyBetween = (from: number, to: number) =>
        ends.reduce((m, [at, ms]) => (at >= from && at <= to ? Math.max(m, ms) : m), 0);
      return { transactions, maxLatencyMs: maxUs / 1000, failures, clientsAtEnd, maxLatencyBetween };
    },
  };
}

/** pgbench -i (scale `scale`) on the target: the tables startPgbench's clients write to. */
export async function initPgbench(
  target: { host: string; port: number; user: string; password: string },
  scale = 1,
): Promise<void> {
  const child = spawn(
    join(pgBinDir(15), 'pgbench'),
    [
      '-i',
      '-q',
      '-s',
      String(scale),
      '-h',
      target.host,
      '-p',
      String(target.port),
      '-U',
      target.user,
      'postgres',
    ],
    { env: { ...process.env, PGPASSWORD: target.password }, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let err = '';
  child.stderr?.on('data', (c: Buffer) => {
    err += c.toString();
  });
  const code = await new Promise<number | null>((res) => child.on('close', res));
  if (code !== 0) throw new Error(`pgbench -i exited ${code}: ${err.slice(-500)}`);
}

// An independent writer: one row every interval into whichever member of a cluster takes writes,
// as an application would see the cluster. What it measures is the longest gap between two
// successful writes, which is the downtime a client lives through, whatever the runner reports.
import pg from 'pg';

export interface ProbeResult {
  /** successful writes */
  ok: number;
  /** attempts that failed (refused, read-only, timed out) */
  failed: number;
  /** longest time between two successful writes, ms */
  longestGapMs: number;
  /** when that gap started and ended (epoch ms) */
  gapFrom: number;
  gapTo: number;
  /** the last write was older than a second when the probe stopped: writes never came back */
  notResumed: boolean;
}

export interface WriteProbe {
  stop(): Promise<ProbeResult>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// Starts writing into `table` (which must exist: id bigserial, at timestamptz default now()) on
// the first member that accepts it, moving on to the next member whenever a write fails.
export function startWriteProbe(members: pg.ClientConfig[], table: string, intervalMs = 100): WriteProbe {
  if (!/^[a-z_][a-z0-9_]*$/.test(table)) throw new Error(`write probe: bad table name ${table}`);
  const successes: number[] = [];
  let failed = 0;
  let stopped = false;
  let client: pg.Client | undefined;
  let next = 0;

  const drop = async () => {
    const c = client;
    client = undefined;
    await c?.end().catch(() => {});
  };
  const attempt = async (): Promise<boolean> => {
    try {
      if (!client) {
        const cfg = members[next % members.length] as pg.ClientConfig;
        next++;
        const c = new pg.Client({ ...cfg, connectionTimeoutMillis: 500, query_timeout: 1000 });
        c.on('error', () => {}); // a server going away between two writes: the next write fails
        await c.connect();
        client = c;
      }
      await client.query(`insert into ${table} default values`);
      return true;
    } catch {
      await drop();
      return false;
    }
  };
  const loop = (async () => {
    while (!stopped) {
      const t0 = Date.now();
      if (await attempt()) successes.push(Date.now());
      else failed++;
      await sleep(Math.max(0, intervalMs - (Date.now() - t0)));
    }
    await drop();
  })();

  return {
    stop: async () => {
      stopped = true;
      await loop;
      const end = Date.now();
      let longestGapMs = 0;
      let gapFrom = 0;
      let gapTo = 0;
      for (let i = 1; i < successes.length; i++) {
        const g = (successes[i] as number) - (successes[i - 1] as number);
        if (g > longestGapMs)
          [longestGapMs, gapFrom, gapTo] = [g, successes[i - 1] as number, successes[i] as number];
      }
      const last = successes.at(-1) ?? 0;
      const notResumed = end - last > 1000;
      if (notResumed && end - last > longestGapMs) [longestGapMs, gapFrom, gapTo] = [end - last, last, end];
      return { ok: successes.length, failed, longestGapMs, gapFrom, gapTo, notResumed };
    },
  };
}

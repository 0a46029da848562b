// `wait_for`: poll a TCP port, a SQL condition or an HTTP status until it holds or time runs out.
import { connect } from 'node:net';
import { Type } from '@sinclair/typebox';
import { openPg } from '../../connections/pg.js';
import { StepFailure } from '../../errors.js';
import { done, notYet, poll } from '../../util/poll.js';
import { defineStep, type Operation } from '../define.js';

const Params = Type.Object(
  {
    port: Type.Optional(
      Type.Object(
        {
          host: Type.Optional(Type.String({ minLength: 1 })),
          port: Type.Integer({ minimum: 1, maximum: 65535 }),
        },
        { additionalProperties: false },
      ),
    ),
    sql: Type.Optional(
      Type.String({ minLength: 1, description: 'a query whose first column is true when ready' }),
    ),
    http: Type.Optional(
      Type.Object(
        {
          url: Type.String({ pattern: '^https?://' }),
          status: Type.Optional(Type.Integer({ minimum: 100, maximum: 599 })),
        },
        { additionalProperties: false },
      ),
    ),
    timeout: Type.Optional(Type.Number({ minimum: 0, description: 'seconds (default 60)' })),
    interval: Type.Optional(
      Type.Number({ minimum: 0.05, description: 'seconds between attempts (default 1)' }),
    ),
  },
  { additionalProperties: false, minProperties: 1 },
);

const Outputs = Type.Object({
  elapsed: Type.Number({ description: 'seconds until the condition held' }),
  at_ms: Type.Number({ description: 'when it held, in milliseconds since the epoch (for durations)' }),
});

function tcpOpen(host: string, port: number, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port, timeout: ms });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
    s.once('timeout', () => done(false));
  });
}

function describeTarget(
  p: { port?: { host?: string; port: number }; sql?: string; http?: { url: string; status?: number } },
  defaultHost: string,
): string {
  if (p.port) return `TCP ${p.port.host ?? defaultHost}:${p.port.port} accepts connections`;
  if (p.sql) return `SQL returns true: ${p.sql}`;
  if (p.http) return `GET ${p.http.url} returns ${p.http.status ?? 200}`;
  return 'nothing';
}

export default defineStep({
  type: 'wait_for',
  summary: 'Wait until a TCP port accepts connections, a SQL query returns true, or a URL returns a status.',
  params: Params,
  outputs: Outputs,
  mutating: false,
  undoSummary: 'none (reads only)',
  plan(ctx, p) {
    const timeout = p.timeout ?? 60;
    const host = ctx.host.ssh?.host ?? '127.0.0.1';
    const ops: Operation[] = [{ kind: 'wait', what: describeTarget(p, host), timeoutSeconds: timeout }];
    if (p.sql) ops.push({ kind: 'sql', sql: p.sql });
    if (p.http) ops.push({ kind: 'http', method: 'GET', url: p.http.url });
    return { action: 'wait', ops };
  },
  async apply(ctx, p) {
    const set = [p.port, p.sql, p.http].filter((x) => x !== undefined).length;
    if (set !== 1) throw new StepFailure('wait_for needs exactly one of port, sql, http');
    const timeoutMs = (p.timeout ?? 60) * 1000;
    const interval = (p.interval ?? 1) * 1000;
    const host = ctx.host.ssh?.host ?? '127.0.0.1';
    const started = Date.now();
    let last = '';
    return poll(
      async () => {
        let ok = false;
        try {
          if (p.port) ok = await tcpOpen(p.port.host ?? host, p.port.port, Math.min(interval * 2, 5000));
          else if (p.sql) {
            if (!ctx.host.pg)
              throw new StepFailure(`host ${ctx.host.name} has no pg settings in the inventory`);
            // A fresh session per attempt: the server may be restarting between attempts.
            const s = await openPg(ctx.host.name, ctx.host.pg, 'pgrunbook-wait');
            try {
              const r = await s.query(p.sql);
              ok = Object.values(r.rows[0] ?? {})[0] === true;
            } finally {
              await s.close();
            }
          } else if (p.http) {
            const res = await fetch(p.http.url, { signal: AbortSignal.timeout(5000) });
            ok = res.status === (p.http.status ?? 200);
            last = `status ${res.status}`;
          }
        } catch (err) {
          if (err instanceof StepFailure) throw err;
          last = (err as Error).message;
        }
        return ok ? done({ elapsed: (Date.now() - started) / 1000, at_ms: Date.now() }) : notYet();
      },
      {
        timeoutMs,
        intervalMs: interval,
        // Attempts stay `interval` apart and the step never runs past its timeout.
        wholeIntervals: true,
        signal: ctx.signal,
        onTimeout: () =>
          new StepFailure(
            `timed out after ${p.timeout ?? 60}s waiting for ${describeTarget(p, host)}${last ? ` (last: ${last})` : ''}`,
          ),
      },
    );
  },
});

// The test environment's PgBouncer (Debian's package) in front of real PostgreSQL servers: clients
// go through it, PAUSE holds their queries until RESUME (latency, not errors), and a [databases]
// change with RELOAD sends new transactions to another server — what an upgrade's cut-over does.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type PgBouncerServer,
  type PgServer,
  startPgBouncer,
  startPostgres,
} from '../../tools/testenv/index.js';

const PASSWORD = 'bouncer-test-secret';
let a: PgServer;
let b: PgServer;
let bouncer: PgBouncerServer;

beforeAll(async () => {
  [a, b] = await Promise.all([
    startPostgres({ version: 15, password: PASSWORD }),
    startPostgres({ version: 15, password: PASSWORD }),
  ]);
  bouncer = await startPgBouncer({
    databases: { postgres: { host: '127.0.0.1', port: a.port } },
    users: { postgres: PASSWORD, pgb_admin: 'admin-secret' },
    adminUsers: ['pgb_admin'],
  });
}, 60_000);
afterAll(async () => {
  await bouncer?.stop();
  await Promise.all([a?.stop(), b?.stop()]);
});

function client(): pg.Client {
  return new pg.Client({
    host: bouncer.host,
    port: bouncer.port,
    user: 'postgres',
    password: PASSWORD,
    database: 'postgres',
  });
}

async function serverPort(c: pg.Client): Promise<number> {
  return Number((await c.query("select current_setting('port') as p")).rows[0].p);
}

describe('the test PgBouncer', () => {
  it('pools to the configured server, holds queries while paused, and follows a reload to another server', async () => {
    const c = client();
    await c.connect();
    try {
      expect(await serverPort(c)).toBe(a.port);
      await bouncer.admin('PAUSE');
      const started = Date.now();
      const held = c.query('select 1 as one');
      await new Promise((r) => setTimeout(r, 700));
      // Still waiting: the query is queued in PgBouncer, not failed.
      const settled = await Promise.race([held.then(() => 'done'), Promise.resolve('waiting')]);
      expect(settled).toBe('waiting');
      await bouncer.setDatabases({ postgres: { host: '127.0.0.1', port: b.port } });
      await bouncer.admin('RESUME');
      expect((await held).rows[0].one).toBe(1);
      expect(Date.now() - started).toBeGreaterThanOrEqual(700);
      // The same client connection, new server: transaction pooling picks a server per transaction.
      expect(await serverPort(c)).toBe(b.port);
      const pools = await bouncer.admin('SHOW DATABASES');
      expect(pools.find((r) => r.name === 'postgres')?.port).toBe(b.port);
    } finally {
      await c.end();
    }
  }, 30_000);
});

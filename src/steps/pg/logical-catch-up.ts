// `pg.logical_catch_up`: on the publisher, wait until the subscriber has confirmed everything
// written so far: the slot's confirmed_flush_lsn reaches the publisher's current WAL position,
// read once when the step starts. At a blue-green switchover (writes paused) this is the proof that
// the other side holds every committed change before anything is disabled or repointed. Reads
// only; it fails when the timeout passes, naming how far behind the slot still is.
import { Type } from '@sinclair/typebox';
import { StepFailure } from '../../errors.js';
import { defineStep } from '../define.js';
import { DatabaseParam, Name, openOn } from './logical.js';

const Params = Type.Object(
  {
    slot: Name('the logical slot the subscriber reads'),
    database: DatabaseParam,
    timeout: Type.Optional(Type.Number({ minimum: 0, description: 'seconds (default 30)' })),
    interval: Type.Optional(
      Type.Number({ minimum: 0.05, description: 'seconds between looks (default 0.2)' }),
    ),
  },
  { additionalProperties: false },
);

const Outputs = Type.Object({
  target_lsn: Type.String({ description: "the publisher's WAL position when the step started" }),
  confirmed_lsn: Type.String({ description: 'what the slot had confirmed when the step ended' }),
  seconds: Type.Number(),
});

const CURRENT_SQL = 'select pg_current_wal_lsn()::text as lsn';
const SLOT_SQL = `select confirmed_flush_lsn::text as lsn, confirmed_flush_lsn >= $2::pg_lsn as caught_up,
  pg_wal_lsn_diff($2::pg_lsn, confirmed_flush_lsn)::bigint as behind from pg_replication_slots where slot_name = $1`;

export default defineStep({
  type: 'pg.logical_catch_up',
  summary:
    "On the publisher, wait until a logical slot's subscriber has confirmed everything written up to now (pg_current_wal_lsn).",
  params: Params,
  outputs: Outputs,
  mutating: false,
  undoSummary: 'none (reads only)',
  plan(_ctx, p) {
    return {
      action: `wait up to ${p.timeout ?? 30}s until slot ${p.slot} has confirmed the current WAL position`,
      ops: [
        { kind: 'sql', sql: CURRENT_SQL },
        { kind: 'sql', sql: SLOT_SQL.replace('$1', `'${p.slot}'`).replaceAll('$2', '<that position>') },
      ],
    };
  },
  async apply(ctx, p) {
    const s = await openOn(ctx.host, p.database);
    try {
      const started = Date.now();
      const target = String((await s.query(CURRENT_SQL)).rows[0]?.lsn);
      const deadline = started + (p.timeout ?? 30) * 1000;
      for (;;) {
        const row = (await s.query(SLOT_SQL, [p.slot, target])).rows[0];
        if (!row) throw new StepFailure(`replication slot ${p.slot} does not exist`);
        if (row.caught_up === true) {
          const seconds = (Date.now() - started) / 1000;
          ctx.log(`slot ${p.slot} confirmed ${row.lsn}, at or past ${target}, after ${seconds.toFixed(2)} s`);
          return { target_lsn: target, confirmed_lsn: String(row.lsn), seconds };
        }
        if (Date.now() >= deadline)
          throw new StepFailure(
            `slot ${p.slot} has confirmed ${row.lsn ?? 'nothing'}, ${row.behind ?? '?'} bytes short of ${target}, after ${p.timeout ?? 30} s: is the subscription enabled and its apply worker running?`,
          );
        await new Promise((r) => setTimeout(r, (p.interval ?? 0.2) * 1000));
        if (ctx.signal?.aborted) throw new StepFailure('interrupted');
      }
    } finally {
      await s.close();
    }
  },
});

// `pg.copy_sequences`: logical replication does not carry sequences, so at a blue-green switchover
// (writes paused) each sequence of the publisher is set on this host, the subscriber, to the
// publisher's last value plus a margin: the next value handed out on the new side is past every
// value the old side handed out, even one taken a moment before the pause. Sequences the
// publisher never used are left alone; one missing here is refused before anything is set. The
// undo sets back the values this host had.
import { Type } from '@sinclair/typebox';
import { openPg } from '../../connections/pg.js';
import { StepFailure } from '../../errors.js';
import { defineStep } from '../define.js';
import { DatabaseParam, openOn, settingsFor, sourceHost } from './logical.js';

const Params = Type.Object(
  {
    source: Type.String({
      minLength: 1,
      description: 'the inventory host whose sequences are read (the publisher)',
    }),
    database: DatabaseParam,
    source_database: Type.Optional(
      Type.String({ minLength: 1, description: "the publisher's database (default: this step's database)" }),
    ),
    margin: Type.Optional(
      Type.Integer({
        minimum: 0,
        description: 'added to each value, in increments of the sequence (default 1000)',
      }),
    ),
  },
  { additionalProperties: false },
);

const Copied = Type.Object({
  name: Type.String(),
  source_value: Type.String(),
  set_to: Type.String(),
  previous: Type.Union([Type.String(), Type.Null()], {
    description: "this host's last value before (null: never used)",
  }),
});

const Outputs = Type.Object({
  sequences: Type.Array(Copied),
  skipped: Type.Array(Type.String(), { description: 'never used on the publisher: left as they are' }),
});

const SEQUENCES_SQL = `select format('%I.%I', schemaname, sequencename) as name, last_value::text as last_value,
  increment_by::text as increment_by from pg_sequences order by 1`;
// numeric: last_value + margin × increment can pass bigint's range only by a wrong margin, which
// setval then refuses with the server's own message.
const SETVAL_SQL =
  'select setval($1::regclass, ($2::numeric + $3::numeric * $4::numeric)::bigint, true)::text as v';
const RESTORE_SQL = 'select setval($1::regclass, $2::bigint, $3::boolean)';
const STATE_SQL = 'select last_value::text as last_value, is_called from ';

export default defineStep({
  type: 'pg.copy_sequences',
  summary:
    "Set each sequence to the publisher's last value plus a margin (logical replication does not carry sequences), at a blue-green switchover.",
  params: Params,
  outputs: Outputs,
  peerParams: ['source'],
  mutating: true,
  marksChanges: true,
  undoSummary: 'sets each sequence back to the value this host had before',
  plan(ctx, p) {
    // Known before the run: the publisher must be an inventory host with pg settings.
    settingsFor(sourceHost(ctx, p.source), p.source_database ?? p.database);
    const margin = p.margin ?? 1000;
    return {
      action: `copy sequence values from ${p.source} (plus ${margin} increments)`,
      ops: [
        { kind: 'note', text: `on ${p.source}:` },
        { kind: 'sql', sql: SEQUENCES_SQL },
        {
          kind: 'note',
          text: `here (${ctx.host.name}), for each sequence the publisher used (refused if one is missing here):`,
        },
        { kind: 'sql', sql: SETVAL_SQL.replace('$3', String(margin)) },
      ],
      undo: {
        action: 'set each sequence back to its previous value',
        ops: [{ kind: 'sql', sql: RESTORE_SQL }],
      },
    };
  },
  async apply(ctx, p) {
    const src = sourceHost(ctx, p.source);
    const margin = p.margin ?? 1000;
    const from = await openPg(src.name, settingsFor(src, p.source_database ?? p.database));
    let theirs: Record<string, unknown>[];
    try {
      theirs = (await from.query(SEQUENCES_SQL)).rows;
    } finally {
      await from.close();
    }
    const s = await openOn(ctx.host, p.database);
    try {
      const ours = new Set((await s.query(SEQUENCES_SQL)).rows.map((r) => String(r.name)));
      const used = theirs.filter((r) => r.last_value !== null);
      const skipped = theirs.filter((r) => r.last_value === null).map((r) => String(r.name));
      const missing = used.map((r) => String(r.name)).filter((n) => !ours.has(n));
      if (missing.length)
        throw new StepFailure(`sequences of ${p.source} missing on ${ctx.host.name}: ${missing.join(', ')}`);
      const sequences: (typeof Copied.static)[] = [];
      for (const r of used) {
        const name = String(r.name);
        // The name comes from pg_sequences, quoted there by format('%I.%I').
        const before = (await s.query(`${STATE_SQL}${name}`)).rows[0]!;
        ctx.changing();
        const v = String(
          (await s.query(SETVAL_SQL, [name, String(r.last_value), String(margin), String(r.increment_by)]))
            .rows[0]?.v,
        );
        sequences.push({
          name,
          source_value: String(r.last_value),
          set_to: v,
          previous: before.is_called === true ? String(before.last_value) : null,
        });
        ctx.log(`${name}: ${p.source} at ${r.last_value}; set to ${v} here`);
      }
      if (skipped.length) ctx.log(`never used on ${p.source}, left as they are: ${skipped.join(', ')}`);
      return { sequences, skipped };
    } finally {
      await s.close();
    }
  },
  async undo(ctx, p, out) {
    const s = await openOn(ctx.host, p.database);
    try {
      for (const q of out.sequences) {
        // Never used before: back to its start, uncalled (the next nextval returns the start).
        if (q.previous === null) {
          await s.query(
            `select setval($1::text::regclass, (select start_value from pg_sequences where format('%I.%I', schemaname, sequencename) = $1::text), false)`,
            [q.name],
          );
        } else await s.query(RESTORE_SQL, [q.name, q.previous, true]);
      }
    } finally {
      await s.close();
    }
  },
});

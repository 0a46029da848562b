// `patroni.ignore_slots`: slots Patroni must leave alone. A Patroni leader drops every replication
// slot it does not manage (its members' and the configured permanent slots) on its next loop,
// unless the dynamic configuration's `ignore_slots` matches it: a logical slot made for a
// blue-green upgrade, or the physical slot keeping WAL for a copy, would be gone within seconds.
// The entries are added to the list (PATCH replaces a list whole, so the current one is read
// first) and the undo takes out only those this step added.
import { Type } from '@sinclair/typebox';
import { StepFailure } from '../../errors.js';
import { defineStep } from '../define.js';
import { NAME_PATTERN } from '../pg/logical.js';
import { clientOf } from './members.js';

const Slot = Type.Object(
  {
    name: Type.String({ pattern: NAME_PATTERN }),
    type: Type.Optional(Type.Union([Type.Literal('logical'), Type.Literal('physical')])),
    database: Type.Optional(Type.String({ minLength: 1 })),
    plugin: Type.Optional(Type.String({ minLength: 1 })),
  },
  { additionalProperties: false },
);

const Params = Type.Object(
  {
    slots: Type.Array(Slot, {
      minItems: 1,
      description: 'matchers, as Patroni reads them (name and type at least)',
    }),
    state: Type.Optional(
      Type.Union([Type.Literal('present'), Type.Literal('absent')], {
        description: 'present (default): added where missing; absent: taken out',
      }),
    ),
  },
  { additionalProperties: false },
);

const Outputs = Type.Object({
  changed: Type.Array(Type.String(), { description: 'the slot names added (or taken out)' }),
});

type SlotMatcher = typeof Slot.static;

const same = (a: Record<string, unknown>, b: SlotMatcher) =>
  a.name === b.name &&
  (a.type ?? null) === (b.type ?? null) &&
  (a.database ?? null) === (b.database ?? null) &&
  (a.plugin ?? null) === (b.plugin ?? null);

async function current(ctx: Parameters<typeof clientOf>[0], signal?: AbortSignal) {
  const cfg = await clientOf(ctx).json('/config', signal);
  const list = cfg.ignore_slots;
  if (list !== undefined && list !== null && !Array.isArray(list))
    throw new StepFailure(`Patroni's ignore_slots is not a list: ${JSON.stringify(list).slice(0, 200)}`);
  return (list ?? []) as Record<string, unknown>[];
}

async function write(
  ctx: Parameters<typeof clientOf>[0],
  list: Record<string, unknown>[],
  signal?: AbortSignal,
) {
  await clientOf(ctx).patchConfig({ ignore_slots: list.length ? list : null }, signal);
}

export default defineStep({
  type: 'patroni.ignore_slots',
  summary: "Add slots to (or take them out of) Patroni's ignore_slots, so that Patroni does not drop them.",
  params: Params,
  outputs: Outputs,
  mutating: true,
  marksChanges: true,
  undoSummary: 'present: takes out the entries it added; absent: none',
  plan(ctx, p) {
    const url = ctx.host.patroni?.url ?? '(patroni.url missing)';
    const absent = p.state === 'absent';
    const names = p.slots.map((s) => s.name).join(', ');
    return {
      action: `${absent ? 'take' : 'add'} ${names} ${absent ? 'out of' : 'to'} Patroni's ignore_slots`,
      ops: [
        { kind: 'http', method: 'GET', url: `${url}/config` },
        {
          kind: 'http',
          method: 'PATCH',
          url: `${url}/config`,
          body: {
            ignore_slots: absent ? `[the list without ${names}]` : ['[the list as it is]', ...p.slots],
          },
        },
      ],
      undo: absent
        ? undefined
        : {
            action: `take the entries it added out of ignore_slots`,
            ops: [
              {
                kind: 'http',
                method: 'PATCH',
                url: `${url}/config`,
                body: { ignore_slots: '[the list without them]' },
              },
            ],
          },
    };
  },
  async apply(ctx, p) {
    const list = await current(ctx, ctx.signal);
    if (p.state === 'absent') {
      const keep = list.filter((e) => !p.slots.some((s) => same(e, s)));
      const gone = p.slots.filter((s) => list.some((e) => same(e, s))).map((s) => s.name);
      if (gone.length) {
        ctx.changing();
        await write(ctx, keep, ctx.signal);
      }
      ctx.log(
        gone.length ? `ignore_slots: took out ${gone.join(', ')}` : 'ignore_slots: none of them was there',
      );
      return { changed: gone };
    }
    const add = p.slots.filter((s) => !list.some((e) => same(e, s)));
    if (add.length) {
      ctx.changing();
      await write(ctx, [...list, ...add], ctx.signal);
    }
    ctx.log(
      add.length
        ? `ignore_slots: added ${add.map((s) => s.name).join(', ')} (Patroni leaves them alone)`
        : 'ignore_slots: already there',
    );
    return { changed: add.map((s) => s.name) };
  },
  async undo(ctx, p, out) {
    if (p.state === 'absent' || out.changed.length === 0) return;
    const list = await current(ctx, ctx.signal);
    const added = p.slots.filter((s) => out.changed.includes(s.name));
    await write(
      ctx,
      list.filter((e) => !added.some((s) => same(e, s))),
      ctx.signal,
    );
  },
});

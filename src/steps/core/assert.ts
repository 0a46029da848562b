// `assert`: stop the run unless every expression holds.
import { Type } from '@sinclair/typebox';
import { StepFailure } from '../../errors.js';
import { truthy, Unknown } from '../../playbook/expressions.js';
import { defineStep } from '../define.js';

const Params = Type.Object(
  {
    that: Type.Union(
      [Type.String({ minLength: 1 }), Type.Array(Type.String({ minLength: 1 }), { minItems: 1 })],
      { description: 'an expression or a list of expressions (no {{ }})' },
    ),
    msg: Type.Optional(Type.String({ description: 'message when an expression is false' })),
  },
  { additionalProperties: false },
);

const Outputs = Type.Object({ passed: Type.Boolean() });

const list = (that: string | string[]) => (typeof that === 'string' ? [that] : that);

export default defineStep({
  type: 'assert',
  summary: 'Fail unless every expression over facts and registered values is true.',
  params: Params,
  outputs: Outputs,
  mutating: false,
  shorthand: 'that',
  rawParams: ['that'],
  undoSummary: 'none (reads only)',
  plan(ctx, p) {
    const ops = list(p.that).map((e) => {
      const v = ctx.evaluate(e);
      const verdict =
        v instanceof Unknown
          ? 'known after apply'
          : truthy(v)
            ? 'holds now'
            : 'FALSE NOW: the run would stop here';
      return { kind: 'note' as const, text: `check ${e}  (${verdict})` };
    });
    return { action: 'check assertions', ops };
  },
  async apply(ctx, p) {
    const failed = list(p.that).filter((e) => !truthy(ctx.evaluate(e)));
    if (failed.length > 0) {
      throw new StepFailure(`${p.msg ? `${p.msg} — ` : ''}assertion failed: ${failed.join('; ')}`);
    }
    return { passed: true };
  },
});

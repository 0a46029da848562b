// `set_fact`: define host variables for later steps.
import { Type } from '@sinclair/typebox';
import { stringify } from '../../playbook/expressions.js';
import { defineStep } from '../define.js';

// Names must be usable in templates, so they are identifiers.
const Params = Type.Object(
  {},
  { additionalProperties: false, patternProperties: { '^[A-Za-z_][A-Za-z0-9_]*$': {} }, minProperties: 1 },
);

export default defineStep({
  type: 'set_fact',
  summary: 'Set host variables from literal values or templates.',
  params: Params,
  outputs: Type.Record(Type.String(), Type.Unknown()),
  mutating: false,
  setsFacts: true,
  undoSummary: 'none (changes nothing on the host)',
  plan(_ctx, p) {
    return {
      action: 'set variables',
      ops: Object.entries(p as Record<string, unknown>).map(([k, v]) => ({
        kind: 'note' as const,
        text: `${k} = ${typeof v === 'string' ? v : stringify(v)}`,
      })),
    };
  },
  async apply(_ctx, p) {
    return { ...(p as Record<string, unknown>) };
  },
});

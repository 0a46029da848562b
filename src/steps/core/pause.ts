// `pause`: wait a number of seconds, or until the operator answers a prompt.
import { setTimeout as sleep } from 'node:timers/promises';
import { Type } from '@sinclair/typebox';
import { defineStep } from '../define.js';

const Params = Type.Object(
  {
    seconds: Type.Optional(Type.Number({ minimum: 0 })),
    prompt: Type.Optional(
      Type.String({ minLength: 1, description: 'a question for the operator; the answer is registered' }),
    ),
  },
  { additionalProperties: false, minProperties: 1 },
);

const Outputs = Type.Object({ answer: Type.Optional(Type.String()) });

export default defineStep({
  type: 'pause',
  summary: 'Wait a number of seconds, or show a prompt and wait for the operator (answer registered).',
  params: Params,
  outputs: Outputs,
  mutating: false,
  undoSummary: 'none',
  interactive: (p) => p.prompt !== undefined,
  plan(_ctx, p) {
    const text = p.prompt ? `prompt the operator: ${p.prompt}` : `sleep ${p.seconds}s`;
    return { action: p.prompt ? 'prompt' : 'sleep', ops: [{ kind: 'note', text }] };
  },
  async apply(ctx, p) {
    if (p.prompt) return { answer: await ctx.prompt(p.prompt) };
    await sleep((p.seconds ?? 0) * 1000, undefined, { signal: ctx.signal });
    return {};
  },
});

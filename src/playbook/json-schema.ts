// Generates schemas/playbook.schema.json from the step registry, for editors (yaml-language-server).
import { InventorySchema } from '../inventory/schema.js';
import { registry } from '../steps/registry.js';
import { BlockSchema, CommonSchema, PlaySchema } from './model.js';
import { VariablesSchema } from './variables.js';

const clean = (s: unknown): unknown => JSON.parse(JSON.stringify(s));

const TEMPLATE = {
  type: 'string',
  pattern: '\\{\\{',
  description: 'a {{ template }}, checked once rendered',
};

/** Lets any constrained value also be a `{{ template }}`, as validation does. */
function allowTemplates(node: unknown): unknown {
  if (!node || typeof node !== 'object' || Array.isArray(node)) return node;
  const s = { ...(node as Record<string, unknown>) };
  if (s.properties) {
    s.properties = Object.fromEntries(
      Object.entries(s.properties as object).map(([k, v]) => [k, allowTemplates(v)]),
    );
  }
  if (s.items) s.items = allowTemplates(s.items);
  if (Array.isArray(s.anyOf)) s.anyOf = (s.anyOf as unknown[]).map(allowTemplates);
  const constrained =
    s.type !== 'string' || s.pattern !== undefined || s.enum !== undefined || s.const !== undefined;
  if (!constrained || s.anyOf) return s;
  return { anyOf: [s, TEMPLATE] };
}

/** The playbook schema: a list of plays whose steps are one of the registered step types. */
export function playbookJsonSchema(): object {
  const common = (clean(CommonSchema) as { properties: Record<string, unknown> }).properties;
  const stepRef = { $ref: '#/$defs/step' };
  const stepVariants = [...registry.values()].map((def) => {
    const params = allowTemplates(clean(def.params)) as object;
    const value = def.shorthand
      ? {
          anyOf: [
            params,
            (
              (params as { anyOf?: { properties: Record<string, unknown> }[] }).anyOf?.[0] ??
              (params as { properties: Record<string, unknown> })
            ).properties[def.shorthand],
          ],
        }
      : params;
    return {
      type: 'object',
      description: def.summary,
      properties: { ...common, [def.type]: { ...value, description: def.summary } },
      required: [def.type],
      additionalProperties: false,
    };
  });
  const block = clean(BlockSchema) as { properties: Record<string, object> };
  for (const k of ['block', 'rescue', 'always']) block.properties[k] = { type: 'array', items: stepRef };
  const play = clean(PlaySchema) as { properties: Record<string, object> };
  for (const k of ['steps', 'rescue', 'always']) play.properties[k] = { type: 'array', items: stepRef };
  const plays = { type: 'array', minItems: 1, items: { $ref: '#/$defs/play' } };
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: 'https://pgrunbook.dev/schemas/playbook.schema.json',
    title: 'pgrunbook playbook',
    description:
      'A list of plays, or a mapping of variables: (declarations) and plays:. Generated from the step definitions: do not edit.',
    anyOf: [
      plays,
      {
        type: 'object',
        properties: { variables: clean(VariablesSchema), plays },
        required: ['plays'],
        additionalProperties: false,
      },
    ],
    $defs: { play, block, step: { anyOf: [{ $ref: '#/$defs/block' }, ...stepVariants] } },
  };
}

/** The inventory schema. */
export function inventoryJsonSchema(): object {
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    description: 'A pgrunbook inventory. Generated: do not edit.',
    ...(clean(InventorySchema) as object),
  };
}

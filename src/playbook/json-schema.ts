// Generates schemas/playbook.schema.json from the step registry, for editors (yaml-language-server).
import { InventorySchema } from '../inventory/schema.js';
import { registry } from '../steps/registry.js';
import { BlockSchema, CommonSchema, PlaySchema } from './model.js';

const clean = (s: unknown): unknown => JSON.parse(JSON.stringify(s));

/** The playbook schema: a list of plays whose steps are one of the registered step types. */
export function playbookJsonSchema(): object {
  const common = (clean(CommonSchema) as { properties: Record<string, unknown> }).properties;
  const stepRef = { $ref: '#/$defs/step' };
  const stepVariants = [...registry.values()].map((def) => {
    const params = clean(def.params) as object;
    const value = def.shorthand
      ? { anyOf: [params, (params as { properties: Record<string, unknown> }).properties[def.shorthand]] }
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
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: 'https://pgrunbook.dev/schemas/playbook.schema.json',
    title: 'pgrunbook playbook',
    description: 'A list of plays. Generated from the step definitions: do not edit.',
    type: 'array',
    minItems: 1,
    items: { $ref: '#/$defs/play' },
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

// Playbook variable declarations (`variables:`): what a playbook needs from the inventory or -e,
// with a type, a description and whether it is required or has a default. Validation reads them:
// a missing or mistyped value is reported where it is declared and where the inventory sets it,
// before anything runs; a name a playbook uses but does not declare is refused.
import { type Static, Type } from '@sinclair/typebox';

/** The types a declared variable can have. */
export const VARIABLE_TYPES = [
  'string',
  'integer',
  'number',
  'boolean',
  'path',
  'host',
  'list',
  'mapping',
] as const;
export type VariableType = (typeof VARIABLE_TYPES)[number];

/** One declaration, as written under `variables:`. */
export const VariableDeclSchema = Type.Object(
  {
    type: Type.Union(
      VARIABLE_TYPES.map((t) => Type.Literal(t)),
      {
        description:
          'string, integer, number, boolean, path (absolute), host (an inventory host name), list or mapping',
      },
    ),
    description: Type.String({ minLength: 1, description: 'what it is for, one line' }),
    required: Type.Optional(
      Type.Boolean({ description: 'true: every host it applies to must have it (inventory or -e)' }),
    ),
    default: Type.Optional(
      Type.Unknown({ description: 'the value when neither the inventory nor -e sets one' }),
    ),
    choices: Type.Optional(
      Type.Array(Type.Union([Type.String(), Type.Number(), Type.Boolean()]), {
        minItems: 1,
        description: 'the only values allowed',
      }),
    ),
    hosts: Type.Optional(
      Type.String({
        minLength: 1,
        description: 'a host pattern: the hosts it applies to (default: every host the playbook runs on)',
      }),
    ),
  },
  { additionalProperties: false },
);
export type VariableDecl = Static<typeof VariableDeclSchema>;

/** `variables:`: name → declaration. */
export const VariablesSchema = Type.Record(
  Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_]*$' }),
  VariableDeclSchema,
  {
    description: 'the variables the playbook reads from the inventory or -e, declared',
  },
);

/** Why `value` is not of `type` (or not one of `choices`), or undefined when it is. */
export function typeProblem(
  decl: Pick<VariableDecl, 'type' | 'choices'>,
  value: unknown,
  hostNames?: ReadonlySet<string>,
): string | undefined {
  const got = describeValue(value);
  const bad = (what: string) => `expected ${what}, got ${got}`;
  switch (decl.type) {
    case 'string':
      if (typeof value !== 'string') return bad('a string');
      break;
    case 'path':
      if (typeof value !== 'string' || !value.startsWith('/')) return bad('an absolute path');
      break;
    case 'host':
      if (typeof value !== 'string' || value === '') return bad('an inventory host name');
      if (hostNames && !hostNames.has(value))
        return `expected an inventory host name, got "${value}", which is no host of the inventory`;
      break;
    case 'integer':
      if (typeof value !== 'number' || !Number.isInteger(value)) return bad('an integer');
      break;
    case 'number':
      if (typeof value !== 'number' || !Number.isFinite(value)) return bad('a number');
      break;
    case 'boolean':
      if (typeof value !== 'boolean') return bad('true or false');
      break;
    case 'list':
      if (!Array.isArray(value)) return bad('a list');
      break;
    case 'mapping':
      if (!value || typeof value !== 'object' || Array.isArray(value)) return bad('a mapping');
      break;
  }
  if (decl.choices && !decl.choices.some((c) => c === value))
    return `expected one of ${decl.choices.map((c) => JSON.stringify(c)).join(', ')}, got ${got}`;
  return undefined;
}

function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return `"${v.length > 60 ? `${v.slice(0, 60)}…` : v}"`;
  return `${typeof v} ${String(v)}`;
}

/** One line for the declaration's required/default column. */
export function requirement(decl: VariableDecl): string {
  if (decl.required) return 'required';
  if (decl.default !== undefined) return `default ${JSON.stringify(decl.default)}`;
  return 'optional';
}

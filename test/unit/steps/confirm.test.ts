// confirmOf: the approval a step needs, from the playbook's `confirm:` and the step type's own gate.
import { describe, expect, it } from 'vitest';
import { confirmOf } from '../../../src/engine/gates.js';
import type { AnyStep } from '../../../src/steps/define.js';
import { registry } from '../../../src/steps/registry.js';

const type = (name: string): AnyStep => {
  const def = registry.get(name);
  if (!def) throw new Error(`no step type ${name}`);
  return def;
};
const shell = type('shell');
const switchover = type('patroni.switchover');
const removeCluster = type('patroni.remove_cluster');

describe('confirmOf', () => {
  it('the step types with a gate of their own include switchover and remove_cluster, not shell', () => {
    const gated = [...registry.values()].filter((d) => d.confirm).map((d) => d.type);
    expect(gated).toContain('patroni.switchover');
    expect(gated).toContain('patroni.remove_cluster');
    expect(gated).not.toContain('shell');
    expect(gated).not.toContain('patroni.pause');
  });

  it.each<[string, unknown, true | string | undefined]>([
    ['nothing said', undefined, undefined],
    ['confirm: false', false, undefined],
    ['confirm: true', true, true],
    ['confirm: a question', 'Drop the old logs?', 'Drop the old logs?'],
  ])('shell, %s → %j', (_what, confirm, expected) => {
    expect(confirmOf(shell, confirm === undefined ? {} : { confirm }, 'echo hi')).toBe(expected);
  });

  it("a step type's own question, from its raw params", () => {
    expect(confirmOf(switchover, {}, { candidate: 'pg2' })).toBe('Switch the Patroni leader over to pg2?');
    expect(confirmOf(removeCluster, {}, { scope: 'demo' })).toBe(
      'Wipe the DCS state of Patroni cluster demo (patronictl remove)?',
    );
    // Templates are left for the caller to render.
    expect(confirmOf(switchover, {}, { candidate: '{{ next }}' })).toBe(
      'Switch the Patroni leader over to {{ next }}?',
    );
  });

  it("confirm: false cannot lift a step type's own gate", () => {
    expect(confirmOf(switchover, { confirm: false }, { candidate: 'pg2' })).toBe(
      'Switch the Patroni leader over to pg2?',
    );
    expect(confirmOf(removeCluster, { confirm: false }, { scope: 'demo' })).toBe(
      'Wipe the DCS state of Patroni cluster demo (patronictl remove)?',
    );
  });

  it("the playbook's confirm: wins over the step type's question", () => {
    expect(confirmOf(switchover, { confirm: 'Hand over to the DR site?' }, { candidate: 'pg2' })).toBe(
      'Hand over to the DR site?',
    );
    expect(confirmOf(removeCluster, { confirm: true }, { scope: 'demo' })).toBe(true);
  });

  it("an empty question does not count: the step type's gate (or none) applies", () => {
    expect(confirmOf(shell, { confirm: '' }, 'true')).toBeUndefined();
    expect(confirmOf(switchover, { confirm: '' }, { candidate: 'pg2' })).toBe(
      'Switch the Patroni leader over to pg2?',
    );
  });
});

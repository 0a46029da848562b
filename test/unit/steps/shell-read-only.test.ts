// `shell` with read_only: a check that changes nothing is not a change (no undo pushed, not
// listed among the changes a failed run leaves), and a revert beside it is refused.
import { describe, expect, it } from 'vitest';
import type { InventoryHost } from '../../../src/inventory/inventory.js';
import shell from '../../../src/steps/core/shell.js';
import { isMutating } from '../../../src/steps/define.js';
import { ctxOf } from '../helpers/plan-context.js';

const host = { name: 'h', transport: 'local', vars: {}, groups: [] } as unknown as InventoryHost;

describe('shell read_only', () => {
  it('is not mutating; a plain shell is', () => {
    expect(isMutating(shell, { cmd: 'test -x /bin/sh', read_only: true })).toBe(false);
    expect(isMutating(shell, { cmd: 'touch /tmp/x' })).toBe(true);
    expect(isMutating(shell, { cmd: 'touch /tmp/x', read_only: false })).toBe(true);
  });

  it('refuses a revert beside it (it would never run)', () => {
    expect(() => shell.plan(ctxOf(host), { cmd: 'true', read_only: true, revert: 'false' })).toThrow(
      /read_only and revert together/,
    );
    expect(shell.plan(ctxOf(host), { cmd: 'true', read_only: true }).undo).toBeUndefined();
  });
});

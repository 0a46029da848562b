// The preflight's checks as sh runs them on a local host (no server needed): programs on PATH or
// at a path, and the nearest existing directory of a destination.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { NeedRequest } from '../../../src/engine/model.js';
import { preflight } from '../../../src/engine/preflight.js';
import type { Problem } from '../../../src/errors.js';
import { type Inventory, loadInventory } from '../../../src/inventory/inventory.js';
import type { StepNeeds } from '../../../src/steps/define.js';

const dir = mkdtempSync(join(tmpdir(), 'pgrb-pf-unit-'));
writeFileSync(join(dir, 'inv.yml'), 'hosts:\n  here: { transport: local }\n');
const inventory = loadInventory(join(dir, 'inv.yml')).inventory as Inventory;

const req = (title: string, needs: StepNeeds): NeedRequest => ({
  host: 'here',
  title,
  needs,
  problem: (message): Problem => ({ file: 'pb.yml', line: 1, col: 1, path: '', message }) as Problem,
});

describe('preflight on a local host', () => {
  it('names each missing program with its step and package; present ones pass', async () => {
    const found = await preflight(
      inventory,
      ['here'],
      [
        req('Copy', {
          binaries: [
            { name: 'sh' },
            { name: '/bin/sh' },
            { name: 'pgrb-no-such-program', package: 'pgrb-none' },
            { name: '/usr/lib/postgresql/999/bin/pg_upgrade', package: 'postgresql-999' },
          ],
        }),
      ],
    );
    expect(found.map((p) => p.message)).toEqual([
      "preflight: pgrb-no-such-program not found on here (needed by step 'Copy', Debian package: pgrb-none)",
      "preflight: /usr/lib/postgresql/999/bin/pg_upgrade not found on here (needed by step 'Copy', Debian package: postgresql-999)",
    ]);
  });

  it('a destination below a file is refused at the file; one below a writable directory passes', async () => {
    const file = join(dir, 'a-file');
    writeFileSync(file, '');
    const found = await preflight(
      inventory,
      ['here'],
      [req('Snap', { writable: [{ path: `${file}/x/y` }, { path: join(dir, 'new', 'deeper') }] })],
    );
    expect(found.map((p) => p.message)).toEqual([
      expect.stringContaining(`preflight: ${file}/x/y on here is not writable by `),
    ]);
    expect(found[0]!.message).toContain(
      `${file}, the nearest existing directory, is not a writable directory (needed by step 'Snap')`,
    );
  });

  it('a program name with shell syntax is a word, not code', async () => {
    const marker = join(dir, 'ran');
    const found = await preflight(
      inventory,
      ['here'],
      [req('X', { binaries: [{ name: `sh; touch ${marker}` }] })],
    );
    expect(found).toHaveLength(1);
    expect((await import('node:fs')).existsSync(marker)).toBe(false);
  });
});

// Which directories a backup's labels are paired with, and the check itself over a real local
// transport on directories laid out like data directories (the integration tests run it on real
// servers: test/integration/backup-identity*.test.ts).
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { endianness, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LocalTransport } from '../../../src/connections/local.js';
import { checkPairing, pairingLines } from '../../../src/connections/pg-identity.js';
import type { InventoryHost } from '../../../src/inventory/inventory.js';
import { claimsOf, tookSomething } from '../../../src/steps/backup/identity.js';

const host = (vars: Record<string, unknown> = {}): InventoryHost => ({
  name: 'db1',
  transport: 'local',
  vars,
  groups: [],
});

describe('claimsOf', () => {
  it("pairs the inventory's pgdata and what each snapshot took, with the pg_control to read", () => {
    const claims = claimsOf(host({ pgdata: '/srv/pg' }), '/srv/pg', [
      { provider: 'copy', source: '/srv/pg', data: '/b/x.snap/data' },
      { provider: 'btrfs', source: '/srv/pg', data: '/snaps/x' },
      { skipped: true },
      { provider: 'gcp', id: 'pgrb-x-data' },
    ]);
    expect(claims).toEqual([
      { what: "the inventory's pgdata is", dir: '/srv/pg', control: '/srv/pg/global/pg_control' },
      { what: 'fs.snapshot (copy) copied', dir: '/srv/pg', control: '/b/x.snap/data/global/pg_control' },
      { what: 'fs.snapshot (btrfs) copied', dir: '/srv/pg', control: '/snaps/x/global/pg_control' },
      // gcp with pgdata: the disks hold pgdata, already paired above.
    ]);
  });

  it("gcp without pgdata: the live data_directory's pg_control; an unknown snapshot shape is a claim that fails", () => {
    const claims = claimsOf(host(), '/var/lib/pg', [{ provider: 'gcp' }, { provider: 'zfs', id: 'x' }]);
    expect(claims[0]).toEqual({
      what: 'gcp.snapshot took the disks of',
      dir: '/var/lib/pg',
      control: '/var/lib/pg/global/pg_control',
    });
    expect(claims[1]!.control).toBe('/nonexistent');
    expect(tookSomething([{ skipped: true }])).toBe(false);
    expect(tookSomething([])).toBe(false);
    expect(tookSomething([{ skipped: true }, { provider: 'copy' }])).toBe(true);
  });
});

/** A directory with a global/pg_control whose first 8 bytes are `sysid` in the host's order. */
function dataDir(root: string, name: string, sysid: bigint): string {
  const d = join(root, name);
  mkdirSync(join(d, 'global'), { recursive: true });
  const b = Buffer.alloc(8192);
  if (endianness() === 'LE') b.writeBigUInt64LE(sysid);
  else b.writeBigUInt64BE(sysid);
  writeFileSync(join(d, 'global', 'pg_control'), b);
  return d;
}

describe('checkPairing on the host', () => {
  const root = mkdtempSync(join(tmpdir(), 'pgrb-pairing-'));
  // Above 2^63: the identifier is unsigned, as PostgreSQL prints it.
  const big = 18_000_000_000_000_000_123n;
  const a = dataDir(root, 'a', big);
  const b = dataDir(root, 'b', 7_301_000_000_000_000_001n);
  symlinkSync(a, join(root, 'a-link'));
  const t = new LocalTransport();
  const id = { system_identifier: String(big), data_directory: a };

  it('a symlink to the data directory, with its pg_control, is the server', async () => {
    const link = join(root, 'a-link');
    const p = await checkPairing(t, id, [
      { what: 'fs.snapshot copied', dir: link, control: `${link}/global/pg_control` },
    ]);
    expect(p.problems).toEqual([]);
    expect(p.claims[0]).toMatchObject({ realpath: a, system_identifier: String(big) });
    expect(pairingLines(id, p)[1]).toBe(
      `fs.snapshot copied ${link} (${a}): pg_control says ${big} — same server`,
    );
  });

  it('another cluster is named with both identifiers and both directories', async () => {
    const p = await checkPairing(t, id, [
      { what: 'fs.snapshot copied', dir: b, control: `${b}/global/pg_control` },
    ]);
    expect(p.problems).toEqual([
      `the backup session is on server ${big} with data_directory ${a}, but fs.snapshot copied ${b}, whose pg_control says 7301000000000000001 (a different system identifier: another cluster; another directory than the server's data_directory)`,
    ]);
  });

  it('the same identifier in another directory (a replica) is caught by the directory', async () => {
    const twin = dataDir(root, 'twin', big);
    const p = await checkPairing(t, id, [
      { what: "the inventory's pgdata is", dir: twin, control: `${twin}/global/pg_control` },
    ]);
    expect(p.problems).toHaveLength(1);
    expect(p.problems[0]).toContain(
      `whose pg_control says ${big} (another directory than the server's data_directory)`,
    );
  });

  it('a pg_control that cannot be read, or a directory that is not there, is not the server', async () => {
    const p = await checkPairing(t, id, [
      { what: 'fs.snapshot copied', dir: a, control: join(root, 'nothing', 'pg_control') },
      {
        what: "the inventory's pgdata is",
        dir: join(root, 'gone'),
        control: join(root, 'gone', 'global', 'pg_control'),
      },
    ]);
    expect(p.problems[0]).toContain(
      `whose pg_control says (unreadable) (${join(root, 'nothing', 'pg_control')} could not be read)`,
    );
    expect(p.problems[1]).toContain(`${join(root, 'gone')} does not exist on this host`);
  });

  it('a data_directory not on this host (the pg: settings reach another machine) is never paired', async () => {
    const p = await checkPairing(t, { ...id, data_directory: join(root, 'elsewhere') }, [
      { what: 'fs.snapshot copied', dir: a, control: `${a}/global/pg_control` },
    ]);
    expect(p.problems[0]).toContain("the server's data_directory does not exist on this host");
  });
});

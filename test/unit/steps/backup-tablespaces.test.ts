// The tablespace part of a restore (src/steps/backup/tablespaces.ts), shared by backup.verify and
// backup.recover: the stored tablespace_map read through an allowlist, the manifest's copies
// matched with it, and the shell lines run for real on temporary directories.
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Manifest } from '../../../src/steps/backup/manifest.js';
import {
  parseTablespaceMap,
  placeTablespaces,
  refuseOccupied,
  tablespaceCopies,
} from '../../../src/steps/backup/tablespaces.js';

const manifest = (oids: string[], map = true): Manifest => ({
  status: 'complete',
  backup_id: 'b',
  snapshots: [
    { tablespaces: oids.map((oid) => ({ oid, source: `/ts/${oid}`, path: `/b/tablespaces/${oid}` })) },
  ],
  files: { backup_label: { sha256: 'x' }, ...(map ? { tablespace_map: { sha256: 'y' } } : {}) },
});

describe('parseTablespaceMap', () => {
  it('reads "OID PATH" lines (a space belongs to the path)', () => {
    expect([...parseTablespaceMap('16384 /srv/ts one\n16390 /mnt/ssd/pg_ts-2\n').entries()]).toEqual([
      ['16384', '/srv/ts one'],
      ['16390', '/mnt/ssd/pg_ts-2'],
    ]);
  });

  it.each([
    ['a relative path', '16384 srv/ts\n'],
    ['an escaped newline', '16384 /srv/a\\\nb\n'],
    ['a backslash', '16384 /srv/a\\b\n'],
    ['a shell character', '16384 /srv/$(reboot)\n'],
    ['a dot-dot segment', '16384 /srv/../etc\n'],
    ['no OID', 'ts /srv/ts\n'],
  ])('refuses %s', (_what, text) => {
    expect(() => parseTablespaceMap(text)).toThrow(/restore this backup by hand|tablespace_map/);
  });

  it('refuses an OID named twice', () => {
    expect(() => parseTablespaceMap('1 /a\n1 /b\n')).toThrow('tablespace_map names tablespace 1 twice');
  });
});

describe('tablespaceCopies', () => {
  it('a map without copies would recover into the source: refused', () => {
    expect(() => tablespaceCopies(manifest([]))).toThrow(/names no tablespace copies/);
  });

  it('the copies and the map must name the same OIDs', () => {
    expect(() => tablespaceCopies(manifest(['1', '2']), new Map([['1', '/a']]))).toThrow(
      "the backup's tablespace_map (1) and its tablespace copies (1, 2) differ: refusing",
    );
    expect(tablespaceCopies(manifest(['1']), new Map([['1', '/a']]))).toEqual([
      { oid: '1', source: '/ts/1', path: '/b/tablespaces/1' },
    ]);
  });
});

describe('refuseOccupied + placeTablespaces, run by sh', () => {
  const run = (lines: string[]) =>
    spawnSync('/bin/sh', ['-c', ['set -e', ...lines].join('\n')], { encoding: 'utf8' });

  it('copies each tablespace to its location, writes the map, empties pg_tblspc; refuses a second time, changing nothing', () => {
    const root = mkdtempSync(join(tmpdir(), 'pgrb-ts-unit-'));
    const copy = join(root, 'backup', 'tablespaces', '16384');
    mkdirSync(join(copy, 'PG_13_202007201', '13445'), { recursive: true });
    writeFileSync(join(copy, 'PG_13_202007201', '13445', '16385'), 'rows');
    const data = join(root, 'data');
    mkdirSync(join(data, 'pg_tblspc'), { recursive: true });
    // A link copied from the source: recovery must not follow it (the map makes the links).
    spawnSync('ln', ['-s', '/nonexistent/source', join(data, 'pg_tblspc', '16384')]);
    const dest = join(root, 'live ts');
    mkdirSync(join(dest, 'PG_15_202209061.pre-rollback-r1'), { recursive: true });
    const spaces = [{ oid: '16384', copy, dest }];

    const first = run([...refuseOccupied(spaces), ...placeTablespaces(data, spaces)]);
    expect(first.status, first.stderr).toBe(0);
    expect(readFileSync(join(dest, 'PG_13_202007201', '13445', '16385'), 'utf8')).toBe('rows');
    expect(readFileSync(join(data, 'tablespace_map'), 'utf8')).toBe(`16384 ${dest}\n`);
    expect(readdirSync(join(data, 'pg_tblspc'))).toEqual([]);
    expect(readdirSync(dest).sort()).toEqual(['PG_13_202007201', 'PG_15_202209061.pre-rollback-r1']);

    writeFileSync(join(dest, 'PG_13_202007201', '13445', '16385'), 'newer');
    const again = run([...refuseOccupied(spaces), 'touch "$0.ran"']);
    expect(again.status).toBe(17);
    expect(again.stderr).toBe(`pgrunbook: ${dest}/PG_13_202007201 exists: move it aside first\n`);
    expect(readFileSync(join(dest, 'PG_13_202007201', '13445', '16385'), 'utf8')).toBe('newer');
  });
});

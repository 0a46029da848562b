import { describe, expect, it } from 'vitest';
import { controlFacts, parseControldata } from '../../../src/steps/pg/controldata.js';

// As pg_controldata 13 prints it with LC_ALL=C (abridged).
const PG13 = `pg_control version number:            1300
Catalog version number:               202007201
Database system identifier:           7306574950001417234
Database cluster state:               shut down
pg_control last modified:             Wed 25 Nov 2026 04:01:02 PM UTC
Latest checkpoint location:           0/3000028
Latest checkpoint's REDO location:    0/3000028
Latest checkpoint's REDO WAL file:    000000010000000000000003
Latest checkpoint's TimeLineID:       1
Database block size:                  8192
Bytes per WAL segment:                16777216
Data page checksum version:           0
`;

describe('pg_controldata output', () => {
  it('parses every "Name: value" line and derives the facts an upgrade compares', () => {
    const f = parseControldata(PG13);
    expect(f["Latest checkpoint's REDO WAL file"]).toBe('000000010000000000000003');
    expect(f['pg_control last modified']).toBe('Wed 25 Nov 2026 04:01:02 PM UTC');
    expect(controlFacts(f, '13')).toEqual({
      pg_version: '13',
      system_identifier: '7306574950001417234',
      cluster_state: 'shut down',
      checkpoint_lsn: '0/3000028',
      redo_lsn: '0/3000028',
      timeline: 1,
      checksums: false,
      block_size: 8192,
      wal_segment_size: 16777216,
      catalog_version: '202007201',
    });
  });
  it('names a missing line instead of inventing a value', () => {
    const f = parseControldata(PG13.replace(/^Bytes per WAL segment.*\n/m, ''));
    expect(() => controlFacts(f, '13')).toThrow('pg_controldata printed no "Bytes per WAL segment" line');
  });
});

// The PostgreSQL connection settings that need no server: TLS options per sslmode, int8 parsing.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PgSettings, parseInt8, tlsOptions, typeParsers } from '../../../src/connections/pg.js';

let dir: string;
let caFile: string;
const CA = '-----BEGIN CERTIFICATE-----\nnot really a certificate\n-----END CERTIFICATE-----\n';

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'pgrunbook-pg-'));
  caFile = join(dir, 'ca.pem');
  writeFileSync(caFile, CA);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const settings = (sslmode: PgSettings['sslmode'], sslrootcert?: string): PgSettings => ({
  host: 'db1.example.com',
  port: 5432,
  user: 'postgres',
  database: 'postgres',
  sslmode,
  sslrootcert,
});

describe('tlsOptions: libpq sslmode semantics', () => {
  it('disable: no TLS', () => {
    expect(tlsOptions(settings('disable'))).toBe(false);
    // a CA changes nothing: disable never encrypts
    expect(tlsOptions(settings('disable', caFile))).toBe(false);
  });

  it('prefer and require: TLS without certificate checks', () => {
    expect(tlsOptions(settings('prefer'))).toEqual({ rejectUnauthorized: false });
    expect(tlsOptions(settings('require'))).toEqual({ rejectUnauthorized: false });
  });

  it('require with an explicit sslrootcert verifies the chain (libpq compatibility), not the name', () => {
    const o = tlsOptions(settings('require', caFile));
    expect(o).toMatchObject({ rejectUnauthorized: true });
    if (!o) throw new Error('unreachable');
    expect(o.ca?.toString()).toBe(CA);
    expect(o.checkServerIdentity?.('db1.example.com', {} as never)).toBeUndefined();
  });

  it('verify-ca: chain verified, host name not (checkServerIdentity accepts anything)', () => {
    const o = tlsOptions(settings('verify-ca'));
    if (!o) throw new Error('verify-ca must use TLS');
    expect(o.rejectUnauthorized).toBe(true);
    expect(o.ca).toBeUndefined(); // Node's CA store
    expect(o.checkServerIdentity).toBeTypeOf('function');
    expect(o.checkServerIdentity!('other.example.com', { subject: { CN: 'x' } } as never)).toBeUndefined();
    const withCa = tlsOptions(settings('verify-ca', caFile));
    if (!withCa) throw new Error('verify-ca must use TLS');
    expect(withCa.ca?.toString()).toBe(CA);
  });

  it("verify-full: chain and host name, Node's own identity check", () => {
    const o = tlsOptions(settings('verify-full', caFile));
    if (!o) throw new Error('verify-full must use TLS');
    expect(o.rejectUnauthorized).toBe(true);
    expect(o.ca?.toString()).toBe(CA);
    expect('checkServerIdentity' in o).toBe(false);
  });

  it('an unreadable sslrootcert is an error naming the file', () => {
    const missing = join(dir, 'missing.pem');
    expect(() => tlsOptions(settings('verify-full', missing))).toThrow(
      `cannot read sslrootcert ${missing}: file not found`,
    );
  });
});

describe('int8 values', () => {
  it('parseInt8: a number when exact, the text otherwise', () => {
    expect(parseInt8('0')).toBe(0);
    expect(parseInt8('-42')).toBe(-42);
    expect(parseInt8('9007199254740991')).toBe(9007199254740991);
    expect(parseInt8('9007199254740992')).toBe('9007199254740992');
    expect(parseInt8('-9223372036854775808')).toBe('-9223372036854775808');
  });

  it('the per-client parsers turn int8 and int8[] into numbers, leave numeric as text, and the global alone', () => {
    const t = typeParsers(pg) as unknown as { getTypeParser(oid: number, format?: string): unknown };
    const int8 = t.getTypeParser(20, 'text') as (v: string) => unknown;
    expect(int8('0')).toBe(0);
    const int8arr = t.getTypeParser(1016, 'text') as (v: string) => unknown;
    expect(int8arr('{1,NULL,9223372036854775807}')).toEqual([1, null, '9223372036854775807']);
    expect(int8arr('{{1,2},{3,4}}')).toEqual([
      [1, 2],
      [3, 4],
    ]);
    const numeric = t.getTypeParser(1700, 'text') as (v: string) => unknown;
    expect(numeric('1.50')).toBe('1.50');
    const int4 = t.getTypeParser(23, 'text') as (v: string) => unknown;
    expect(int4('7')).toBe(7);
    // the driver-wide parser is unchanged: other pg users in the process see strings
    expect((pg.types.getTypeParser(20, 'text') as (v: string) => unknown)('5')).toBe('5');
  });
});

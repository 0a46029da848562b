import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  checkKnownHosts,
  DEFAULT_HOST_KEY_ALGORITHMS,
  fingerprint,
  hostKeyAlgorithms,
  keyTypeOf,
  knownHostsName,
  knownKeyTypes,
  readKnownHosts,
} from '../../../src/connections/known-hosts.js';

let dir: string;
/** `ssh-ed25519 AAAA…` of two freshly generated keys, and their raw blobs. */
const keys: { line: string; blob: Buffer; file: string }[] = [];
/** One rsa and one ecdsa key, for key-type tests. */
const other: Record<'rsa' | 'ecdsa', { line: string; blob: Buffer }> = {} as never;

/** Lets ssh-keygen hash a known_hosts text the way `HashKnownHosts yes` would. */
function hashed(text: string): string {
  const f = join(dir, `kh-${Math.random().toString(36).slice(2)}`);
  writeFileSync(f, text);
  execFileSync('ssh-keygen', ['-H', '-f', f], { stdio: 'ignore' });
  const out = readFileSync(f, 'utf8');
  expect(out).toMatch(/^\|1\|[A-Za-z0-9+/=]+\|[A-Za-z0-9+/=]+ /);
  return out;
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'pgrunbook-kh-'));
  for (const name of ['k1', 'k2']) {
    const file = join(dir, name);
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', file]);
    const [type, b64] = readFileSync(`${file}.pub`, 'utf8').trim().split(' ');
    keys.push({ line: `${type} ${b64}`, blob: Buffer.from(b64!, 'base64'), file: `${file}.pub` });
  }
  for (const t of ['rsa', 'ecdsa'] as const) {
    const file = join(dir, t);
    execFileSync('ssh-keygen', ['-q', '-t', t, ...(t === 'rsa' ? ['-b', '2048'] : []), '-N', '', '-f', file]);
    const [type, b64] = readFileSync(`${file}.pub`, 'utf8').trim().split(' ');
    other[t] = { line: `${type} ${b64}`, blob: Buffer.from(b64!, 'base64') };
  }
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

const k1 = () => keys[0]!;
const k2 = () => keys[1]!;

describe('knownHostsName', () => {
  it('port 22 is the bare host, any other port is [host]:port', () => {
    expect(knownHostsName('db1.example.com', 22)).toBe('db1.example.com');
    expect(knownHostsName('127.0.0.1', 2222)).toBe('[127.0.0.1]:2222');
  });
});

describe('checkKnownHosts', () => {
  it('a plain entry with this key is trusted', () => {
    const text = `db1.example.com ${k1().line}\n`;
    expect(checkKnownHosts(text, 'db1.example.com', 22, k1().blob)).toBe('trusted');
  });

  it('comma-separated names, comments and blank lines', () => {
    const text = `# comment\n\nother ${k2().line}\ndb1,10.0.0.11 ${k1().line} comment here\n`;
    expect(checkKnownHosts(text, '10.0.0.11', 22, k1().blob)).toBe('trusted');
    expect(checkKnownHosts(text, 'db1', 22, k1().blob)).toBe('trusted');
  });

  it('wildcards and negations', () => {
    const text = `*.example.com,!bad.example.com ${k1().line}\n`;
    expect(checkKnownHosts(text, 'db1.example.com', 22, k1().blob)).toBe('trusted');
    expect(checkKnownHosts(text, 'bad.example.com', 22, k1().blob)).toBe('unknown');
    expect(checkKnownHosts(text, 'example.com', 22, k1().blob)).toBe('unknown');
  });

  it('a dot in a name is literal, not a wildcard', () => {
    const text = `10.0.0.1 ${k1().line}\n`;
    expect(checkKnownHosts(text, '10x0x0x1', 22, k1().blob)).toBe('unknown');
  });

  // Regression: unescaped `[`/`]` once turned `[127.0.0.1]:2222` into a regex character class.
  it('a plain [host]:port entry is trusted for that port only', () => {
    const text = `[127.0.0.1]:2222 ${k1().line}\n`;
    expect(checkKnownHosts(text, '127.0.0.1', 2222, k1().blob)).toBe('trusted');
    expect(checkKnownHosts(text, '127.0.0.1', 22, k1().blob)).toBe('unknown');
    expect(checkKnownHosts(text, '127.0.0.1', 2223, k1().blob)).toBe('unknown');
  });

  it('a port-22 entry does not vouch for another port', () => {
    const text = `127.0.0.1 ${k1().line}\n`;
    expect(checkKnownHosts(text, '127.0.0.1', 2222, k1().blob)).toBe('unknown');
  });

  it('hashed entries written by ssh-keygen -H, on port 22 and on another port', () => {
    const text = hashed(`db1.example.com ${k1().line}\n[127.0.0.1]:2222 ${k1().line}\n`);
    expect(text).not.toContain('db1.example.com');
    expect(text).not.toContain('127.0.0.1');
    expect(checkKnownHosts(text, 'db1.example.com', 22, k1().blob)).toBe('trusted');
    expect(checkKnownHosts(text, '127.0.0.1', 2222, k1().blob)).toBe('trusted');
    expect(checkKnownHosts(text, '127.0.0.1', 22, k1().blob)).toBe('unknown');
    expect(checkKnownHosts(text, 'db2.example.com', 22, k1().blob)).toBe('unknown');
    expect(checkKnownHosts(text, '127.0.0.1', 2222, k2().blob)).toBe('changed');
  });

  it('another key for a known host is "changed"', () => {
    const text = `db1 ${k2().line}\n`;
    expect(checkKnownHosts(text, 'db1', 22, k1().blob)).toBe('changed');
  });

  it('any of several keys listed for a host is trusted', () => {
    const text = `db1 ${k2().line}\ndb1 ${k1().line}\n`;
    expect(checkKnownHosts(text, 'db1', 22, k1().blob)).toBe('trusted');
    expect(checkKnownHosts(text, 'db1', 22, k2().blob)).toBe('trusted');
  });

  it('a host no line names is "unknown"; an empty file knows nobody', () => {
    expect(checkKnownHosts(`db2 ${k1().line}\n`, 'db1', 22, k1().blob)).toBe('unknown');
    expect(checkKnownHosts('', 'db1', 22, k1().blob)).toBe('unknown');
  });

  it('@revoked wins over a trusting line, wherever it is', () => {
    const revokedFirst = `@revoked db1 ${k1().line}\ndb1 ${k1().line}\n`;
    const revokedLast = `db1 ${k2().line}\n@revoked * ${k1().line}\n`;
    expect(checkKnownHosts(revokedFirst, 'db1', 22, k1().blob)).toBe('revoked');
    expect(checkKnownHosts(revokedLast, 'db1', 22, k1().blob)).toBe('revoked');
    // a revocation of another key does not count as knowing the host
    expect(checkKnownHosts(`@revoked db1 ${k2().line}\n`, 'db1', 22, k1().blob)).toBe('unknown');
  });

  it('@cert-authority lines do not trust a plain host key', () => {
    expect(checkKnownHosts(`@cert-authority db1 ${k1().line}\n`, 'db1', 22, k1().blob)).toBe('unknown');
  });
});

describe('fingerprint', () => {
  it('equals the SHA256 part of ssh-keygen -l', () => {
    for (const k of keys) {
      const out = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', k.file], { encoding: 'utf8' });
      const expected = out.split(' ')[1];
      expect(expected).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/);
      expect(fingerprint(k.blob)).toBe(expected);
    }
    expect(fingerprint(k1().blob)).not.toBe(fingerprint(k2().blob));
  });
});

describe('readKnownHosts', () => {
  it('a missing file reads as empty', () => {
    expect(readKnownHosts(join(dir, 'does-not-exist'))).toBe('');
  });

  it('a missing file is an error naming it when it must exist (accept_unknown_host_key)', () => {
    const f = join(dir, 'does-not-exist');
    expect(() => readKnownHosts(f, { mustExist: true })).toThrow(
      `cannot read known_hosts file ${f}: it does not exist`,
    );
  });

  it('an unreadable path (a directory) is an error, not an empty file', () => {
    expect(() => readKnownHosts(dir)).toThrow(
      `cannot read known_hosts file ${dir}: not a regular file (a directory)`,
    );
  });
});

describe('host key types and algorithm order', () => {
  it('keyTypeOf reads the type a key blob names', () => {
    expect(keyTypeOf(k1().blob)).toBe('ssh-ed25519');
    expect(keyTypeOf(other.rsa.blob)).toBe('ssh-rsa');
    expect(keyTypeOf(other.ecdsa.blob)).toBe('ecdsa-sha2-nistp256');
    expect(keyTypeOf(Buffer.from([0, 0]))).toBeUndefined();
    expect(keyTypeOf(Buffer.from([0xff, 0, 0, 0, 1]))).toBeUndefined();
  });

  it('knownKeyTypes lists the types of usable lines for this host only, in file order', () => {
    const text = [
      `db2 ${k1().line}`,
      `db1 ${other.rsa.line}`,
      `@revoked db1 ${k2().line}`,
      `@cert-authority db1 ${other.ecdsa.line}`,
      `db1,10.0.0.1 ${other.rsa.line}`,
      '',
    ].join('\n');
    expect(knownKeyTypes(text, 'db1', 22)).toEqual(['ssh-rsa']);
    expect(knownKeyTypes(text, 'db2', 22)).toEqual(['ssh-ed25519']);
    expect(knownKeyTypes(text, 'db3', 22)).toEqual([]);
    expect(knownKeyTypes(hashed(`[127.0.0.1]:2222 ${other.ecdsa.line}\n`), '127.0.0.1', 2222)).toEqual([
      'ecdsa-sha2-nistp256',
    ]);
  });

  it('the type comes from the key blob even if the line names another', () => {
    const b64 = other.rsa.line.split(' ')[1];
    expect(knownKeyTypes(`db1 ssh-ed25519 ${b64}\n`, 'db1', 22)).toEqual(['ssh-rsa']);
  });

  it('hostKeyAlgorithms puts algorithms of known types first, keeping the default order', () => {
    expect(hostKeyAlgorithms([])).toBeUndefined();
    expect(hostKeyAlgorithms(['ssh-dss'])).toBeUndefined();
    expect(hostKeyAlgorithms(['ssh-rsa'])).toEqual([
      'rsa-sha2-512',
      'rsa-sha2-256',
      'ssh-rsa',
      'ssh-ed25519',
      'ecdsa-sha2-nistp256',
      'ecdsa-sha2-nistp384',
      'ecdsa-sha2-nistp521',
    ]);
    expect(hostKeyAlgorithms(['ssh-rsa', 'ecdsa-sha2-nistp384'])!.slice(0, 4)).toEqual([
      'ecdsa-sha2-nistp384',
      'rsa-sha2-512',
      'rsa-sha2-256',
      'ssh-rsa',
    ]);
    expect(hostKeyAlgorithms(['ssh-ed25519'])).toEqual([...DEFAULT_HOST_KEY_ALGORITHMS]);
    // the same set as ssh2's default, so nothing is lost, only reordered
    for (const types of [['ssh-rsa'], ['ecdsa-sha2-nistp521'], ['ssh-ed25519', 'ssh-rsa']])
      expect([...hostKeyAlgorithms(types)!].sort()).toEqual([...DEFAULT_HOST_KEY_ALGORITHMS].sort());
  });

  it("the default list is ssh2's own default", async () => {
    const { createRequire } = await import('node:module');
    const req = createRequire(import.meta.url);
    const constants = req('ssh2/lib/protocol/constants.js') as { DEFAULT_SERVER_HOST_KEY: string[] };
    expect([...DEFAULT_HOST_KEY_ALGORITHMS]).toEqual(constants.DEFAULT_SERVER_HOST_KEY);
  });
});

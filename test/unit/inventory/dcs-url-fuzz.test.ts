// The DCS URL allowlist (patroni.dcs.etcd3 / consul) against generated URLs: 5,000 strings built
// from the pieces a URL can carry (scheme, credentials, host forms, port, path, query, fragment,
// whitespace, control and non-ASCII characters). The oracle is the WHATWG URL parser: a string is
// accepted only if it parses as http(s) with no credentials, no path beyond "/", no query or
// fragment, and is exactly its own origin; and every plain origin the generator makes is accepted.
// A refusal never quotes the input.
import { describe, expect, it } from 'vitest';
import { dcsUrlProblem } from '../../../src/inventory/inventory.js';
import { Rng } from '../../fuzz/prng.js';

const SECRET = 'zq-77-secret';
const pick = <T>(r: Rng, xs: readonly T[]): T => xs[r.int(xs.length)]!;

const SCHEMES = [
  'http://',
  'https://',
  'HTTP://',
  'ftp://',
  'file://',
  'consul://',
  'http:/',
  'http:',
  '//',
  '',
];
const CREDS = ['', '', '', `u:${SECRET}@`, `${SECRET}@`, `:${SECRET}@`, '@'];
const HOSTS = [
  '127.0.0.1',
  'localhost',
  'consul.service.internal',
  '10.0.0.21',
  '[::1]',
  '[fe80::1]',
  'a-b.c',
  '-bad.host',
  'bad-.host',
  'x..y',
  'xn--80ak6aa92e.com',
  'ex ample',
  'exa\tmple',
  'ünicode.de',
  '127.1',
  '',
  '[::1',
];
const PORTS = ['', '', ':8500', ':2379', ':0', ':65535', ':99999', ':', ':-1', ':8500x'];
const TAILS = ['', '', '', '/', '/v1/kv', `?token=${SECRET}`, `#${SECRET}`, ' ', '\n', '/..', '%2F'];

/** What the parser says the string is, if it is a bare http(s) origin. */
function isBareOrigin(s: string): boolean {
  let u: URL;
  try {
    u = new URL(s);
  } catch {
    return false;
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return false;
  if (u.username || u.password || u.search || u.hash || u.pathname !== '/') return false;
  // Exactly its origin: nothing the parser dropped, normalised or decoded along the way (a trailing
  // slash, a default port, an IDN, upper case) — the allowlist takes only the plain form.
  return s === `${u.protocol}//${u.host}`;
}

describe('DCS URL allowlist, generated inputs', () => {
  it('accepts only bare http(s) origins, refuses the rest without quoting them', () => {
    const r = new Rng(15_003);
    let accepted = 0;
    const wrong: string[] = [];
    for (let i = 0; i < 5000; i++) {
      // Half near-valid (a plain scheme, no credentials, no tail), so both verdicts are common.
      const near = r.chance(0.5);
      const s =
        (near ? pick(r, ['http://', 'https://']) : pick(r, SCHEMES)) +
        (near ? '' : pick(r, CREDS)) +
        pick(r, HOSTS) +
        pick(r, PORTS) +
        (near && r.chance(0.6) ? '' : pick(r, TAILS)) +
        (r.chance(0.05) ? pick(r, TAILS) : '');
      const problem = dcsUrlProblem(s);
      if (problem === undefined) {
        accepted++;
        // Accepted ⇒ the parser agrees it is a bare origin (ports beyond 65535 do not parse).
        if (!isBareOrigin(s)) wrong.push(`accepted ${JSON.stringify(s)}`);
      } else {
        if (problem.includes(SECRET)) wrong.push(`quoted ${JSON.stringify(s)}`);
        // Refused plain origins: only forms the allowlist leaves out on purpose (IDN/upper case are
        // normalised away by isBareOrigin already).
        if (
          isBareOrigin(s) &&
          /^https?:\/\/[A-Za-z0-9.[\]:-]+$/.test(s) &&
          !/\.\.|^https?:\/\/-|-(:|$)|-\./.test(s)
        )
          wrong.push(`refused ${JSON.stringify(s)}`);
      }
    }
    expect(wrong.slice(0, 20)).toEqual([]);
    // The generator reaches both verdicts often enough to mean something.
    expect(accepted).toBeGreaterThan(500);
    expect(accepted).toBeLessThan(4900);
  });
});

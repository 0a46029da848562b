// pointDatabase edits one line of pgbouncer.ini's [databases] and nothing else: a fixed-seed
// generator of ini files (comments, other sections, other databases, odd spacing, quoted values)
// checks every other line is kept byte for byte and the undo puts the file back exactly.
import { describe, expect, it } from 'vitest';
import { maskPasswords, parseConnstr, pointDatabase } from '../../../src/steps/pgbouncer/ini.js';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function generate(r: () => number): { text: string; target: string } {
  const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)] as T;
  const names = ['app', 'gitlabhq_production', 'db_2', 'x.y', 'reports'];
  const target = pick(names);
  const extras = () =>
    pick([
      '',
      ' pool_size=20',
      " user=gitlab password='se cret'",
      ' auth_user=pgbouncer',
      " application_name='a\\'b'",
    ]);
  const dbLines = names.map(
    (n) =>
      `${pick(['', '  '])}${n}${pick([' = ', '=', '  =  '])}host=10.0.0.${Math.floor(r() * 200)} port=${5432 + Math.floor(r() * 3)} dbname=${n}${extras()}`,
  );
  const lines = [
    pick(['', ';; pgbouncer.ini', '# managed by hand']),
    '[databases]',
    ...dbLines.flatMap((l) => (r() < 0.3 ? [pick(['; a comment', '#host=old', '']), l] : [l])),
    '',
    '[pgbouncer]',
    'listen_port = 6432',
    // A key with the same name outside [databases] must not be touched.
    `${target} = not a database line`,
    'pool_mode = transaction',
  ];
  return { text: lines.join('\n'), target };
}

describe('pointDatabase', () => {
  it('changes only host and port of the named database, keeps every other byte, and the undo restores the file', () => {
    const r = rng(20261206);
    for (let i = 0; i < 500; i++) {
      const { text, target } = generate(r);
      const res = pointDatabase(text, target, { host: '10.9.9.9', port: 6000 });
      const a = text.split('\n');
      const b = res.text.split('\n');
      expect(b.length).toBe(a.length);
      const changed = a.map((l, j) => (l === b[j] ? -1 : j)).filter((j) => j >= 0);
      expect(changed.length).toBe(1);
      const pairs = parseConnstr(res.after.slice(res.after.indexOf('=') + 1))!;
      const before = parseConnstr(res.before.slice(res.before.indexOf('=') + 1))!;
      expect(pairs.find((p) => p.key === 'host')?.value).toBe('10.9.9.9');
      expect(pairs.find((p) => p.key === 'port')?.value).toBe('6000');
      // Every other key keeps its value (a password with a space, an escaped quote).
      for (const p of before.filter((x) => x.key !== 'host' && x.key !== 'port'))
        expect(pairs.find((x) => x.key === p.key)?.value).toBe(p.value);
      // The undo's way (it keeps no whole line, which may hold a password): the keys set go back
      // to their values before, every other line byte for byte, the line's pairs as they were.
      const undo = pointDatabase(res.text, target, { keys: res.previous });
      const u = undo.text.split('\n');
      expect(u.filter((l, j) => l !== a[j]).length).toBeLessThanOrEqual(1);
      expect(parseConnstr(undo.after.slice(undo.after.indexOf('=') + 1))).toEqual(before);
      // What logs and outputs show has no password in it.
      expect(maskPasswords(res.before)).not.toContain('se cret');
      if (res.before.includes('password=')) expect(maskPasswords(res.before)).toContain('password=***');
    }
  });

  it('refuses what it cannot edit safely, with the reason', () => {
    const ini = '[databases]\napp = host=a port=1\napp = host=b port=2\n[pgbouncer]\n';
    expect(() => pointDatabase(ini, 'app', { host: 'c', port: 3 })).toThrow(/two lines/);
    expect(() => pointDatabase('[databases]\n', 'app', { host: 'c', port: 3 })).toThrow(/no line/);
    expect(() =>
      pointDatabase('[databases]\napp = host=a port=1\n', 'app', { host: 'c; rm -rf /', port: 3 }),
    ).toThrow(/not a plain host/);
    expect(() => pointDatabase('[databases]\napp = host=a port=1\n', 'a b', { host: 'c', port: 3 })).toThrow(
      /not a plain name/,
    );
    expect(() => pointDatabase("[databases]\napp = host='a port=1\n", 'app', { host: 'c', port: 3 })).toThrow(
      /not a connection string/,
    );
  });
});

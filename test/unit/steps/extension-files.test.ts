// pg.check_extensions' pure parts: library lists as the server splits them, module_pathname,
// where the loader looks, and the check scripts run by a real sh over real files.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  controlFilesScript,
  libraryCandidates,
  missingFilesScript,
  modulePathname,
  parseControlFiles,
  parseMissing,
  plausibleLibrary,
  requirers,
  splitLibraryList,
} from '../../../src/steps/pg/extension-files.js';

const sh = (script: string, cwd?: string) => execFileSync('sh', ['-c', script], { encoding: 'utf8', cwd });

describe('splitLibraryList', () => {
  it('reads shared_preload_libraries as the server does: commas, blanks, double quotes', () => {
    expect(splitLibraryList('')).toEqual([]);
    expect(splitLibraryList('pg_stat_statements')).toEqual(['pg_stat_statements']);
    expect(splitLibraryList(' pg_stat_statements ,auto_explain,, ')).toEqual([
      'pg_stat_statements',
      'auto_explain',
    ]);
    expect(splitLibraryList('"$libdir/my lib", "a""b",c')).toEqual(['$libdir/my lib', 'a"b', 'c']);
  });
});

describe('modulePathname', () => {
  it("finds module_pathname in a control file, with or without '=', and none when absent", () => {
    const control =
      "# pgcrypto extension\ncomment = 'cryptographic functions'\ndefault_version = '1.3'\nmodule_pathname = '$libdir/pgcrypto'\nrelocatable = true\n";
    expect(modulePathname(control)).toBe('$libdir/pgcrypto');
    expect(modulePathname("module_pathname '$libdir/x'")).toBe('$libdir/x');
    expect(modulePathname("# module_pathname = '$libdir/commented'\ncomment = 'sql only'")).toBeUndefined();
    expect(modulePathname("module_pathname = '/opt/it''s/x'")).toBe("/opt/it's/x");
  });
});

describe('requirers', () => {
  it('names an extension once with all its databases, others as they are', () => {
    expect(
      requirers([
        { library: '$libdir/pgcrypto', extension: { name: 'pgcrypto', databases: ['app'] } },
        { library: '$libdir/pgcrypto', extension: { name: 'pgcrypto', databases: ['app', 'billing'] } },
        { library: '$libdir/pgcrypto', who: 'shared_preload_libraries' },
        { library: '$libdir/pgcrypto', who: 'shared_preload_libraries' },
      ]),
    ).toEqual(['extension pgcrypto (databases app, billing)', 'shared_preload_libraries']);
    expect(requirers([{ library: 'x', extension: { name: 'e', databases: ['d'] } }])).toEqual([
      'extension e (database d)',
    ]);
  });
});

describe('libraryCandidates', () => {
  it('puts $libdir at the installation checked, bare names on dynamic_library_path, absolute paths as is', () => {
    expect(libraryCandidates('$libdir/pgcrypto', '/new/lib')).toEqual(['/new/lib/pgcrypto']);
    expect(libraryCandidates('$libdir/plugins/x', '/new/lib')).toEqual(['/new/lib/plugins/x']);
    expect(libraryCandidates('pg_stat_statements', '/new/lib')).toEqual(['/new/lib/pg_stat_statements']);
    expect(libraryCandidates('pg_stat_statements', '/new/lib', '$libdir:/opt/ext/')).toEqual([
      '/new/lib/pg_stat_statements',
      '/opt/ext/pg_stat_statements',
    ]);
    expect(libraryCandidates('/opt/old/lib/x.so', '/new/lib')).toEqual(['/opt/old/lib/x.so']);
    // $libdirx is not $libdir.
    expect(libraryCandidates('$libdirx/y', '/new/lib')).toEqual(['$libdirx/y']);
  });
  it('refuses names no file can have', () => {
    expect(plausibleLibrary('$libdir/a')).toBe(true);
    expect(plausibleLibrary('')).toBe(false);
    expect(plausibleLibrary('a\nb')).toBe(false);
  });
});

describe('the check scripts on real files', () => {
  const dir = mkdtempSync(join(tmpdir(), 'pgrb-extfiles-'));
  mkdirSync(join(dir, 'lib'));
  mkdirSync(join(dir, 'extension'));
  writeFileSync(join(dir, 'lib', 'pgcrypto.so'), '');
  writeFileSync(join(dir, 'lib', 'plain'), '');
  // A name that would break a careless script: quotes, spaces, $( ).
  const odd = "we'ird $(touch pwned) name";
  writeFileSync(join(dir, 'lib', `${odd}.so`), '');
  writeFileSync(join(dir, 'extension', 'pgcrypto.control'), "module_pathname = '$libdir/pgcrypto'\n");

  it('names each library none of whose candidates exists, as given or with .so', () => {
    const groups = [
      libraryCandidates('$libdir/pgcrypto', join(dir, 'lib')),
      libraryCandidates('$libdir/missing', join(dir, 'lib')),
      libraryCandidates('plain', join(dir, 'lib')),
      libraryCandidates(`$libdir/${odd}`, join(dir, 'lib')),
      libraryCandidates('gone', join(dir, 'lib'), `/nowhere:${join(dir, 'lib')}`),
      libraryCandidates('pgcrypto', join(dir, 'lib'), `/nowhere:${join(dir, 'lib')}`),
    ];
    expect([...parseMissing(sh(missingFilesScript(groups), dir))]).toEqual([1, 4]);
    // The odd name was a word, not a command.
    expect(readdirSync(dir)).not.toContain('pwned');
    expect(parseMissing(sh(missingFilesScript([])))).toEqual(new Set());
  });

  it('returns the text of the control files that exist, by index', () => {
    const found = parseControlFiles(
      sh(
        controlFilesScript([
          join(dir, 'extension', 'missing.control'),
          join(dir, 'extension', 'pgcrypto.control'),
          join(dir, 'extension', `${odd}.control`),
        ]),
      ),
    );
    expect([...found.keys()]).toEqual([1]);
    expect(modulePathname(found.get(1)!)).toBe('$libdir/pgcrypto');
  });
});

// What an installation must hold for a cluster's extensions and preloaded libraries, as files:
// pure helpers of `pg.check_extensions` (parsing settings and control files, resolving library
// names the way the server's dynamic loader does, the check scripts and what they print).
import { quote } from '../../util/shell.js';

/** Something in the cluster that needs a library, for the failure message. */
export interface Requirement {
  /** the name as the catalog or the setting writes it: `$libdir/pgcrypto`, `pg_stat_statements` */
  library: string;
  /** an extension, with the databases it is installed in */
  extension?: { name: string; databases: string[] };
  /** anything else: `shared_preload_libraries`, `function f(int) (database app, no extension)` */
  who?: string;
}

/**
 * Who needs a library, one phrase each: an extension once with all its databases (its C
 * functions and its control file's module_pathname name the same library), others as they are.
 */
export function requirers(reqs: Requirement[]): string[] {
  const exts = new Map<string, Set<string>>();
  const others = new Set<string>();
  for (const r of reqs) {
    if (r.extension) {
      const dbs = exts.get(r.extension.name) ?? new Set<string>();
      for (const d of r.extension.databases) dbs.add(d);
      exts.set(r.extension.name, dbs);
    } else if (r.who) others.add(r.who);
  }
  return [
    ...[...exts].map(
      ([n, dbs]) => `extension ${n} (database${dbs.size > 1 ? 's' : ''} ${[...dbs].join(', ')})`,
    ),
    ...others,
  ];
}

/**
 * The entries of a library list setting (shared_preload_libraries): comma-separated, each
 * optionally double-quoted, blanks around them ignored — as the server's SplitDirectoriesString
 * reads it.
 */
export function splitLibraryList(value: string): string[] {
  const out: string[] = [];
  let i = 0;
  const s = value;
  while (i < s.length) {
    while (i < s.length && /[\s,]/.test(s[i]!)) i++;
    if (i >= s.length) break;
    let item = '';
    if (s[i] === '"') {
      i++;
      while (i < s.length) {
        if (s[i] === '"' && s[i + 1] === '"') {
          item += '"';
          i += 2;
        } else if (s[i] === '"') {
          i++;
          break;
        } else item += s[i++];
      }
      while (i < s.length && s[i] !== ',') i++;
    } else {
      while (i < s.length && s[i] !== ',') item += s[i++];
      item = item.trim();
    }
    if (item) out.push(item);
  }
  return out;
}

/** The `module_pathname` of a control file's text, if it sets one (`module_pathname = '$libdir/x'`). */
export function modulePathname(control: string): string | undefined {
  for (const line of control.split('\n')) {
    const m = /^\s*module_pathname\s*=?\s*'((?:[^']|'')*)'/.exec(line);
    if (m) return m[1]!.replace(/''/g, "'");
  }
  return undefined;
}

/**
 * Where the server would look for a library, in order: `$libdir/x` under `libDir`, a bare name in
 * each directory of dynamic_library_path, an absolute path as is. Each candidate is also tried
 * with `.so` appended, as the loader does.
 */
export function libraryCandidates(library: string, libDir: string, dynamicLibraryPath = '$libdir'): string[] {
  const sub = (p: string) => p.replace(/^\$libdir(?=\/|$)/, libDir);
  if (!library.includes('/')) {
    const dirs = dynamicLibraryPath
      .split(':')
      .map((d) => d.trim())
      .filter(Boolean);
    return (dirs.length ? dirs : ['$libdir']).map((d) => `${sub(d).replace(/\/+$/, '')}/${library}`);
  }
  return [sub(library)];
}

/** A library name the check accepts: no NUL or newline, which no file name on a loader path has. */
export function plausibleLibrary(library: string): boolean {
  return library.length > 0 && !/[\0\n\r]/.test(library);
}

/**
 * A sh script printing the index of each group of candidates none of which exists (as given, or
 * with `.so`). Paths are quoted: they come from the catalog, not from the playbook.
 */
export function missingFilesScript(groups: string[][]): string {
  return groups
    .map((cands, i) => {
      const tests = cands.flatMap((c) => [`[ -f ${quote(c)} ]`, `[ -f ${quote(`${c}.so`)} ]`]);
      return `{ ${tests.join(' || ')}; } || echo missing ${i}`;
    })
    .concat('true')
    .join('\n');
}

/**
 * A sh script that prints the text of each control file that exists between `begin I` and `end I`
 * lines (control files are a few lines); a missing one prints nothing.
 */
export function controlFilesScript(paths: string[]): string {
  return paths
    .map(
      (p, i) => `if [ -f ${quote(p)} ]; then echo 'begin ${i}'; cat ${quote(p)}; echo; echo 'end ${i}'; fi`,
    )
    .concat('true')
    .join('\n');
}

/** What controlFilesScript printed: the text of each control file found, by index. */
export function parseControlFiles(out: string): Map<number, string> {
  const found = new Map<number, string>();
  const lines = out.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const b = /^begin (\d+)$/.exec(lines[i]!);
    if (!b) continue;
    const n = Number(b[1]);
    const body: string[] = [];
    for (i++; i < lines.length && lines[i] !== `end ${n}`; i++) body.push(lines[i]!);
    found.set(n, body.join('\n'));
  }
  return found;
}

/** The indexes missingFilesScript printed. */
export function parseMissing(out: string): Set<number> {
  return new Set([...out.matchAll(/^missing (\d+)$/gm)].map((m) => Number(m[1])));
}

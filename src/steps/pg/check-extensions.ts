// `pg.check_extensions`: before a major upgrade, on every node, that the new major's installation
// holds what the cluster will load: the control file of every extension installed in any database,
// the shared library of every C function (extension members and others: what pg_upgrade --check
// looks for, but on the leader only) and the control file's module_pathname, and each entry of
// shared_preload_libraries. Each node reads its own server: the catalogs are the leader's
// (physical replication), the settings are the node's own. Reads only; refuses naming every gap.
import { Type } from '@sinclair/typebox';
import { openPg, type PgSession } from '../../connections/pg.js';
import { commandLine } from '../../connections/transport.js';
import { StepFailure } from '../../errors.js';
import { quote } from '../../util/shell.js';
import { defineStep, type PlanContext } from '../define.js';
import {
  controlFilesScript,
  libraryCandidates,
  missingFilesScript,
  modulePathname,
  parseControlFiles,
  parseMissing,
  plausibleLibrary,
  type Requirement,
  requirers,
  splitLibraryList,
} from './extension-files.js';

const Dir = (what: string) =>
  Type.String({
    pattern: '^(/.*)?$',
    description: `${what} of the installation checked; empty or absent: what bin_dir/pg_config says`,
  });

const Params = Type.Object(
  {
    bin_dir: Type.String({
      pattern: '^/',
      description: "the installation's bin directory (the new major's)",
    }),
    lib_dir: Type.Optional(Dir('pkglibdir (where $libdir points)')),
    share_dir: Type.Optional(Dir('sharedir (control files in its extension/)')),
  },
  { additionalProperties: false },
);

const Outputs = Type.Object({
  lib_dir: Type.String(),
  share_dir: Type.String(),
  databases: Type.Array(Type.String(), { description: 'the databases read (those accepting connections)' }),
  extensions: Type.Array(
    Type.Object({ database: Type.String(), name: Type.String(), version: Type.String() }),
  ),
  libraries: Type.Array(Type.String(), {
    description: 'every library found needed, as the catalog names it',
  }),
  shared_preload_libraries: Type.Array(Type.String()),
});

type P = typeof Params.static;
type Out = typeof Outputs.static;

export const DATABASES_SQL = 'select datname from pg_database where datallowconn order by datname';
export const SETTINGS_SQL =
  "select current_setting('shared_preload_libraries') as preload, current_setting('dynamic_library_path') as path";
/**
 * Per database: each extension with the libraries of its C functions; then C functions of no
 * extension, made by users (below FirstNormalObjectId they are initdb's, shipped with the server).
 */
export const EXTENSIONS_SQL = `select e.extname as name, e.extversion as version,
  array(select distinct p.probin from pg_depend d join pg_proc p on p.oid = d.objid
        where d.refclassid = 'pg_extension'::regclass and d.refobjid = e.oid
          and d.classid = 'pg_proc'::regclass and d.deptype = 'e' and p.probin is not null
        order by 1) as libraries
from pg_extension e order by 1`;
export const FUNCTIONS_SQL = `select p.oid::regprocedure::text as function, p.probin as library
from pg_proc p
where p.probin is not null and p.prolang = (select oid from pg_language where lanname = 'c')
  and p.oid >= 16384 and not exists (select 1 from pg_depend d where d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e')
order by 1`;

const given = (d: string | undefined) => (d ? d.replace(/\/+$/, '') || '/' : undefined);

const pgConfigLine = (ctx: PlanContext, p: P) =>
  commandLine({ script: `${quote(`${p.bin_dir}/pg_config`)} --pkglibdir --sharedir` }, ctx.host.become);

/** One short read-only session per database, closed after. */
async function inDatabase<T>(
  ctx: PlanContext,
  database: string,
  f: (s: PgSession) => Promise<T>,
): Promise<T> {
  const s = await openPg(ctx.host.name, { ...ctx.host.pg!, database }, 'pgrunbook-check-extensions');
  try {
    await s.query('set default_transaction_read_only = on');
    return await f(s);
  } finally {
    await s.close();
  }
}

export default defineStep({
  type: 'pg.check_extensions',
  summary:
    "Check that an installation (an upgrade's new major) has the control file and shared libraries of every extension in every database of the host's server, and of shared_preload_libraries.",
  params: Params,
  outputs: Outputs,
  mutating: false,
  undoSummary: 'none (reads only)',
  needs(_ctx, p) {
    if (given(p.lib_dir) && given(p.share_dir)) return {};
    const major = /^\/usr\/lib\/postgresql\/(\d+)\/bin\/?$/.exec(p.bin_dir)?.[1];
    return {
      binaries: [
        {
          name: `${p.bin_dir.replace(/\/+$/, '')}/pg_config`,
          package: major ? `postgresql-client-${major}` : undefined,
          param: 'bin_dir',
        },
      ],
    };
  },
  plan(ctx, p) {
    const lib = given(p.lib_dir);
    const share = given(p.share_dir);
    return {
      action: `check the extension and preloaded library files under ${lib ?? `${p.bin_dir}/pg_config --pkglibdir`} and ${share ?? `${p.bin_dir}/pg_config --sharedir`}`,
      ops: [
        { kind: 'sql', sql: DATABASES_SQL },
        { kind: 'sql', sql: SETTINGS_SQL },
        { kind: 'note', text: 'in each database:' },
        { kind: 'sql', sql: EXTENSIONS_SQL },
        { kind: 'sql', sql: FUNCTIONS_SQL },
        ...(lib && share ? [] : [{ kind: 'command' as const, line: pgConfigLine(ctx, p) }]),
        {
          kind: 'note',
          text: 'then, on the host: SHAREDIR/extension/NAME.control of each extension, and each library (as given, or with .so) under LIBDIR',
        },
      ],
    };
  },
  async apply(ctx, p): Promise<Out> {
    if (!ctx.host.pg) throw new StepFailure(`host ${ctx.host.name} has no pg settings in the inventory`);
    const host = ctx.host.name;
    const t = await ctx.transport();
    const exec = async (script: string, what: string) => {
      const r = await t.exec(commandLine({ script }, ctx.host.become), { signal: ctx.signal });
      if (r.exitCode !== 0)
        throw new StepFailure(
          `${host}: ${what} failed (exit ${r.exitCode}): ${(r.stderr || r.stdout).trim().slice(-500)}`,
        );
      return r.stdout;
    };

    // Where the installation keeps its files: as given, else as its pg_config says (which follows
    // a relocated installation as its postgres does).
    let lib = given(p.lib_dir);
    let share = given(p.share_dir);
    if (!lib || !share) {
      const r = await t.exec(pgConfigLine(ctx, p), { signal: ctx.signal });
      const [l, s] = r.stdout.split('\n').map((x) => x.trim());
      if (r.exitCode !== 0 || !l?.startsWith('/') || !s?.startsWith('/'))
        throw new StepFailure(
          `${host}: ${p.bin_dir}/pg_config --pkglibdir --sharedir failed (exit ${r.exitCode}): ${(r.stderr || r.stdout).trim().slice(-300)}; set the directories (lib_dir, share_dir) instead`,
        );
      lib ??= l;
      share ??= s;
    }

    // What the cluster needs, read from its own server, database by database.
    const first = ctx.host.pg.database;
    const { databases, preload, path } = await inDatabase(ctx, first, async (s) => {
      const dbs = (await s.query(DATABASES_SQL)).rows.map((r) => String(r.datname));
      const set = (await s.query(SETTINGS_SQL)).rows[0]!;
      return { databases: dbs, preload: String(set.preload ?? ''), path: String(set.path ?? '$libdir') };
    });
    const extensions: Out['extensions'] = [];
    const needs: Requirement[] = [];
    // extension name → databases it is installed in (one control file each)
    const installed = new Map<string, string[]>();
    for (const db of databases) {
      await inDatabase(ctx, db, async (s) => {
        for (const r of (await s.query(EXTENSIONS_SQL)).rows) {
          const name = String(r.name);
          extensions.push({ database: db, name, version: String(r.version) });
          installed.set(name, [...(installed.get(name) ?? []), db]);
          for (const l of (r.libraries as string[]) ?? [])
            needs.push({ extension: { name, databases: [db] }, library: l });
        }
        for (const r of (await s.query(FUNCTIONS_SQL)).rows)
          needs.push({
            who: `function ${String(r.function)} (database ${db}, no extension)`,
            library: String(r.library),
          });
      });
    }
    const preloadList = splitLibraryList(preload);
    for (const l of preloadList) needs.push({ who: 'shared_preload_libraries', library: l });

    // Control files, and the module_pathname each names (what new versions' scripts load).
    const names = [...installed.keys()];
    const controls = names.map((n) => `${share}/extension/${n}.control`);
    const found = parseControlFiles(await exec(controlFilesScript(controls), 'reading the control files'));
    const gaps: string[] = [];
    names.forEach((n, i) => {
      const where = `database${installed.get(n)!.length > 1 ? 's' : ''} ${installed.get(n)!.join(', ')}`;
      const text = found.get(i);
      if (text === undefined) {
        gaps.push(`extension ${n} (${where}): ${controls[i]} is missing`);
        return;
      }
      const m = modulePathname(text);
      if (m) needs.push({ extension: { name: n, databases: installed.get(n)! }, library: m });
    });

    // Libraries: each distinct name once, every requirer named when it is missing.
    const byLibrary = new Map<string, Requirement[]>();
    for (const n of needs) {
      if (!plausibleLibrary(n.library)) {
        gaps.push(`${requirers([n])[0]} needs a library with an unusable name ${JSON.stringify(n.library)}`);
        continue;
      }
      byLibrary.set(n.library, [...(byLibrary.get(n.library) ?? []), n]);
    }
    const libraries = [...byLibrary.keys()];
    const candidates = libraries.map((l) => libraryCandidates(l, lib, path));
    const missing = parseMissing(await exec(missingFilesScript(candidates), 'checking the libraries'));
    libraries.forEach((l, i) => {
      if (!missing.has(i)) return;
      const files = candidates[i]!.map((c) => (c.endsWith('.so') ? c : `${c}.so`)).join(' or ');
      for (const who of requirers(byLibrary.get(l)!)) gaps.push(`${who} needs ${l}: ${files} is missing`);
    });

    if (gaps.length)
      throw new StepFailure(
        `${host}: the installation at ${p.bin_dir} (lib ${lib}, share ${share}) lacks what the cluster uses — ${gaps.join('; ')}. Install the new major's packages of these extensions on ${host} (or remove what is unused) before upgrading; nothing was changed`,
      );
    ctx.log(
      `${names.length} extension(s) in ${databases.length} database(s), ${libraries.length} librar${libraries.length === 1 ? 'y' : 'ies'} (shared_preload_libraries: ${preloadList.join(', ') || 'none'}): all present under ${lib} and ${share}`,
    );
    return {
      lib_dir: lib,
      share_dir: share,
      databases,
      extensions,
      libraries,
      shared_preload_libraries: preloadList,
    };
  },
});

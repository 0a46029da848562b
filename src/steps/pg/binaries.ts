// The PostgreSQL programs steps call, as they declare them to the preflight (see StepNeeds).
import type { StepNeeds } from '../define.js';

type Binary = NonNullable<StepNeeds['binaries']>[number];

/**
 * `dir/name`, with the Debian package that installs it: postgresql-MAJOR for Debian's layout
 * (/usr/lib/postgresql/MAJOR/bin); another layout (GitLab's Omnibus, a build) names no package.
 */
export function pgBinary(dir: string, name: string, param?: string): Binary {
  const major = /^\/usr\/lib\/postgresql\/(\d+)\/bin\/?$/.exec(dir)?.[1];
  return {
    name: `${dir.replace(/\/+$/, '')}/${name}`,
    package: major ? `postgresql-${major}` : undefined,
    param,
  };
}

/** A step's bin_dir: its param, else the host var pg_bin_dir; undefined when only PG_VERSION tells. */
export function knownBinDir(
  p: { bin_dir?: string },
  vars: Record<string, unknown>,
): { dir: string; param?: string } | undefined {
  if (p.bin_dir) return { dir: p.bin_dir, param: 'bin_dir' };
  return typeof vars.pg_bin_dir === 'string' ? { dir: vars.pg_bin_dir } : undefined;
}

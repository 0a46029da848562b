// Resource links: the full selfLinks GCE returns, and the full or partial URLs it accepts.

/** Where GCE's selfLinks point (the host the v1 API has always used in them). */
export const LINK_BASE = 'https://www.googleapis.com/compute/v1/';

/** A zone or a region, the two scopes a disk can live in. */
export interface Location {
  kind: 'zone' | 'region';
  name: string;
}

/** An operation's scope: a disk's location, or global (snapshots). */
export type Scope = Location | { kind: 'global' };

/** `zones/z`, `regions/r` or `global`. */
export function scopePath(s: Scope): string {
  return s.kind === 'global' ? 'global' : `${s.kind}s/${s.name}`;
}

/** The full URL of `projects/<project>/<rel>`. */
export const selfLink = (project: string, rel: string) => `${LINK_BASE}projects/${project}/${rel}`;

/** `projects/<project>/<rel>`: how GCE names a resource in error messages. */
export const resourcePath = (project: string, rel: string) => `projects/${project}/${rel}`;

/** The relative path of a disk: `zones/z/disks/d` or `regions/r/disks/d`. */
export const diskRel = (loc: Location, name: string) => `${scopePath(loc)}/disks/${name}`;

/**
 * The path after `projects/<project>/` of a full or partial URL, or undefined when it names
 * another project. Accepts `https://<any host>/compute/v1/projects/p/...`, `projects/p/...` and
 * partial URLs that start with `zones/`, `regions/` or `global/`.
 */
export function relOf(ref: string, project: string): string | undefined {
  let r = ref.trim();
  const m = /^https?:\/\/[^/]+\/compute\/v1\/(.*)$/.exec(r);
  if (m) r = m[1]!;
  r = r.replace(/^\/+/, '');
  if (r.startsWith('projects/')) {
    const [, p, ...rest] = r.split('/');
    if (p !== project) return undefined;
    return rest.join('/');
  }
  return /^(zones|regions|global)\//.test(r) ? r : undefined;
}

/** A disk named by a full or partial URL, or undefined when the URL is not a disk's. */
export function parseDiskRef(ref: string, project: string): { loc: Location; name: string } | undefined {
  const rel = relOf(ref, project);
  const m = rel ? /^(zones|regions)\/([^/]+)\/disks\/([^/]+)$/.exec(rel) : null;
  if (!m) return undefined;
  return { loc: { kind: m[1] === 'zones' ? 'zone' : 'region', name: m[2]! }, name: m[3]! };
}

/** A snapshot's name from a full or partial URL, or undefined when the URL is not a snapshot's. */
export function parseSnapshotRef(ref: string, project: string): string | undefined {
  const rel = relOf(ref, project);
  const m = rel ? /^global\/snapshots\/([^/]+)$/.exec(rel) : null;
  return m ? m[1] : undefined;
}

// A host's Google Compute Engine settings, resolved from the inventory. Kept apart from the client
// (src/connections/gcp.ts) so that loading an inventory never loads @google-cloud/compute.

/** A persistent disk: zonal (zone) or regional (region). */
export interface GcpDiskRef {
  name: string;
  zone?: string;
  region?: string;
  deviceName?: string;
  pgdata?: boolean;
}

/** How the client authenticates; key files are read by google-auth-library, never logged. */
export type GcpCredentials =
  | { kind: 'adc' }
  | { kind: 'key_file'; path: string }
  | { kind: 'impersonate'; target: string; keyFile?: string }
  /** no credentials: only against an emulator endpoint */
  | { kind: 'none' };

export interface GcpSettings {
  project: string;
  zone?: string;
  instance: string;
  /** Named in the inventory; undefined means "discover from the instance". */
  disks?: GcpDiskRef[];
  credentials: GcpCredentials;
  endpoint?: { host: string; port?: number; protocol: 'http' | 'https' };
  timeoutMs: number;
}

/** `https://compute.googleapis.com/compute/v1/` or the endpoint's equivalent, for plans. */
export function apiBase(s: GcpSettings): string {
  if (!s.endpoint) return 'https://compute.googleapis.com/compute/v1';
  const port = s.endpoint.port ? `:${s.endpoint.port}` : '';
  return `${s.endpoint.protocol}://${s.endpoint.host}${port}/compute/v1`;
}

/** A disk's resource path: projects/P/zones/Z/disks/D or projects/P/regions/R/disks/D. */
export function diskPath(s: GcpSettings, d: GcpDiskRef): string {
  return d.region
    ? `projects/${s.project}/regions/${d.region}/disks/${d.name}`
    : `projects/${s.project}/zones/${d.zone ?? s.zone}/disks/${d.name}`;
}

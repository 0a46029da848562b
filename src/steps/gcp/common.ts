// What the gcp.* steps share: the host's Compute clients (loaded on first use), GCE's naming and
// label rules, and the plan's view of API calls.
import { createHash } from 'node:crypto';
import type { Compute } from '../../connections/gcp.js';
import { apiBase, type GcpDiskRef, type GcpSettings } from '../../connections/gcp-settings.js';
import { StepFailure } from '../../errors.js';
import type { PlanContext } from '../define.js';

const computes = new Map<string, Promise<Compute>>();

/** The host's GCE settings; a host without them cannot run gcp.* steps. */
export function gcpOf(ctx: PlanContext): GcpSettings {
  const s = ctx.host.gcp;
  if (!s) throw new StepFailure(`host ${ctx.host.name} has no gcp settings in the inventory`);
  return s;
}

/** The host's Compute clients; the first call loads @google-cloud/compute (about a second). */
export async function computeOf(ctx: PlanContext & { log(line: string): void }): Promise<Compute> {
  const s = gcpOf(ctx);
  let c = computes.get(ctx.host.name);
  if (!c) {
    c = import('../../connections/gcp.js').then((m) => m.Compute.open(s));
    computes.set(ctx.host.name, c);
    c.catch(() => computes.delete(ctx.host.name));
  }
  const compute = await c;
  compute.log = (line) => ctx.log(line);
  return compute;
}

/** The connection module itself (errors, requestIds), loaded with the client. */
export const gcpModule = () => import('../../connections/gcp.js');

/** RFC 1035 names: lowercase letter first, then letters, digits, '-'; at most 63. */
export const NAME_RE = /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** Lowercases and replaces what GCE names refuse, keeping it readable. */
function slug(s: string): string {
  return s
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, '-')
    .replace(/-+/g, '-')
    .replace(/^-|-$/g, '');
}

/**
 * A deterministic resource name from its parts: the same backup and disk always give the same
 * name (so a re-run finds its snapshot), shortened with a hash when GCE's 63 characters are not
 * enough.
 */
export function resourceName(...parts: string[]): string {
  let name = parts.map(slug).filter(Boolean).join('-');
  if (!/^[a-z]/.test(name)) name = `s-${name}`;
  if (name.length > 63) {
    const hash = createHash('sha256').update(parts.join('\u0000')).digest('hex').slice(0, 8);
    name = `${name.slice(0, 54).replace(/-+$/, '')}-${hash}`;
  }
  return name.replace(/-+$/, '');
}

/** A label value as GCE allows it: lowercase letters, digits, '_' and '-', at most 63. */
export function labelValue(v: unknown): string {
  if (v === '{run-id}') return v;
  return String(v)
    .toLowerCase()
    .replace(/[^a-z0-9_-]/g, '-')
    .slice(0, 63);
}

/** A label key: starts with a lowercase letter; at most 63. */
export function labelKey(k: string): string {
  let key = k.toLowerCase().replace(/[^a-z0-9_-]/g, '_');
  if (!/^[a-z]/.test(key)) key = `l_${key}`;
  return key.slice(0, 63);
}

/** Sanitises a label map; a pg LSN like 0/3000028 becomes 0-3000028. */
export function labelsOf(m: Record<string, unknown>): Record<string, string> {
  return Object.fromEntries(Object.entries(m).map(([k, v]) => [labelKey(k), labelValue(v)]));
}

/** The disk a resource link or name points at, with its zone or region. */
export function diskRefOf(source: string, fallbackZone?: string): GcpDiskRef {
  const zone = /\/zones\/([^/]+)\/disks\//.exec(source)?.[1];
  const region = /\/regions\/([^/]+)\/disks\//.exec(source)?.[1];
  const name = source.slice(source.lastIndexOf('/') + 1);
  return region ? { name, region } : { name, zone: zone ?? fallbackZone };
}

/** A disk's URL for the plan. */
export function diskUrl(s: GcpSettings, d: GcpDiskRef): string {
  const where = d.region ? `regions/${d.region}` : `zones/${d.zone ?? s.zone}`;
  return `${apiBase(s)}/projects/${s.project}/${where}/disks/${d.name}`;
}

export function instanceUrl(s: GcpSettings, instance = s.instance): string {
  return `${apiBase(s)}/projects/${s.project}/zones/${s.zone}/instances/${instance}`;
}

export function snapshotUrl(s: GcpSettings, name: string): string {
  return `${apiBase(s)}/projects/${s.project}/global/snapshots/${name}`;
}

/** The operation-wait line of a plan. */
export function opWait(what: string, timeoutSeconds: number) {
  return {
    kind: 'wait' as const,
    what: `${what}: operations.wait until DONE (again while it returns earlier), then its error checked`,
    timeoutSeconds,
  };
}

/** The run id, as templates see it. */
export function runIdOf(ctx: PlanContext): string {
  try {
    return String(ctx.evaluate('run.id'));
  } catch {
    return '(known after apply)';
  }
}

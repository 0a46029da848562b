// GCE's input rules: resource names, labels, request ids, zone and region names.
import { createHash } from 'node:crypto';
import { invalidField } from './errors.js';

const NAME = /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/;
const NAME_REGEX_TEXT = '(?:[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?)';
// Label keys and values: lowercase letters, digits, `_` and `-` (GCE also allows international
// letters; \p{Ll} and \p{Lo} stand for those).
const LABEL_KEY = /^[\p{Ll}\p{Lo}][\p{Ll}\p{Lo}\p{N}_-]{0,62}$/u;
const LABEL_VALUE = /^[\p{Ll}\p{Lo}\p{N}_-]{0,63}$/u;
const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const ZONE = /^[a-z]+-[a-z]+[0-9]+-[a-z]$/;
const REGION = /^[a-z]+-[a-z]+[0-9]+$/;

/** Throws GCE's 400 unless `name` is an RFC 1035 resource name; `field` is how GCE names it. */
export function checkName(name: unknown, field = 'resource.name'): string {
  if (typeof name !== 'string' || !NAME.test(name))
    throw invalidField(field, name, `Must be a match of regex '${NAME_REGEX_TEXT}'`);
  return name;
}

/** Throws GCE's 400 unless `labels` is a valid label map; returns a copy (empty when absent). */
export function checkLabels(labels: unknown, field = 'resource.labels'): Record<string, string> {
  if (labels === undefined || labels === null) return {};
  if (typeof labels !== 'object' || Array.isArray(labels))
    throw invalidField(
      field,
      JSON.stringify(labels),
      'Labels must be a map of string keys to string values.',
    );
  const entries = Object.entries(labels as Record<string, unknown>);
  if (entries.length > 64)
    throw invalidField(field, entries.length, 'A resource can have at most 64 labels.');
  for (const [k, v] of entries) {
    if (!LABEL_KEY.test(k))
      throw invalidField(
        `${field}.key`,
        k,
        'Label keys must start with a lowercase letter, contain only lowercase letters, digits, ' +
          "'_' and '-', and be 1 to 63 characters long.",
      );
    if (typeof v !== 'string' || !LABEL_VALUE.test(v))
      throw invalidField(
        `${field}.value`,
        v,
        `Label value for key '${k}' must contain only lowercase letters, digits, '_' and '-', ` +
          'and be at most 63 characters long.',
      );
  }
  return Object.fromEntries(entries) as Record<string, string>;
}

/** Throws GCE's 400 unless `id` is a UUID other than the zero UUID; undefined passes. */
export function checkRequestId(id: string | undefined): string | undefined {
  if (id === undefined || id === '') return undefined;
  if (!UUID.test(id) || /^[0-]+$/.test(id))
    throw invalidField(
      'requestId',
      id,
      'The request ID must be a valid UUID with the exception that zero UUID is not supported ' +
        '(00000000-0000-0000-0000-000000000000).',
    );
  return id;
}

/** Throws GCE's 400 for a zone name that cannot exist (e.g. `europe-west1-b` is fine). */
export function checkZone(zone: string): string {
  if (!ZONE.test(zone)) throw invalidField('zone', zone, 'Unknown zone.');
  return zone;
}

/** Throws GCE's 400 for a region name that cannot exist (e.g. `europe-west1` is fine). */
export function checkRegion(region: string): string {
  if (!REGION.test(region)) throw invalidField('region', region, 'Unknown region.');
  return region;
}

/** Whether a zone lies in a region (GCE zone names are the region plus `-<letter>`). */
export const zoneInRegion = (zone: string, region: string) => zone.slice(0, zone.lastIndexOf('-')) === region;

/** GCE-like fingerprint of a label map: 8 bytes of a hash over the sorted pairs, base64. */
export function labelFingerprint(labels: Record<string, string>): string {
  const sorted = Object.keys(labels)
    .sort()
    .map((k) => [k, labels[k]]);
  return createHash('sha256').update(JSON.stringify(sorted)).digest().subarray(0, 8).toString('base64');
}

/** A positive whole number of GB from a JSON int64 (GCE sends those as strings). */
export function checkSizeGb(v: unknown, field = 'resource.sizeGb'): number | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  const n = typeof v === 'number' ? v : typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : Number.NaN;
  if (!Number.isInteger(n) || n < 1 || n > 65536)
    throw invalidField(field, v, 'Disk size must be a whole number of GB between 1 and 65536.');
  return n;
}

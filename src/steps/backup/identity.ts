// The backup's identity check, shared by pg.backup_start, pg.backup_stop and backup.write_labels:
// which directories must be the held session's server (the inventory's pgdata, what each snapshot
// took), and the check itself, run on the host before any label exists.
import {
  type Claim,
  checkPairing,
  type Pairing,
  type ServerIdentity,
} from '../../connections/pg-identity.js';
import type { InventoryHost } from '../../inventory/inventory.js';
import type { ApplyContext } from '../define.js';

const CONTROL = 'global/pg_control';

/** The host's `pgdata` var, when the inventory sets one. */
export function pgdataOf(host: InventoryHost): string | undefined {
  const d = host.vars.pgdata;
  return typeof d === 'string' && d.startsWith('/') ? d : undefined;
}

/**
 * The directories that must be the server's: the inventory's pgdata (what the upgrade stops and
 * the rollback restores), and what each snapshot registered: fs.snapshot's source, with the
 * pg_control of the copy (or the btrfs snapshot); for gcp.snapshot, the disks hold the live
 * pgdata (the host's, else data_directory), so its live pg_control. A snapshot skipped by `when`
 * took nothing. One that is none of these cannot be paired: a claim that fails.
 */
export function claimsOf(
  host: InventoryHost,
  dataDirectory: string,
  snapshots: readonly unknown[] = [],
): Claim[] {
  const pgdata = pgdataOf(host);
  const claims: Claim[] = [];
  if (pgdata)
    claims.push({ what: "the inventory's pgdata is", dir: pgdata, control: `${pgdata}/${CONTROL}` });
  for (const raw of snapshots) {
    const s = (raw ?? {}) as Record<string, unknown>;
    if (s.skipped === true) continue;
    if (s.provider === 'gcp') {
      // The disk snapshots hold whatever is live in pgdata: its pg_control is the one to read.
      const dir = pgdata ?? dataDirectory;
      if (!pgdata) claims.push({ what: 'gcp.snapshot took the disks of', dir, control: `${dir}/${CONTROL}` });
      continue;
    }
    if (typeof s.source === 'string' && typeof s.data === 'string')
      claims.push({
        what: `fs.snapshot (${String(s.provider)}) copied`,
        dir: s.source,
        control: `${s.data}/${CONTROL}`,
      });
    else
      claims.push({
        what: 'a snapshot output without source and data (not what fs.snapshot or gcp.snapshot registered) names',
        dir: String(s.source ?? s.data ?? '(nothing)'),
        control: '/nonexistent',
      });
  }
  return claims;
}

/** Whether any of the snapshots took something (a skipped provider step took nothing). */
export function tookSomething(snapshots: readonly unknown[] = []): boolean {
  return snapshots.some((s) => (s as { skipped?: unknown } | undefined)?.skipped !== true);
}

/** Checks the claims on the host, with the host's become (pg_control is the server user's). */
export function checkIdentity(
  ctx: ApplyContext,
  id: Pick<ServerIdentity, 'system_identifier' | 'data_directory'>,
  claims: Claim[],
): Promise<Pairing> {
  return ctx
    .transport()
    .then((t) => checkPairing(t, id, claims, { become: ctx.host.become, signal: ctx.signal }));
}

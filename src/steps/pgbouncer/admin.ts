// PgBouncer's admin console (the virtual database `pgbouncer`), reached with the pg driver: it
// speaks only the simple query protocol, which the driver uses for a statement without parameters.
import { openPg, type PgSession } from '../../connections/pg.js';
import { StepFailure } from '../../errors.js';
import type { InventoryHost } from '../../inventory/inventory.js';

/** The admin console's settings of a host, or a failure naming what the inventory lacks. */
export function bouncerSettings(host: InventoryHost): NonNullable<InventoryHost['pgbouncer']> {
  if (!host.pgbouncer)
    throw new StepFailure(
      `host ${host.name}: pgbouncer settings (its admin console) are needed in the inventory`,
    );
  return host.pgbouncer;
}

/** `host:port` of the console, for plans and messages. */
export const consoleAddress = (host: InventoryHost) =>
  host.pgbouncer ? `${host.pgbouncer.host}:${host.pgbouncer.port}` : '(pgbouncer settings missing)';

/** Opens one admin session; the caller closes it. */
export function openConsole(host: InventoryHost): Promise<PgSession> {
  const s = bouncerSettings(host);
  return openPg(host.name, { ...s, database: 'pgbouncer' }, 'pgrunbook');
}

/** Runs one console command on a fresh session (aborted with the signal: the session is closed). */
export async function consoleCommand(
  host: InventoryHost,
  command: string,
  signal?: AbortSignal,
): Promise<Record<string, unknown>[]> {
  const s = await openConsole(host);
  const stop = () => void s.close().catch(() => {});
  signal?.addEventListener('abort', stop, { once: true });
  try {
    return (await s.query(command)).rows;
  } finally {
    signal?.removeEventListener('abort', stop);
    await s.close().catch(() => {});
  }
}

/** RESUME; `false` when the pooler was not paused (PgBouncer refuses the command then). */
export async function resumeConsole(host: InventoryHost, signal?: AbortSignal): Promise<boolean> {
  try {
    await consoleCommand(host, 'RESUME', signal);
    return true;
  } catch (err) {
    if (/not paused/i.test((err as Error).message)) return false;
    throw err;
  }
}

// `plan --check`: runs the read-only previews steps offer (chef-client --why-run) once the plan is
// built, over the same transports a run would use.

import type { PreviewRequest } from '../engine/model.js';
import type { Inventory } from '../inventory/inventory.js';
import { ConnectionPool } from '../runner/connections.js';
import { mapLimit } from '../util/semaphore.js';

/** Hosts previewed at once; each preview is one command on its host. */
const PARALLEL = 8;

/** Fills each request's `target.preview`; a failed preview is shown as such, never hidden. */
export async function runPreviews(requests: PreviewRequest[], inventory: Inventory): Promise<number> {
  if (requests.length === 0) return 0;
  const pool = new ConnectionPool();
  const signal = new AbortController().signal;
  let failed = 0;
  try {
    // One host's previews run one after another: chef-client, say, holds a run lock.
    const byHost = new Map<string, PreviewRequest[]>();
    for (const r of requests) byHost.set(r.host, [...(byHost.get(r.host) ?? []), r]);
    await mapLimit([...byHost.values()], PARALLEL, async (list) => {
      for (const r of list) {
        try {
          r.target.preview = await r.run({
            transport: () => pool.transport(inventory.hosts.get(r.host)!),
            signal,
          });
        } catch (err) {
          failed++;
          r.target.preview = { error: `preview failed: ${(err as Error).message}` };
        }
      }
    });
  } finally {
    await pool.closeAll();
  }
  return failed;
}

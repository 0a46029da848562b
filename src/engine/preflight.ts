// Before anything runs (plan --check, and run before its first step): every SSH host the plan
// targets is reached with its host key verified, and `become` is tried. A refused host key or a
// sudo that asks for a password is found here, not after the cluster was paused.
import { openSsh } from '../connections/ssh.js';
import { commandLine } from '../connections/transport.js';
import type { Problem } from '../errors.js';
import type { Inventory } from '../inventory/inventory.js';
import { Semaphore } from '../util/semaphore.js';

/** Handshakes at once: below OpenSSH's default MaxStartups (10). */
const AT_ONCE = new Semaphore(8);

/** Problems, located at each host in the inventory, that would stop a run on it. */
export async function preflight(inventory: Inventory, hosts: readonly string[]): Promise<Problem[]> {
  const found = await Promise.all(hosts.map((name) => AT_ONCE.run(() => checkHost(inventory, name))));
  return found.flat();
}

async function checkHost(inventory: Inventory, name: string): Promise<Problem[]> {
  const h = inventory.hosts.get(name);
  if (!h || h.transport !== 'ssh' || !h.ssh) return [];
  const at = (message: string) =>
    inventory.doc.problem(['hosts', name], `preflight: ${message}`, { key: true });
  let t: Awaited<ReturnType<typeof openSsh>>;
  try {
    t = await openSsh(h.ssh);
  } catch (err) {
    return [at(`ssh: ${(err as Error).message}`)];
  }
  try {
    const r = await t.exec(commandLine({ script: 'true' }, h.become));
    if (r.exitCode !== 0)
      return [
        at(
          h.become
            ? `become (sudo -n) does not work for ${h.ssh.user}@${h.ssh.host}: ${r.stderr.trim().split('\n').slice(-2).join(' ') || `exit ${r.exitCode}`}`
            : `ssh: a command on ${h.ssh.host} failed (exit ${r.exitCode}): ${r.stderr.trim()}`,
        ),
      ];
    return [];
  } catch (err) {
    return [at(`ssh: ${(err as Error).message}`)];
  } finally {
    await t.close();
  }
}

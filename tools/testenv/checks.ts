// Small checks the environment tests and the integration tests share: a query, a poll, a file.
import { access, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import pg from 'pg';

/** Runs one statement on a fresh connection and returns its rows. */
export async function sql<T = Record<string, unknown>>(config: pg.ClientConfig, text: string): Promise<T[]> {
  const client = new pg.Client(config);
  await client.connect();
  try {
    return (await client.query(text)).rows as T[];
  } finally {
    await client.end();
  }
}

/** Polls `check` (a throw counts as "not yet") until it is true; fails after `timeoutMs`. */
export async function waitUntil(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs: number,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      // not yet
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export const exists = (path: string) =>
  access(path).then(
    () => true,
    () => false,
  );

/** The postmaster's PID from DATA/postmaster.pid. */
export const postmasterPid = async (dataDir: string) =>
  Number((await readFile(join(dataDir, 'postmaster.pid'), 'utf8')).split('\n')[0]);

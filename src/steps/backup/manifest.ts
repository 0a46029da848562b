// Reading a backup back: its manifest (written by backup.write_labels), trusted only when it says
// complete and the stored labels still hash to what it recorded.

import type { Transport } from '../../connections/transport.js';
import { StepFailure } from '../../errors.js';
import { quote } from '../../util/shell.js';

export interface Manifest {
  status: string;
  backup_id: string;
  pg_version_num?: number;
  system_identifier?: string;
  stop_lsn?: string;
  snapshots?: {
    provider?: string;
    data?: string;
    tablespaces?: { oid: string; source: string; path: string }[];
  }[];
  files: { backup_label: { sha256: string }; tablespace_map?: { sha256: string } };
}

/** The manifest of the backup in `from`, refused unless complete with intact labels. */
export async function readCheckedManifest(
  t: Transport,
  from: string,
  signal: AbortSignal,
): Promise<Manifest> {
  const read = await t.exec(`cat ${quote(`${from}/manifest.json`)}`, { signal });
  if (read.exitCode !== 0)
    throw new StepFailure(
      `reading the manifest failed (exit ${read.exitCode}): ${read.stderr.trim().slice(-500)}`,
    );
  const m = JSON.parse(read.stdout) as Manifest;
  if (m.status !== 'complete')
    throw new StepFailure(`backup in ${from} is "${m.status}", not complete: it cannot be trusted`);
  const sums = await t.exec(
    `sha256sum ${quote(`${from}/backup_label`)}${m.files.tablespace_map ? ` ${quote(`${from}/tablespace_map`)}` : ''}`,
    { signal },
  );
  if (sums.exitCode !== 0)
    throw new StepFailure(`checking the stored labels failed: ${sums.stderr.trim().slice(-500)}`);
  if (!sums.stdout.startsWith(m.files.backup_label.sha256))
    throw new StepFailure(
      `${from}/backup_label does not match the manifest's sha256: refusing to restore with it`,
    );
  if (m.files.tablespace_map && !sums.stdout.includes(m.files.tablespace_map.sha256))
    throw new StepFailure(`${from}/tablespace_map does not match the manifest's sha256`);
  return m;
}

// Reading a backup back: its manifest (written by backup.write_labels), trusted only when it says
// complete and the stored labels still hash to what it recorded. A backup whose restore proof
// failed is kept, marked `verify_failed` with the reason: only a new proof may read it then.

import { commandLine, type Transport } from '../../connections/transport.js';
import { StepFailure } from '../../errors.js';
import { quote } from '../../util/shell.js';
import { writeRemoteFile } from '../remote-files.js';

/** The statuses a manifest can have: `void` (a run failed before it was complete), `complete`, `verify_failed`. */
export type ManifestStatus = 'complete' | 'void' | 'verify_failed';

/** The last restore proof of a backup (backup.verify), as the manifest records it. */
export interface VerifyRecord {
  status: 'ok' | 'failed';
  at: string;
  /** why the proof failed: the step's error, with the restored server's last log lines */
  reason?: string;
  consistent_lsn?: string;
}

export interface Manifest {
  status: string;
  backup_id: string;
  pg_version_num?: number;
  system_identifier?: string;
  stop_lsn?: string;
  /** pg_basebackup: the WAL from start to stop is in the copy */
  wal_included?: boolean;
  /** pg_basebackup: the copy has its own backup_manifest (pg_verifybackup) */
  backup_manifest?: boolean;
  snapshots?: {
    provider?: string;
    data?: string;
    /** pg_basebackup: plain or tar */
    format?: string;
    /** pg_basebackup: the OIDs of tablespaces inside the copy */
    tablespaces_in_copy?: string[];
    tablespaces?: { oid: string; source: string; path: string }[];
  }[];
  files: { backup_label: { sha256: string }; tablespace_map?: { sha256: string } };
  verify?: VerifyRecord;
}

/** The manifest in `from` as it is on disk, unchecked. */
async function readManifest(
  t: Transport,
  from: string,
  signal: AbortSignal,
  become?: 'sudo',
): Promise<Manifest> {
  const read = await t.exec(commandLine({ script: `cat ${quote(`${from}/manifest.json`)}` }, become), {
    signal,
  });
  if (read.exitCode !== 0)
    throw new StepFailure(
      `reading the manifest failed (exit ${read.exitCode}): ${read.stderr.trim().slice(-500)}`,
    );
  return JSON.parse(read.stdout) as Manifest;
}

/**
 * The manifest of the backup in `from`, refused unless complete with intact labels. A proof
 * (`unproven: true`: backup.verify, backup.restore) also reads a `verify_failed` one: proving it
 * again is what keeping it was for.
 */
export async function readCheckedManifest(
  t: Transport,
  from: string,
  signal: AbortSignal,
  opts: { unproven?: boolean } = {},
): Promise<Manifest> {
  const m = await readManifest(t, from, signal);
  if (m.status === 'verify_failed' && !opts.unproven)
    throw new StepFailure(
      `backup in ${from} is "verify_failed": its restore proof failed (${firstLine(m.verify?.reason)}). Prove it first (${proofPlaybook(m)} -e backup_dir=${from}); a proof that succeeds marks it complete again`,
    );
  if (m.status !== 'complete' && !(m.status === 'verify_failed' && opts.unproven))
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

/** The shipped playbook that proves a backup: one of GCP snapshots only needs a disk made from them. */
function proofPlaybook(m: Manifest): string {
  const snaps = m.snapshots ?? [];
  return snaps.length > 0 && snaps.every((x) => x.provider === 'gcp')
    ? 'playbooks/gcp-restore-verify.yml'
    : 'playbooks/restore-verify.yml';
}

/**
 * A reason in one line a summary can hold: its first line, and the server's own complaint when
 * the log lines below it have one (a FATAL says more than "did not start").
 */
function firstLine(reason: string | undefined): string {
  const lines = (reason ?? 'no reason recorded').split('\n');
  const head = lines[0]!.trim().replace(/:$/, '');
  const said = lines.map((l) => l.match(/\b((?:FATAL|PANIC|ERROR):\s+.*)$/)?.[1]).find(Boolean);
  const line = said && !head.includes(said) ? `${head}: ${said.trim()}` : head;
  return line.length > 400 ? `${line.slice(0, 400)}…` : line;
}

/**
 * Records a restore proof in the manifest in `from` (rewritten whole, atomically): a failed one
 * marks the backup `verify_failed` with the reason, one that succeeds marks it `complete` again.
 * Only a complete or verify_failed manifest is rewritten: a void one stays void.
 */
export async function recordVerify(
  t: Transport,
  from: string,
  record: VerifyRecord,
  opts: { become?: 'sudo'; signal?: AbortSignal },
): Promise<void> {
  const m = (await readManifest(
    t,
    from,
    opts.signal ?? new AbortController().signal,
    opts.become,
  )) as Manifest & Record<string, unknown>;
  if (m.status !== 'complete' && m.status !== 'verify_failed')
    throw new StepFailure(`the manifest in ${from} says "${m.status}": not recording a proof in it`);
  const next = { ...m, status: record.status === 'ok' ? 'complete' : 'verify_failed', verify: record };
  await writeRemoteFile(t, `${from}/manifest.json`, `${JSON.stringify(next, null, 2)}\n`, opts);
}

/**
 * One line for a failed run's summary about a backup it kept: where it is, what its manifest says
 * (and why, when its proof failed), and the commands that delete it once it is not wanted.
 */
export async function describeKept(
  t: Transport,
  dir: string,
  opts: { become?: 'sudo'; host: string; signal: AbortSignal },
): Promise<string> {
  const m = await readManifest(t, dir, opts.signal, opts.become);
  const snaps = m.snapshots ?? [];
  const sudo = opts.become ? 'sudo ' : '';
  const del: string[] = [];
  for (const s of snaps as {
    provider?: string;
    id?: string;
    project?: string;
    snapshots?: { name: string }[];
  }[]) {
    if (s.provider === 'gcp') {
      const names = s.snapshots?.map((x) => x.name) ?? String(s.id ?? '').split(',');
      del.push(
        `gcloud compute snapshots delete ${names.map(quote).join(' ')}${s.project ? ` --project ${quote(s.project)}` : ''}`,
      );
    } else if (s.provider === 'btrfs' && s.id) del.push(`${sudo}btrfs subvolume delete ${quote(s.id)}`);
    else if (s.provider === 'pg_basebackup') {
      // The copy may live outside the backup's directory (pg.basebackup's `to`).
      const data = (s as { data?: string }).data;
      if (data && !data.startsWith(`${dir}/`)) del.push(`${sudo}rm -rf -- ${quote(data)}`);
    } else if (s.id && s.id !== dir) del.push(`${sudo}rm -rf -- ${quote(s.id)}`);
  }
  del.push(`${sudo}rm -rf -- ${quote(dir)}`);
  const state =
    m.status === 'verify_failed'
      ? `manifest status verify_failed: ${firstLine(m.verify?.reason)}. It was not proven to restore: prove it again with ${proofPlaybook(m)} (-e backup_dir=${dir})`
      : m.status === 'complete'
        ? `manifest status complete${m.verify?.status === 'ok' ? `, proven to restore at ${m.verify.at}` : ', not proven to restore by this run'}`
        : `manifest status ${m.status}`;
  return `backup ${m.backup_id} kept in ${dir} on ${opts.host} (${dir}/manifest.json: ${state}). To delete it: ${del.join(' && ')}`;
}

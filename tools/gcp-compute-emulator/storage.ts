// Disks and snapshots are directories: a snapshot is a real copy of a disk's tree (a btrfs
// snapshot when the disk is a subvolume), a disk from a snapshot a copy back.
import { execFile } from 'node:child_process';
import { mkdir, rm, stat } from 'node:fs/promises';
import { dirname, resolve, sep } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** How a tree was copied: a btrfs snapshot, or `cp -a` (reflinked where the filesystem can). */
export type CopyMethod = 'btrfs' | 'cp';

/** Whether `dir` is the root of a btrfs subvolume. */
export async function isSubvolume(dir: string): Promise<boolean> {
  try {
    // Every btrfs subvolume root has inode 256: a cheap filter before spawning btrfs.
    if ((await stat(dir)).ino !== 256) return false;
    await run('btrfs', ['subvolume', 'show', dir]);
    return true;
  } catch {
    return false;
  }
}

/**
 * Copies the tree at `src` to `dst` (which must not exist yet), keeping owners, modes, symlinks
 * and timestamps. A subvolume becomes a btrfs snapshot (read-only if asked) when `dst` is on the
 * same filesystem; anything else is copied with `cp -a`.
 */
export async function copyTree(src: string, dst: string, opts: { readOnly: boolean }): Promise<CopyMethod> {
  await mkdir(dirname(dst), { recursive: true });
  if (await isSubvolume(src)) {
    try {
      await run('btrfs', ['subvolume', 'snapshot', ...(opts.readOnly ? ['-r'] : []), src, dst]);
      return 'btrfs';
    } catch {
      // dst on another filesystem (or no permission): a plain copy still works
    }
  }
  await mkdir(dst);
  try {
    // `src/.` copies the top directory's own owner, mode and times onto dst too.
    await run('cp', ['-a', '--reflink=auto', `${src}/.`, `${dst}/`], { maxBuffer: 16 << 20 });
  } catch (err) {
    const stderr = String((err as { stderr?: unknown }).stderr ?? '');
    const problems = stderr.split('\n').filter((l) => l.trim() !== '');
    // A live data directory loses files while it is copied (WAL recycled, temp files): like
    // rsync's exit 24 those are not errors of the copy. Anything else is.
    if (problems.length === 0 || !problems.every((l) => /No such file or directory/.test(l)))
      throw new Error(`cp -a ${src} ${dst} failed: ${stderr.trim() || (err as Error).message}`);
  }
  return 'cp';
}

/** Removes a disk's or snapshot's tree; refuses anything that is not strictly inside `root`. */
export async function removeTree(dir: string, root: string): Promise<void> {
  const d = resolve(dir);
  const r = resolve(root);
  if (!d.startsWith(r + sep)) throw new Error(`refusing to remove ${d}: not inside the emulator root ${r}`);
  if (await isSubvolume(d)) {
    await run('btrfs', ['subvolume', 'delete', d]);
    return;
  }
  await rm(d, { recursive: true, force: true });
}

/** Bytes used by a tree (apparent size), for a snapshot's storageBytes. */
export async function treeBytes(dir: string): Promise<number> {
  try {
    const { stdout } = await run('du', ['-sb', dir]);
    return Number.parseInt(stdout, 10) || 0;
  } catch (err) {
    // du still prints the total when some file vanished while it counted.
    return Number.parseInt(String((err as { stdout?: unknown }).stdout ?? ''), 10) || 0;
  }
}

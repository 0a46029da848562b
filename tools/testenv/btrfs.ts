import { chmod, chown, mkdir, readdir, readFile, rm, rmdir, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { lookupUser, makeTempDir, runAs, SERVER_USER } from './osuser.js';
import { armWatchdog, shQuote } from './procs.js';

// Options for createBtrfs.
export interface CreateBtrfsOptions {
  // Apparent size of the sparse image; only what is written takes disk space.
  sizeGiB?: number;
  // How long destroy() retries a busy umount before it detaches lazily (default 5000).
  busyTimeoutMs?: number;
}

// A throwaway btrfs on a loop device; destroy() unmounts it, frees the loop device and deletes
// the image. Root only (loop devices and mounts).
export interface BtrfsFs {
  // Root of the filesystem (mode 0755, owned by root).
  mountPoint: string;
  // e.g. /dev/loop3
  loopDevice: string;
  // The sparse image file backing the loop device.
  image: string;
  // Temp dir holding image and mount point (removed by destroy()).
  rootDir: string;
  // `btrfs subvolume create MOUNT/name`, chowned to `owner` and mode 0700 (what a PostgreSQL
  // data directory needs); returns its path.
  createSubvolume(name: string, owner?: string): Promise<string>;
  // Idempotent; waits for a busy mount to be released (lazy unmount as a last resort).
  destroy(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// A btrfs of `sizeGiB` mounted (noatime,user_subvol_rm_allowed) at a fresh temp dir. A watchdog
// unmounts and detaches everything if this process dies before destroy().
export async function createBtrfs(opts: CreateBtrfsOptions = {}): Promise<BtrfsFs> {
  const sizeGiB = opts.sizeGiB ?? 2;
  const busyTimeoutMs = opts.busyTimeoutMs ?? 5000;
  if (process.getuid?.() !== 0) throw new Error('createBtrfs: needs root (losetup, mount)');
  // mkfs.btrfs refuses devices smaller than ~114 MiB.
  if (!(sizeGiB >= 0.25)) throw new Error(`createBtrfs: sizeGiB must be >= 0.25, got ${sizeGiB}`);

  const rootDir = await makeTempDir('pgrb-btrfs-', 'root');
  const image = join(rootDir, 'btrfs.img');
  const mountPoint = join(rootDir, 'mnt');
  // Armed before anything exists: it finds the loop device by its backing file, so a worker
  // that dies half-way through set-up leaks nothing either. Retries while a server that another
  // watchdog is stopping still holds the mount.
  const watchdog = armWatchdog(cleanupScript(rootDir, image, mountPoint));
  let loopDevice = '';

  const cleanup = async (): Promise<void> => {
    await unmount(mountPoint, busyTimeoutMs);
    await detachLoops(image);
    if (process.env.PGRB_KEEP_TEST_DIRS !== '1') {
      // Never a recursive delete: unmount() guarantees the mount is gone, but rm -r on a still
      // mounted directory would wipe the filesystem instead of failing.
      await rm(image, { force: true });
      await rmdir(mountPoint).catch(ignoreMissing);
      await rmdir(rootDir).catch(ignoreMissing);
    }
    await watchdog.disarm();
  };

  try {
    await writeFile(image, '', { mode: 0o600 });
    await truncate(image, Math.round(sizeGiB * 1024) * 1024 * 1024);
    await mkdir(mountPoint, { mode: 0o755 });
    loopDevice = (await runAs('root', ['losetup', '-f', '--show', image])).stdout.trim();
    if (!loopDevice.startsWith('/dev/loop')) throw new Error(`createBtrfs: losetup printed ${loopDevice}`);
    await runAs('root', ['mkfs.btrfs', '-q', '-f', loopDevice]);
    await runAs('root', [
      'mount',
      '-t',
      'btrfs',
      '-o',
      'noatime,user_subvol_rm_allowed',
      loopDevice,
      mountPoint,
    ]);
    // The mounted root is a new 0755 root-owned dir; make sure of o+x for the server user.
    await chmod(mountPoint, 0o755);
  } catch (err) {
    await cleanup().catch(() => {});
    throw err;
  }

  let destroying: Promise<void> | undefined;
  return {
    mountPoint,
    loopDevice,
    image,
    rootDir,
    createSubvolume: async (name: string, owner: string = SERVER_USER) => {
      if (!/^[A-Za-z0-9_.-]+$/.test(name) || name === '.' || name === '..')
        throw new Error(`createSubvolume: bad name ${JSON.stringify(name)}`);
      const path = join(mountPoint, name);
      await runAs('root', ['btrfs', 'subvolume', 'create', path]);
      const { uid, gid } = owner === 'root' ? { uid: 0, gid: 0 } : await lookupUser(owner);
      await chown(path, uid, gid);
      await chmod(path, 0o700);
      return path;
    },
    destroy: () => {
      // A failed destroy can be retried; a successful one is shared by every later call.
      destroying ??= cleanup().catch((err) => {
        destroying = undefined;
        throw err;
      });
      return destroying;
    },
  };
}

// Whether something is mounted exactly at `path` (this process's mount namespace).
export async function isMountPoint(path: string): Promise<boolean> {
  const info = await readFile('/proc/self/mountinfo', 'utf8');
  return info.split('\n').some((line) => unescapeMountinfo(line.split(' ')[4] ?? '') === path);
}

// Loop devices whose backing file is (or was, before it was deleted) `image`. Read from sysfs,
// not `losetup -j`, which fails once the image is gone.
export async function loopDevicesOf(image: string): Promise<string[]> {
  const out: string[] = [];
  for (const name of await readdir('/sys/block')) {
    if (!name.startsWith('loop')) continue;
    const backing = await readFile(`/sys/block/${name}/loop/backing_file`, 'utf8').catch(() => '');
    const b = backing.replace(/\n$/, '');
    if (b === image || b === `${image} (deleted)`) out.push(`/dev/${name}`);
  }
  return out;
}

// umount, retried while busy (e.g. a postmaster still exiting); lazy after `busyTimeoutMs`.
async function unmount(mountPoint: string, busyTimeoutMs: number): Promise<void> {
  const deadline = Date.now() + busyTimeoutMs;
  let lastError: unknown;
  while (await isMountPoint(mountPoint)) {
    if (Date.now() >= deadline) {
      // Detaches the mount now; the kernel releases the filesystem (and so the loop device,
      // which detachLoops marks autoclear) when its last user goes.
      await runAs('root', ['umount', '--lazy', mountPoint]).catch((e) => {
        throw new Error(`btrfs destroy: lazy umount of ${mountPoint} failed: ${(e as Error).message}`, {
          cause: lastError,
        });
      });
      return;
    }
    try {
      await runAs('root', ['umount', mountPoint]);
    } catch (e) {
      lastError = e;
      await sleep(100);
    }
  }
}

// losetup -d each loop device still backed by `image`. A device still held (lazy unmount) is
// only marked autoclear by the kernel and goes away when released.
async function detachLoops(image: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const devices = await loopDevicesOf(image);
    if (devices.length === 0) return;
    try {
      for (const d of devices) await runAs('root', ['losetup', '-d', d]);
      return;
    } catch (e) {
      if (attempt >= 20) throw e;
      await sleep(100);
    }
  }
}

// What the watchdog runs if this process dies before destroy(): same steps, in sh.
function cleanupScript(rootDir: string, image: string, mountPoint: string): string {
  const [r, i, m] = [rootDir, image, mountPoint].map(shQuote);
  return [
    'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    `n=0; while mountpoint -q ${m} && [ $n -lt 100 ]; do umount ${m} 2>/dev/null || sleep 0.1; n=$((n+1)); done`,
    `mountpoint -q ${m} && umount -l ${m}`,
    `for f in /sys/block/loop*/loop/backing_file; do b=$(cat "$f" 2>/dev/null) || continue; ` +
      `case "$b" in ${i}|${i}' (deleted)') d=\${f#/sys/block/}; losetup -d "/dev/\${d%%/*}";; esac; done`,
    `rm -f ${i}; rmdir ${m} ${r}`,
  ].join('; ');
}

// mountinfo escapes space, tab, newline and backslash as \ooo.
function unescapeMountinfo(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
}

function ignoreMissing(e: unknown): void {
  if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
}

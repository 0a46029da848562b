// Test helper: a directory tree as comparable data (types, modes, owners, times, contents, links).
import { createHash } from 'node:crypto';
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';

/** One entry of a tree, relative to its root ('.' is the root itself). */
export interface TreeEntry {
  path: string;
  type: 'dir' | 'file' | 'symlink' | 'other';
  mode: number;
  uid: number;
  gid: number;
  mtimeMs: number;
  /** sha256 of a file's content, or a symlink's target. */
  content?: string;
}

/** Every entry under `root`, sorted by path. */
export async function describeTree(root: string): Promise<TreeEntry[]> {
  const out: TreeEntry[] = [];
  const walk = async (rel: string) => {
    const abs = rel === '.' ? root : join(root, rel);
    const st = await lstat(abs);
    const type = st.isDirectory() ? 'dir' : st.isFile() ? 'file' : st.isSymbolicLink() ? 'symlink' : 'other';
    const content =
      type === 'file'
        ? createHash('sha256')
            .update(await readFile(abs))
            .digest('hex')
        : type === 'symlink'
          ? await readlink(abs)
          : undefined;
    out.push({
      path: rel,
      type,
      mode: st.mode & 0o7777,
      uid: st.uid,
      gid: st.gid,
      mtimeMs: Math.floor(st.mtimeMs),
      ...(content !== undefined ? { content } : {}),
    });
    if (type === 'dir')
      for (const name of (await readdir(abs)).sort()) await walk(rel === '.' ? name : join(rel, name));
  };
  await walk('.');
  return out;
}

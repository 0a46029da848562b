// Reads a file a user named (a playbook, a secret, a key, a certificate) without letting its kind
// or size hang or exhaust the runner: a FIFO with no writer would block a plain read for ever, a
// character device like /dev/zero never ends.
import { closeSync, constants, fstatSync, openSync, readSync, type Stats } from 'node:fs';

/** Why a file could not be read, in words fit for a message after its name. */
export class FileReadError extends Error {
  constructor(
    readonly path: string,
    readonly reason: string,
  ) {
    super(`${path}: ${reason}`);
  }
}

const KINDS: [(s: Stats) => boolean, string][] = [
  [(s) => s.isDirectory(), 'a directory'],
  [(s) => s.isFIFO(), 'a FIFO'],
  [(s) => s.isSocket(), 'a socket'],
  [(s) => s.isCharacterDevice(), 'a character device'],
  [(s) => s.isBlockDevice(), 'a block device'],
];

/** At most `maxBytes` of a regular file; `over` says there was more (one byte more is read to tell). */
export function readBounded(path: string, maxBytes: number): { data: Buffer; over: boolean; size: number } {
  let fd: number;
  try {
    // O_NONBLOCK: opening a FIFO with no writer returns at once instead of waiting for one.
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (err) {
    throw new FileReadError(path, reasonOf(err));
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) {
      const kind = KINDS.find(([is]) => is(st))?.[1] ?? 'a special file';
      throw new FileReadError(path, `not a regular file (${kind})`);
    }
    const buf = Buffer.alloc(Math.min(maxBytes + 1, Math.max(st.size + 1, 64 * 1024)));
    let big = buf;
    let n = 0;
    for (let r = 1; r > 0 && n < maxBytes + 1; n += r) {
      // A file can grow while it is read: grow the buffer up to the limit.
      if (n === big.length) {
        const next = Buffer.alloc(Math.min(maxBytes + 1, big.length * 2));
        big.copy(next);
        big = next;
      }
      r = readSync(fd, big, n, big.length - n, null);
    }
    return { data: big.subarray(0, Math.min(n, maxBytes)), over: n > maxBytes, size: Math.max(st.size, n) };
  } catch (err) {
    if (err instanceof FileReadError) throw err;
    throw new FileReadError(path, reasonOf(err));
  } finally {
    closeSync(fd);
  }
}

/** A whole regular file of at most `maxBytes`; anything else is a FileReadError. */
export function readRegularFile(path: string, maxBytes: number): Buffer {
  const r = readBounded(path, maxBytes);
  if (r.over) throw new FileReadError(path, `larger than ${maxBytes} bytes`);
  return r.data;
}

/** readRegularFile as UTF-8 text. */
export function readRegularText(path: string, maxBytes: number): string {
  return readRegularFile(path, maxBytes).toString('utf8');
}

function reasonOf(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'file not found';
  if (code === 'EACCES' || code === 'EPERM') return `permission denied (${code})`;
  if (code === 'EISDIR') return 'not a regular file (a directory)';
  return `cannot read it (${code ?? String(err)})`;
}

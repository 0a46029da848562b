// Host-key checking the way OpenSSH does it: known_hosts (plain and hashed entries) or a pin.
import { createHash, createHmac } from 'node:crypto';
import { FileReadError, readRegularText } from '../util/read-file.js';

/** A known_hosts file far larger than any real one is refused rather than read without end. */
const MAX_KNOWN_HOSTS_BYTES = 64 * 1024 * 1024;

/** OpenSSH's fingerprint of a raw public key blob: `SHA256:` + unpadded base64 of its sha256. */
export function fingerprint(keyBlob: Buffer): string {
  return `SHA256:${createHash('sha256').update(keyBlob).digest('base64').replace(/=+$/, '')}`;
}

/** The name a host:port is filed under in known_hosts. */
export function knownHostsName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

/** What known_hosts says about one presented key. */
export type HostKeyVerdict =
  /** a line for this host carries exactly this key */
  | 'trusted'
  /** lines for this host exist, none with this key: possible man-in-the-middle */
  | 'changed'
  /** no line names this host */
  | 'unknown'
  /** the key is marked @revoked */
  | 'revoked';

interface Entry {
  marker?: string;
  patterns: string;
  keyType: string;
  key: string;
}

function parse(text: string): Entry[] {
  const out: Entry[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const parts = line.split(/\s+/);
    const marker = parts[0]?.startsWith('@') ? parts.shift() : undefined;
    const [patterns, keyType, key] = parts;
    if (patterns && keyType && key) out.push({ marker, patterns, keyType, key });
  }
  return out;
}

function matches(patterns: string, name: string): boolean {
  if (patterns.startsWith('|1|')) {
    const [, , salt, hash] = patterns.split('|');
    if (!salt || !hash) return false;
    const mac = createHmac('sha1', Buffer.from(salt, 'base64')).update(name).digest('base64');
    return mac === hash;
  }
  let hit = false;
  for (const p of patterns.split(',')) {
    const negated = p.startsWith('!');
    const glob = negated ? p.slice(1) : p;
    const re = new RegExp(
      `^${glob
        .replace(/[.+^${}()|[\]\\]/g, '\\$&')
        .replace(/\*/g, '.*')
        .replace(/\?/g, '.')}$`,
    );
    if (re.test(name)) {
      if (negated) return false;
      hit = true;
    }
  }
  return hit;
}

/** Checks a presented key blob against a known_hosts file's text. */
export function checkKnownHosts(text: string, host: string, port: number, keyBlob: Buffer): HostKeyVerdict {
  const name = knownHostsName(host, port);
  const presented = keyBlob.toString('base64');
  let seen = false;
  for (const e of parse(text)) {
    if (e.marker === '@cert-authority') continue;
    if (!matches(e.patterns, name)) continue;
    if (e.marker === '@revoked') {
      if (e.key === presented) return 'revoked';
      continue;
    }
    seen = true;
    if (e.key === presented) return 'trusted';
  }
  return seen ? 'changed' : 'unknown';
}

/**
 * Reads a known_hosts file. A missing file knows no hosts, unless `mustExist` (as when unknown keys
 * would be accepted: then an unreadable file would silently turn every key into an unknown one).
 * Any other failure (permissions, a directory) throws an error naming the file.
 */
export function readKnownHosts(path: string, opts: { mustExist?: boolean } = {}): string {
  try {
    return readRegularText(path, MAX_KNOWN_HOSTS_BYTES);
  } catch (err) {
    if (!(err instanceof FileReadError)) throw err;
    const missing = err.reason === 'file not found';
    if (missing && !opts.mustExist) return '';
    throw new Error(`cannot read known_hosts file ${path}: ${missing ? 'it does not exist' : err.reason}`);
  }
}

/** The key type a raw public key blob names in its first field (e.g. `ssh-ed25519`). */
export function keyTypeOf(keyBlob: Buffer): string | undefined {
  if (keyBlob.length < 4) return undefined;
  const n = keyBlob.readUInt32BE(0);
  if (n === 0 || n > 64 || keyBlob.length < 4 + n) return undefined;
  return keyBlob.subarray(4, 4 + n).toString('latin1');
}

/**
 * Key types of the usable (not revoked, not CA) lines known_hosts holds for host:port, in file
 * order without duplicates. The type comes from the key blob itself, falling back to the line.
 */
export function knownKeyTypes(text: string, host: string, port: number): string[] {
  const name = knownHostsName(host, port);
  const out = new Set<string>();
  for (const e of parse(text)) {
    if (e.marker === '@cert-authority' || e.marker === '@revoked') continue;
    if (!matches(e.patterns, name)) continue;
    out.add(keyTypeOf(Buffer.from(e.key, 'base64')) ?? e.keyType);
  }
  return [...out];
}

/** ssh2's default server host key algorithms, in its order (ssh2 1.x with Node's ed25519). */
export const DEFAULT_HOST_KEY_ALGORITHMS = [
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'rsa-sha2-512',
  'rsa-sha2-256',
  'ssh-rsa',
] as const;

/** The signature algorithms that prove possession of a key of one known_hosts key type. */
function algorithmsFor(keyType: string): string[] {
  if (keyType === 'ssh-rsa') return ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'];
  return (DEFAULT_HOST_KEY_ALGORITHMS as readonly string[]).includes(keyType) ? [keyType] : [];
}

/**
 * The host key algorithms to offer, as OpenSSH orders them: those matching a key type known_hosts
 * lists for the host first, then the rest, each part in the default order. Without this, a host
 * known only by its RSA key negotiates ed25519 and looks like a changed key. Undefined when
 * nothing is known (ssh2's default list applies).
 */
export function hostKeyAlgorithms(knownTypes: readonly string[]): string[] | undefined {
  const preferred = new Set(knownTypes.flatMap(algorithmsFor));
  if (preferred.size === 0) return undefined;
  const all = DEFAULT_HOST_KEY_ALGORITHMS as readonly string[];
  return [...all.filter((a) => preferred.has(a)), ...all.filter((a) => !preferred.has(a))];
}

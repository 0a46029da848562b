// Host-key checking the way OpenSSH does it: known_hosts (plain and hashed entries) or a pin.
import { createHash, createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';

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

/** Reads a known_hosts file; a missing file knows no hosts. */
export function readKnownHosts(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

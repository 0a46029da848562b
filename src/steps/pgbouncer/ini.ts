// The [databases] section of pgbouncer.ini, edited line by line: only the named database's line
// changes, and in it only the keys asked for (host, port, dbname); every other line, comment and
// key is kept byte for byte. Pure functions: the step reads and writes the file.

/** One `key=value` of a connection string, as written (value unquoted). */
interface Pair {
  key: string;
  value: string;
}

/** Values a pointing step may write: host names, addresses, socket directories, names. */
const SAFE_VALUE = /^[A-Za-z0-9._:/%-]+$/;
/** Database names edited here: unquoted ini keys only. */
export const DB_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]*$/;

/** Splits `host=a port=1 dbname='x y'` into pairs; undefined when it cannot be read safely. */
export function parseConnstr(s: string): Pair[] | undefined {
  const out: Pair[] = [];
  let i = 0;
  while (i < s.length) {
    while (i < s.length && /\s/.test(s[i] as string)) i++;
    if (i >= s.length) break;
    const eq = s.indexOf('=', i);
    if (eq < 0) return undefined;
    const key = s.slice(i, eq).trim();
    if (!/^[a-z_]+$/.test(key)) return undefined;
    i = eq + 1;
    let value = '';
    if (s[i] === "'") {
      i++;
      for (;;) {
        if (i >= s.length) return undefined;
        const c = s[i] as string;
        if (c === '\\' && i + 1 < s.length) {
          value += s[i + 1];
          i += 2;
        } else if (c === "'") {
          i++;
          break;
        } else {
          value += c;
          i++;
        }
      }
    } else {
      const start = i;
      while (i < s.length && !/\s/.test(s[i] as string)) i++;
      value = s.slice(start, i);
    }
    out.push({ key, value });
  }
  return out;
}

function formatConnstr(pairs: Pair[]): string {
  return pairs
    .map(({ key, value }) =>
      /^[^\s'\\]+$/.test(value)
        ? `${key}=${value}`
        : `${key}='${value.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`,
    )
    .join(' ');
}

/** What pointing a database changed: the file's new text and the line before and after. */
export interface PointResult {
  text: string;
  before: string;
  after: string;
  /** the keys set, with their values before (null: the key was absent): what the undo sets back */
  previous: Record<string, string | null>;
}

/**
 * Sets `host`, `port` (and `dbname` when given) of database `name` in the [databases] section of
 * `text`. Throws (with the reason) when the section or the line is missing, when the line is
 * written in a way this does not read (quoted name, odd connection string), or a value is unsafe.
 */
export function pointDatabase(
  text: string,
  name: string,
  to: { host: string; port: number; dbname?: string } | { keys: Record<string, string | null> },
): PointResult {
  if (!DB_NAME.test(name)) throw new Error(`database name ${JSON.stringify(name)} is not a plain name`);
  // Values to point at are checked; values put back by an undo are the file's own.
  if (!('keys' in to))
    for (const v of [to.host, to.dbname ?? 'x'])
      if (!SAFE_VALUE.test(v)) throw new Error(`${JSON.stringify(v)} is not a plain host or database name`);
  const lines = text.split('\n');
  let section = '';
  let found = -1;
  for (let i = 0; i < lines.length; i++) {
    const l = (lines[i] as string).trim();
    const head = /^\[([^\]]+)\]$/.exec(l);
    if (head) {
      section = (head[1] as string).trim().toLowerCase();
      continue;
    }
    if (section !== 'databases' || l === '' || l.startsWith(';') || l.startsWith('#')) continue;
    const eq = l.indexOf('=');
    if (eq < 0) continue;
    const key = l.slice(0, eq).trim();
    if (key === name || key === `"${name}"`) {
      if (found >= 0) throw new Error(`database ${name} has two lines in [databases]`);
      found = i;
    }
  }
  if (found < 0) throw new Error(`database ${name} has no line in the [databases] section`);
  const line = lines[found] as string;
  const eq = line.indexOf('=');
  const pairs = parseConnstr(line.slice(eq + 1));
  if (!pairs)
    throw new Error(
      `the line of database ${name} is not a connection string this step can edit: ${line.trim()}`,
    );
  const previous: Record<string, string | null> = {};
  const set = (key: string, value: string | null) => {
    previous[key] = pairs.find((x) => x.key === key)?.value ?? null;
    const i = pairs.findIndex((x) => x.key === key);
    if (value === null) {
      if (i >= 0) pairs.splice(i, 1);
    } else if (i >= 0) (pairs[i] as Pair).value = value;
    else pairs.push({ key, value });
  };
  if ('keys' in to) for (const [k, v] of Object.entries(to.keys)) set(k, v);
  else {
    set('host', to.host);
    set('port', String(to.port));
    if (to.dbname) set('dbname', to.dbname);
  }
  const after = `${line.slice(0, eq).trimEnd()} = ${formatConnstr(pairs)}`;
  lines[found] = after;
  return { text: lines.join('\n'), before: line, after, previous };
}

/** A line with every password= value replaced by ***: for logs and outputs, never for the file. */
export function maskPasswords(line: string): string {
  const eq = line.indexOf('=');
  const pairs = eq < 0 ? undefined : parseConnstr(line.slice(eq + 1));
  if (!pairs) return line.replace(/password\s*=\s*('([^'\\]|\\.)*'|\S+)/gi, 'password=***');
  for (const p of pairs) if (p.key === 'password') p.value = '***';
  return `${line.slice(0, eq).trimEnd()} = ${formatConnstr(pairs)}`;
}

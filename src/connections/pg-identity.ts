// Which server a backup's labels come from, and whether a directory on the host is that server's:
// the labels of pg_backup_stop describe only the data directory of the server that ran it. A
// directory is that server's when it is the server's data_directory once symlinks are resolved,
// and its global/pg_control (or the copy's) carries the server's system identifier.
import { quote } from '../util/shell.js';
import type { PgSession } from './pg.js';
import { commandLine, type Transport } from './transport.js';

/** What a session's server is: read on the session that holds the backup. */
export interface ServerIdentity {
  system_identifier: string;
  data_directory: string;
  postmaster_start_time: string;
  timeline: number;
}

/** One query for the identity (pg_control_system and pg_control_checkpoint exist since 9.6). */
export const IDENTITY_SQL = `select (select system_identifier::text from pg_control_system()) as system_identifier,
       current_setting('data_directory') as data_directory,
       pg_postmaster_start_time()::text as postmaster_start_time,
       (select timeline_id from pg_control_checkpoint()) as timeline`;

/** The identity of the server a session is on. */
export async function serverIdentity(s: PgSession): Promise<ServerIdentity> {
  const r = (await s.query(IDENTITY_SQL)).rows[0]!;
  return {
    system_identifier: String(r.system_identifier),
    data_directory: String(r.data_directory),
    postmaster_start_time: String(r.postmaster_start_time),
    timeline: Number(r.timeline),
  };
}

/**
 * A directory that must be the server's: `what` names it in messages ("fs.snapshot copied"),
 * `dir` is compared with data_directory, `control` is the pg_control whose system identifier
 * must be the server's (the copy's for a copy, the live one otherwise).
 */
export interface Claim {
  what: string;
  dir: string;
  control: string;
}

/** What the host says of a claim: the directory resolved, and the system id in its pg_control. */
export interface CheckedClaim extends Claim {
  /** the directory with symlinks resolved; undefined when it does not exist */
  realpath?: string;
  /** from the first 8 bytes of pg_control; undefined when it cannot be read */
  system_identifier?: string;
  /** why it is not the server's, naming both sides; undefined when it is */
  problem?: string;
}

/** The result of checking claims against a server: one problem per claim that does not hold. */
export interface Pairing {
  /** data_directory with symlinks resolved on the host (undefined: not there) */
  data_directory_realpath?: string;
  claims: CheckedClaim[];
  problems: string[];
}

// The system identifier is ControlFileData's first field, a uint64 in the host's byte order:
// od reads it in that order, so no pg_controldata (nor its major's bin dir) is needed.
function script(dataDirectory: string, claims: Claim[]): string {
  return [
    'r() { realpath -e -- "$1" 2>/dev/null || echo -; }',
    's() { v=$(od -An -t u8 -N 8 -- "$1" 2>/dev/null | tr -d " \\n"); if [ -n "$v" ]; then echo "$v"; else echo -; fi; }',
    `echo "dd $(r ${quote(dataDirectory)})"`,
    ...claims.flatMap((c, i) => [
      `echo "dir ${i} $(r ${quote(c.dir)})"`,
      `echo "sysid ${i} $(s ${quote(c.control)})"`,
    ]),
  ].join('\n');
}

/** Reads the claims on the host (as `become` when set) and names every one that is not the server's. */
export async function checkPairing(
  t: Transport,
  id: Pick<ServerIdentity, 'system_identifier' | 'data_directory'>,
  claims: Claim[],
  opts: { become?: 'sudo'; signal?: AbortSignal } = {},
): Promise<Pairing> {
  const r = await t.exec(commandLine({ script: script(id.data_directory, claims) }, opts.become), {
    signal: opts.signal,
  });
  if (r.exitCode !== 0)
    throw new Error(
      `reading the data directories on the host failed (exit ${r.exitCode}): ${r.stderr.trim()}`,
    );
  const line = (key: string) => {
    const m = new RegExp(`^${key} (.*)$`, 'm').exec(r.stdout);
    const v = m?.[1]?.trim();
    return v && v !== '-' ? v : undefined;
  };
  const ddReal = line('dd');
  const checked = claims.map((c, i): CheckedClaim => {
    const read: CheckedClaim = { ...c, realpath: line(`dir ${i}`), system_identifier: line(`sysid ${i}`) };
    const why = mismatch(ddReal, id.system_identifier, read);
    return why ? { ...read, problem: describe(id, ddReal, read, why) } : read;
  });
  const problems = checked.flatMap((c) => (c.problem ? [c.problem] : []));
  return { data_directory_realpath: ddReal, claims: checked, problems };
}

/** Why a claim is not the server's, or undefined when it is. */
function mismatch(ddReal: string | undefined, sysid: string, c: CheckedClaim): string | undefined {
  const reasons: string[] = [];
  if (c.system_identifier !== sysid)
    reasons.push(
      c.system_identifier === undefined
        ? `${c.control} could not be read`
        : 'a different system identifier: another cluster',
    );
  if (!c.realpath) reasons.push(`${c.dir} does not exist on this host`);
  else if (!ddReal)
    reasons.push("the server's data_directory does not exist on this host: the server runs elsewhere");
  else if (c.realpath !== ddReal) reasons.push("another directory than the server's data_directory");
  return reasons.length ? reasons.join('; ') : undefined;
}

const resolved = (path: string, real?: string) => (real && real !== path ? `${path} (${real})` : path);

/** "the backup session is on server A with data_directory /a, but fs.snapshot copied /b whose pg_control says B" */
function describe(
  id: Pick<ServerIdentity, 'system_identifier' | 'data_directory'>,
  ddReal: string | undefined,
  c: CheckedClaim,
  why: string,
): string {
  return (
    `the backup session is on server ${id.system_identifier} with data_directory ${resolved(id.data_directory, ddReal)}, ` +
    `but ${c.what} ${resolved(c.dir, c.realpath)}, whose pg_control says ${c.system_identifier ?? '(unreadable)'} (${why})`
  );
}

/** One line per claim, for logs and the plan: what was paired with what. */
export function pairingLines(
  id: Pick<ServerIdentity, 'system_identifier' | 'data_directory'>,
  p: Pairing,
): string[] {
  return [
    `server ${id.system_identifier}, data_directory ${resolved(id.data_directory, p.data_directory_realpath)}`,
    ...p.claims.map(
      (c) =>
        `${c.what} ${resolved(c.dir, c.realpath)}: pg_control says ${c.system_identifier ?? '(unreadable)'}${
          c.problem ? ' — NOT this server' : ' — same server'
        }`,
    ),
  ];
}

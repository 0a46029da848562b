// File operations on a host over its transport, shared by steps that keep files (labels, manifests).
import { commandLine, type Transport } from '../connections/transport.js';
import { StepFailure } from '../errors.js';
import { quote } from '../util/shell.js';
import type { ApplyContext } from './define.js';

/** The command that writes stdin to `path` atomically (temp file + rename) with `mode`. */
export function atomicWriteLine(path: string, mode: string, become?: 'sudo'): string {
  const tmp = quote(`${path}.pgrunbook-tmp`);
  return commandLine(
    // sync: the file and its directory entry are on disk before anyone is told it is written.
    {
      script: `set -e\n(umask 077 && cat > ${tmp})\nchmod ${mode} ${tmp}\nsync -- ${tmp}\nmv -f ${tmp} ${quote(path)}\nsync -- "$(dirname ${quote(path)})"`,
    },
    become,
  );
}

/** Writes `content` byte for byte to `path` on the host. */
export async function writeRemoteFile(
  t: Transport,
  path: string,
  content: string,
  opts: { mode?: string; become?: 'sudo'; signal?: AbortSignal } = {},
): Promise<void> {
  const r = await t.exec(atomicWriteLine(path, opts.mode ?? '0600', opts.become), {
    stdin: content,
    signal: opts.signal,
  });
  if (r.exitCode !== 0)
    throw new StepFailure(`writing ${path} failed (exit ${r.exitCode}): ${r.stderr.trim()}`);
}

/** sha256 of files on the host, by path; a missing file is absent from the result. */
export async function remoteSha256(
  t: Transport,
  paths: string[],
  become?: 'sudo',
  signal?: AbortSignal,
): Promise<Map<string, string>> {
  const r = await t.exec(
    commandLine({ script: `sha256sum -- ${paths.map(quote).join(' ')} 2>/dev/null; true` }, become),
    { signal },
  );
  const out = new Map<string, string>();
  for (const line of r.stdout.split('\n')) {
    const m = line.match(/^([0-9a-f]{64}) [ *](.*)$/);
    if (m) out.set(m[2]!, m[1]!);
  }
  return out;
}

/** Runs a script and returns stdout; a non-zero exit is a step failure carrying stderr. */
export async function run(
  t: Transport,
  script: string,
  what: string,
  opts: { become?: 'sudo'; signal?: AbortSignal; stdin?: string } = {},
): Promise<string> {
  const r = await t.exec(commandLine({ script }, opts.become), { signal: opts.signal, stdin: opts.stdin });
  if (r.exitCode !== 0) {
    throw new StepFailure(
      `${what} failed (exit ${r.exitCode ?? r.signal}): ${r.stderr.trim().split('\n').slice(-8).join('\n')}`,
    );
  }
  return r.stdout;
}

/**
 * The host's transport, through `become` when the host has it: backups are written by root, and
 * materialising a copy or handing files to the server's user needs the privileged user.
 */
export async function becomeTransport(ctx: ApplyContext): Promise<Transport> {
  const t = await ctx.transport();
  const become = ctx.host.become;
  if (!become) return t;
  return {
    kind: t.kind,
    exec: (line, opts) => t.exec(commandLine({ script: line }, become), opts),
    hold: (line) => t.hold(commandLine({ script: line }, become)),
    close: () => t.close(),
  };
}

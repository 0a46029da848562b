// The narrow interface every way of running a command on a host implements.
import { joinArgv, quote } from '../util/shell.js';

/** What to run: an argv (each element quoted) or a script handed to sh as is. */
export type CommandSpec = { argv: string[] } | { script: string };

/** Options for one command. */
export interface ExecOptions {
  signal?: AbortSignal;
  /** Called with each chunk as it arrives, for streaming into the log. */
  onOutput?: (stream: 'stdout' | 'stderr', chunk: string) => void;
  /** Bytes fed to the command's standard input (keeps content out of the command line). */
  stdin?: string;
}

/** How a command ended; exitCode is null when it was killed by a signal. */
export interface ExecResult {
  exitCode: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

/** A connection to one host that runs shell command lines. */
export interface Transport {
  readonly kind: 'local' | 'ssh';
  /** Runs one sh command line; resolves when it exits, rejects only on transport failure. */
  exec(commandLine: string, opts?: ExecOptions): Promise<ExecResult>;
  close(): Promise<void>;
}

/** The exact command line a spec becomes, with `sudo -n` when the host uses become. */
export function commandLine(spec: CommandSpec, become?: 'sudo'): string {
  const line = 'argv' in spec ? joinArgv(spec.argv) : spec.script;
  if (become === 'sudo') return `sudo -n -- sh -c ${quote(line)}`;
  return line;
}

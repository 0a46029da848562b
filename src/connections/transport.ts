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

/**
 * A command that lives as long as the runner holds it (a pause's guard): the runner talks to it
 * through its standard input, and it outlives the runner on purpose — unlike `exec`, nothing
 * ends it when its channel or pipe closes. That EOF is the command's cue to act.
 */
export interface HeldCommand {
  /** Writes to the command's standard input (lost silently once it has ended). */
  write(text: string): void;
  /** Closes its standard input: the command sees EOF, as if the runner had died. */
  end(): void;
  /** Called with each line the command prints on stdout. */
  onLine(cb: (line: string) => void): void;
  /** Settles when the command exited or its connection ended (then exitCode and signal are null). */
  readonly exited: Promise<ExecResult>;
}

/** A connection to one host that runs shell command lines. */
export interface Transport {
  readonly kind: 'local' | 'ssh';
  /** Runs one sh command line; resolves when it exits, rejects only on transport failure. */
  exec(commandLine: string, opts?: ExecOptions): Promise<ExecResult>;
  /** Starts a command that is not ended with its channel (see HeldCommand); rejects if it cannot start. */
  hold(commandLine: string): Promise<HeldCommand>;
  close(): Promise<void>;
}

/** The exact command line a spec becomes, with `sudo -n` when the host uses become. */
export function commandLine(spec: CommandSpec, become?: 'sudo'): string {
  const line = 'argv' in spec ? joinArgv(spec.argv) : spec.script;
  if (become === 'sudo') return `sudo -n -- sh -c ${quote(line)}`;
  return line;
}

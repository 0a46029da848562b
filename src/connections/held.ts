// The common half of a held command (see HeldCommand in transport.ts): output split into lines,
// the exit settled once, whatever carries the command (an ssh channel, a local pipe).
import type { ExecResult, HeldCommand } from './transport.js';

/** What a transport gives: how to write and close the input. */
export interface HeldIo {
  write(text: string): void;
  end(): void;
}

/** A HeldCommand plus the callbacks its transport feeds: stdout and stderr chunks, and the end. */
export interface HeldParts {
  command: HeldCommand;
  stdout(chunk: string): void;
  stderr(chunk: string): void;
  ended(exitCode: number | null, signal: string | null): void;
}

/** Builds a held command over `io`; the transport calls the returned feeders. */
export function heldCommand(io: HeldIo): HeldParts {
  let stdout = '';
  let stderr = '';
  let partial = '';
  let gone = false;
  const listeners: ((line: string) => void)[] = [];
  const lines: string[] = [];
  let settle: (r: ExecResult) => void = () => {};
  const exited = new Promise<ExecResult>((r) => {
    settle = r;
  });
  const command: HeldCommand = {
    write(text) {
      if (gone) return;
      try {
        io.write(text);
      } catch {
        // the channel or pipe is gone: `exited` says so
      }
    },
    end() {
      if (gone) return;
      try {
        io.end();
      } catch {
        // already closed
      }
    },
    onLine(cb) {
      listeners.push(cb);
      for (const l of lines) cb(l);
    },
    exited,
  };
  return {
    command,
    stdout(chunk) {
      stdout += chunk;
      partial += chunk;
      for (let nl = partial.indexOf('\n'); nl >= 0; nl = partial.indexOf('\n')) {
        const line = partial.slice(0, nl);
        partial = partial.slice(nl + 1);
        lines.push(line);
        for (const cb of listeners) cb(line);
      }
    },
    stderr(chunk) {
      // Bounded: a chatty command must not grow the runner's memory for the whole run.
      stderr = (stderr + chunk).slice(-4096);
    },
    ended(exitCode, signal) {
      if (gone) return;
      gone = true;
      settle({ exitCode, signal, stdout, stderr });
    },
  };
}

// Runs a pgrunbook command in this process (src/cli/dispatch.ts, the code the CLI runs), in a
// given working directory, capturing what it writes: thousands of mutants and payloads cost
// milliseconds each instead of a Node start-up each.
import { dispatch, exitCodeOf } from '../../src/cli/dispatch.js';

/** Exit code and output of one command. */
export interface Outcome {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `argv` as `pgrunbook ARGV` in `cwd`; a thrown error becomes the exit code main.ts gives it. */
export async function command(argv: string[], cwd: string): Promise<Outcome> {
  const out = { stdout: '', stderr: '' };
  const [writeOut, writeErr, before] = [process.stdout.write, process.stderr.write, process.cwd()];
  const capture = (key: 'stdout' | 'stderr') =>
    ((chunk: string | Uint8Array) => {
      out[key] += typeof chunk === 'string' ? chunk : Buffer.from(chunk).toString();
      return true;
    }) as typeof process.stdout.write;
  process.stdout.write = capture('stdout');
  process.stderr.write = capture('stderr');
  process.chdir(cwd);
  try {
    return { code: await dispatch(argv), ...out };
  } catch (err) {
    return { code: exitCodeOf(err), ...out, stderr: `${out.stderr}${(err as Error).stack ?? err}` };
  } finally {
    process.chdir(before);
    process.stdout.write = writeOut;
    process.stderr.write = writeErr;
  }
}

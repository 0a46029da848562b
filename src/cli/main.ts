// The command line: argv → commands. The only place that calls process.exit.
import { formatProblem, PgrunbookError, ValidationError } from '../errors.js';
import { redact } from '../util/secret.js';
import { dispatch } from './dispatch.js';
import { outputState } from './output-state.js';

// A reader that went away (`| head`) is not an error of ours: stop quietly — but never in the
// middle of a run, which must finish its clean-up (the journal still records everything).
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err;
    outputState.closed = true;
    if (!outputState.running) process.exit(0);
  });
}

dispatch(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof ValidationError) {
      for (const p of err.problems) process.stderr.write(`${redact(formatProblem(p))}\n`);
      const n = err.problems.length;
      process.stderr.write(`${n} problem${n === 1 ? '' : 's'} found; nothing was run.\n`);
      process.exit(2);
    }
    if (err instanceof PgrunbookError) {
      process.stderr.write(`pgrunbook: ${redact(err.message)}\n`);
      process.exit(2);
    }
    // A bug of ours: the stack helps us, and the message says so.
    process.stderr.write(
      `pgrunbook: internal error (please report): ${redact(err instanceof Error ? (err.stack ?? err.message) : String(err))}\n`,
    );
    process.exit(70);
  },
);

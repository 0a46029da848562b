// The error hierarchy: user mistakes are PgrunbookError subclasses and print without a stack.

/** One problem found in an input file, located precisely enough for an editor to jump to it. */
export interface Problem {
  file: string;
  line: number;
  col: number;
  /** Dotted path inside the document, e.g. `plays[0].steps[2].pg.query.sql`. */
  path: string;
  message: string;
}

/** Base of every error that is the user's or the environment's, not a bug of ours. */
export class PgrunbookError extends Error {
  override name = 'PgrunbookError';
}

/** Playbook, inventory or argument problems: exit 2, nothing has run. */
export class ValidationError extends PgrunbookError {
  override name = 'ValidationError';
  constructor(readonly problems: Problem[]) {
    super(problems.map(formatProblem).join('\n'));
  }
}

/** Command-line misuse (unknown command, missing argument). */
export class UsageError extends PgrunbookError {
  override name = 'UsageError';
}

/** A step failed while applying; carries what the step saw so the report can show it. */
export class StepFailure extends PgrunbookError {
  override name = 'StepFailure';
  constructor(
    message: string,
    readonly details?: string,
  ) {
    super(message);
  }
}

/** A connection could not be opened or was refused (host key, auth, network). */
export class ConnectionError extends PgrunbookError {
  override name = 'ConnectionError';
}

/** The run was interrupted by SIGINT or SIGTERM. */
export class InterruptedError extends PgrunbookError {
  override name = 'InterruptedError';
  constructor(readonly signal: string) {
    super(`interrupted by ${signal}`);
  }
}

/** A step exceeded its `timeout`. */
export class TimeoutError extends PgrunbookError {
  override name = 'TimeoutError';
}

/** Formats a problem as `file:line:col: path: message`, the shape editors and CI parse. */
export function formatProblem(p: Problem): string {
  const where = p.path ? `${p.path}: ` : '';
  return `${p.file}:${p.line}:${p.col}: ${where}${p.message}`;
}

/** Message of any thrown value, without a stack. */
export function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}

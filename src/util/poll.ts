// One wait loop for the whole code base: try, look at the answer, sleep, try again until a deadline
// — abortable, never sleeping past the deadline, with the last thing seen kept for the message.

/** What one attempt found: the wanted value, or not yet (with what it saw, for the timeout). */
export type PollResult<T, S = unknown> = { done: true; value: T } | { done: false; state?: S };

/** The attempt found what it waited for. */
export const done = <T>(value: T): { done: true; value: T } => ({ done: true, value });

/** Not yet; `state` is what the attempt saw, handed to onTimeout should this be the last one. */
export const notYet = <S>(state?: S): { done: false; state?: S } => ({ done: false, state });

/** The default timeout error; a caller to whom a timeout is an outcome (not a failure) catches it. */
export class PollTimeout extends Error {
  constructor(readonly timeoutMs: number) {
    super(`gave up after ${timeoutMs} ms`);
    this.name = 'PollTimeout';
  }
}

export interface PollOptions<S> {
  /**
   * How long to keep trying, from the call. Infinity for a retry bounded by something else (a
   * number of attempts the check counts itself).
   */
  timeoutMs: number;
  /**
   * The pause after an attempt that was not done; a function of that attempt's number (from 1)
   * for a backoff. 0: no pause at all, for a check that waits by itself (a long poll).
   */
  intervalMs: number | ((attempt: number) => number);
  /**
   * Aborts the wait: the pause between attempts rejects at once with the signal's reason, and a
   * retried error (retryErrors) is not retried. The check itself should get the signal too.
   * Omitted by waits that must finish even after an abort (the kill escalation of an aborted command).
   */
  signal?: AbortSignal;
  /**
   * The error thrown when the time is up after an attempt that was not done; it gets that
   * attempt's state, so the message can say what was seen last. Default: a PollTimeout.
   */
  onTimeout?: (last: S | undefined, attempts: number) => Error;
  /**
   * Which errors thrown by the check count as "not yet" (true: all) rather than ending the wait:
   * for a service that is still starting and refuses connections. When the time is up after a
   * failed attempt, that error is thrown (not onTimeout's): it says best what went wrong. Errors
   * not retried end the wait at once, as they are.
   */
  retryErrors?: boolean | ((err: unknown) => boolean);
  /**
   * Give up as soon as a whole interval no longer fits before the deadline, rather than cutting
   * the last pause short to make one last attempt at the deadline. For waits that promise their
   * attempts `interval` apart and never to run past the timeout (wait_for: a timeout shorter than
   * the interval means one attempt only).
   */
  wholeIntervals?: boolean;
}

/**
 * Calls `check` until it says done and returns its value. After each attempt that is not done: if
 * the deadline has passed (wholeIntervals: if the next pause would pass it), onTimeout's error is
 * thrown; else it sleeps for the interval, cut short at the deadline, and tries again. The first
 * attempt is made at once.
 */
export async function poll<T, S = unknown>(
  check: (attempt: number) => PollResult<T, S> | Promise<PollResult<T, S>>,
  opts: PollOptions<S>,
): Promise<T> {
  const deadline = Date.now() + opts.timeoutMs;
  const { signal } = opts;
  for (let attempt = 1; ; attempt++) {
    let last: S | undefined;
    let failure: { err: unknown } | undefined;
    try {
      const r = await check(attempt);
      if (r.done) return r.value;
      last = r.state;
    } catch (err) {
      if (!retries(opts.retryErrors, err)) throw err;
      // An aborted check fails because of the abort: trying it again would fail the same way.
      if (signal?.aborted) throw signal.reason;
      failure = { err };
    }
    const interval = typeof opts.intervalMs === 'function' ? opts.intervalMs(attempt) : opts.intervalMs;
    const left = deadline - Date.now();
    if (opts.wholeIntervals ? interval > left : left < 0) {
      if (failure) throw failure.err;
      throw opts.onTimeout ? opts.onTimeout(last, attempt) : new PollTimeout(opts.timeoutMs);
    }
    await pause(Math.min(interval, left), signal);
  }
}

function retries(rule: PollOptions<unknown>['retryErrors'], err: unknown): boolean {
  return typeof rule === 'function' ? rule(err) : rule === true;
}

/**
 * Sleeps `ms`; an abort (before or during) rejects at once with the signal's reason — not the
 * AbortError node:timers/promises would throw — so the caller sees why the run stopped. Built on the
 * global setTimeout rather than node:timers/promises: test fake timers (vi.useFakeTimers) replace
 * only the global one, and the transports' tests drive these waits with them.
 */
function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  if (signal?.aborted) return Promise.reject(signal.reason);
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

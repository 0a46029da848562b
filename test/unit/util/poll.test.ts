import { afterEach, describe, expect, it, vi } from 'vitest';
import { done, notYet, PollTimeout, poll } from '../../../src/util/poll.js';

/** Milliseconds `p` takes to settle, and how it settled. */
async function timed<T>(p: Promise<T>): Promise<{ ms: number; value?: T; error?: unknown }> {
  const t0 = performance.now();
  try {
    const value = await p;
    return { ms: performance.now() - t0, value };
  } catch (error) {
    return { ms: performance.now() - t0, error };
  }
}

describe('poll', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('resolves with the value once the check is done, counting attempts from 1', async () => {
    const seen: number[] = [];
    const v = await poll(
      (attempt) => {
        seen.push(attempt);
        return attempt === 3 ? done(`ready at ${attempt}`) : notYet();
      },
      { timeoutMs: 5000, intervalMs: 5 },
    );
    expect(v).toBe('ready at 3');
    expect(seen).toEqual([1, 2, 3]);
  });

  it('makes the first attempt at once and returns without sleeping when it is done', async () => {
    const r = await timed(poll(async () => done(42), { timeoutMs: 5000, intervalMs: 10_000 }));
    expect(r.value).toBe(42);
    expect(r.ms).toBeLessThan(50);
  });

  it('times out with the onTimeout error, given the last attempt state', async () => {
    let n = 0;
    const r = await timed(
      poll(async () => notYet(`state ${++n}`), {
        timeoutMs: 100,
        intervalMs: 20,
        onTimeout: (last, attempts) => new Error(`not ready (last: ${last}, ${attempts} attempts)`),
      }),
    );
    expect(r.error).toBeInstanceOf(Error);
    expect((r.error as Error).message).toBe(`not ready (last: state ${n}, ${n} attempts)`);
    expect(n).toBeGreaterThanOrEqual(2);
    expect(r.ms).toBeGreaterThanOrEqual(95);
  });

  it('times out with a PollTimeout when no onTimeout is given', async () => {
    const r = await timed(poll(() => notYet(), { timeoutMs: 30, intervalMs: 10 }));
    expect(r.error).toBeInstanceOf(PollTimeout);
    expect((r.error as PollTimeout).timeoutMs).toBe(30);
  });

  it('ends at once on an error of the check unless errors are retried', async () => {
    let n = 0;
    const boom = new Error('boom');
    const r = await timed(
      poll(
        async () => {
          n++;
          throw boom;
        },
        { timeoutMs: 5000, intervalMs: 10, onTimeout: () => new Error('timeout') },
      ),
    );
    expect(r.error).toBe(boom);
    expect(n).toBe(1);
  });

  it('retries errors until the deadline when asked, then rethrows the last one (not onTimeout)', async () => {
    let n = 0;
    const r = await timed(
      poll(
        async () => {
          throw new Error(`refused ${++n}`);
        },
        { timeoutMs: 100, intervalMs: 20, retryErrors: true, onTimeout: () => new Error('timeout') },
      ),
    );
    expect((r.error as Error).message).toBe(`refused ${n}`);
    expect(n).toBeGreaterThanOrEqual(2);
    expect(r.ms).toBeGreaterThanOrEqual(95);
  });

  it('retries only the errors the predicate accepts, and resolves once the check answers', async () => {
    class Refused extends Error {}
    let n = 0;
    const v = await poll(
      async () => {
        if (++n < 3) throw new Refused('not yet listening');
        return done('answered');
      },
      { timeoutMs: 5000, intervalMs: 5, retryErrors: (e) => e instanceof Refused },
    );
    expect(v).toBe('answered');
    const fatal = new Error('fatal');
    const r = await timed(
      poll(
        async () => {
          throw fatal;
        },
        { timeoutMs: 5000, intervalMs: 5, retryErrors: (e) => e instanceof Refused },
      ),
    );
    expect(r.error).toBe(fatal);
  });

  it('after a timeout that follows a failed and then an unfinished attempt, uses onTimeout', async () => {
    let n = 0;
    const r = await timed(
      poll(
        async () => {
          if (++n === 1) throw new Error('refused');
          return notYet('still starting');
        },
        { timeoutMs: 60, intervalMs: 10, retryErrors: true, onTimeout: (last) => new Error(`last: ${last}`) },
      ),
    );
    expect((r.error as Error).message).toBe('last: still starting');
  });

  it('rejects promptly with the signal reason when aborted during a sleep', async () => {
    const ctl = new AbortController();
    const reason = new Error('interrupted by SIGINT');
    let n = 0;
    const p = timed(
      poll(
        () => {
          n++;
          return notYet();
        },
        { timeoutMs: 60_000, intervalMs: 10_000, signal: ctl.signal },
      ),
    );
    await new Promise((r) => setTimeout(r, 30));
    const t0 = performance.now();
    ctl.abort(reason);
    const r = await p;
    expect(r.error).toBe(reason);
    expect(performance.now() - t0).toBeLessThan(50);
    expect(n).toBe(1);
  });

  it('rejects with the signal reason, not the error of a check failed by the abort, when retrying', async () => {
    const ctl = new AbortController();
    const reason = new Error('step timed out');
    let n = 0;
    const r = await timed(
      poll(
        async () => {
          n++;
          ctl.abort(reason);
          throw new Error('request aborted');
        },
        { timeoutMs: 60_000, intervalMs: 10, retryErrors: true, signal: ctl.signal },
      ),
    );
    expect(r.error).toBe(reason);
    expect(n).toBe(1);
  });

  it('with an interval of 0 does not sleep but still stops on an abort', async () => {
    const ctl = new AbortController();
    let n = 0;
    const r = await timed(
      poll(
        async () => {
          if (++n === 5) ctl.abort('stop');
          return notYet();
        },
        { timeoutMs: 60_000, intervalMs: 0, signal: ctl.signal },
      ),
    );
    expect(r.error).toBe('stop');
    expect(n).toBe(5);
    expect(r.ms).toBeLessThan(50);
  });

  it('never sleeps past the deadline: the last sleep is cut short for one last attempt at it', async () => {
    const at: number[] = [];
    const t0 = performance.now();
    const r = await timed(
      poll(
        () => {
          at.push(performance.now() - t0);
          return notYet();
        },
        { timeoutMs: 150, intervalMs: 10_000, onTimeout: () => new Error('timeout') },
      ),
    );
    expect((r.error as Error).message).toBe('timeout');
    // One attempt at once, the next at the deadline (a timer may fire a millisecond early, then
    // the remainder is slept too) — never one 10 s later.
    expect(at.length).toBeGreaterThanOrEqual(2);
    expect(at.at(-1)).toBeGreaterThanOrEqual(145);
    expect(r.ms).toBeLessThan(1000);
  });

  it('with wholeIntervals gives up once a whole interval no longer fits before the deadline', async () => {
    const at: number[] = [];
    const t0 = performance.now();
    const r = await timed(
      poll(() => notYet(at.push(performance.now() - t0)), {
        timeoutMs: 100,
        intervalMs: 40,
        wholeIntervals: true,
        onTimeout: (last) => new Error(`gave up after attempt ${last}`),
      }),
    );
    expect((r.error as Error).message).toBe(`gave up after attempt ${at.length}`);
    // Whole intervals apart (about 0, 40, 80 ms); given up once less than 40 ms were left.
    for (let i = 1; i < at.length; i++) expect(at[i]! - at[i - 1]!).toBeGreaterThanOrEqual(39);
    expect(at.length).toBeGreaterThanOrEqual(2);
    expect(r.ms).toBeGreaterThan(59);
    // A timeout shorter than the interval: one attempt, no sleep at all.
    let n = 0;
    const once = await timed(
      poll(() => notYet(++n), { timeoutMs: 50, intervalMs: 1000, wholeIntervals: true }),
    );
    expect(once.error).toBeInstanceOf(PollTimeout);
    expect(n).toBe(1);
    expect(once.ms).toBeLessThan(50);
  });

  it('calls an interval function with the number of the attempt just made', async () => {
    const asked: number[] = [];
    const v = await poll((attempt) => (attempt === 4 ? done('ok') : notYet()), {
      timeoutMs: 5000,
      intervalMs: (attempt) => {
        asked.push(attempt);
        return attempt * 2;
      },
    });
    expect(v).toBe('ok');
    expect(asked).toEqual([1, 2, 3]);
  });

  it('retries for ever with an infinite timeout until the check ends it', async () => {
    let n = 0;
    const v = await poll(
      async (attempt) => {
        n = attempt;
        if (attempt < 4) throw new Error('busy');
        return done('finally');
      },
      { timeoutMs: Number.POSITIVE_INFINITY, intervalMs: 1, retryErrors: true },
    );
    expect(v).toBe('finally');
    expect(n).toBe(4);
  });

  it('sleeps on the global timers, so that fake timers drive it', async () => {
    vi.useFakeTimers();
    const seen: number[] = [];
    const p = poll((attempt) => (seen.push(attempt) === 3 ? done('ok') : notYet()), {
      timeoutMs: 10_000,
      intervalMs: 100,
    });
    await vi.advanceTimersByTimeAsync(150);
    expect(seen).toEqual([1, 2]);
    await vi.advanceTimersByTimeAsync(100);
    expect(await p).toBe('ok');
  });

  it('leaves no abort listener behind on the signal after a sleep', async () => {
    const ctl = new AbortController();
    const add = vi.spyOn(ctl.signal, 'addEventListener');
    const remove = vi.spyOn(ctl.signal, 'removeEventListener');
    await poll((attempt) => (attempt === 3 ? done(undefined) : notYet()), {
      timeoutMs: 5000,
      intervalMs: 1,
      signal: ctl.signal,
    });
    expect(add.mock.calls.map((c) => c[0])).toEqual(['abort', 'abort']);
    expect(remove.mock.calls.map((c) => c[0])).toEqual(['abort', 'abort']);
  });
});

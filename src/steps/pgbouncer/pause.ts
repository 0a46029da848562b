// `pgbouncer.pause`: PAUSE on PgBouncer's admin console, so that clients wait (added latency)
// instead of failing while the servers behind it stop and start. PAUSE returns once every server
// connection is released (in transaction pooling: once the running transactions end); a PAUSE
// that does not return within `timeout` is withdrawn (RESUME) and the step fails, naming the
// sessions that held it. The undo is a RESUME. A pause cannot outlive its run or `max_pause`: a
// guard on the PgBouncer host (guard.ts) resumes it with SIGUSR2 if the runner dies or goes silent,
// or when the pause has lasted `max_pause` seconds (which fails the run: fail safe).
import { Type } from '@sinclair/typebox';
import { commandLine } from '../../connections/transport.js';
import { StepFailure } from '../../errors.js';
import { type ApplyContext, defineStep } from '../define.js';
import { bouncerSettings, consoleAddress, consoleCommand, openConsole, resumeConsole } from './admin.js';
import { bouncerGuardCommandLine, bouncerGuardSettings } from './guard.js';

const Params = Type.Object(
  {
    timeout: Type.Optional(
      Type.Number({
        minimum: 1,
        description:
          'seconds for PAUSE to return, i.e. for the running transactions to end (default 30); past it the pause is withdrawn and the step fails',
      }),
    ),
    max_pause: Type.Integer({
      minimum: 1,
      maximum: 3600,
      description:
        'seconds after which the guard resumes PgBouncer whatever the run is doing, and the run fails: the longest clients may wait',
    }),
    guard_silence: Type.Optional(
      Type.Integer({
        minimum: 5,
        maximum: 600,
        description:
          'seconds without word from the run after which the guard resumes PgBouncer (default 15); a runner that dies is noticed at once',
      }),
    ),
  },
  { additionalProperties: false },
);

const Outputs = Type.Object({
  paused_at: Type.String({ description: 'when PAUSE returned (ISO 8601)' }),
  pause_wait_ms: Type.Integer({ description: 'how long PAUSE took to return (transactions ending)' }),
  pidfile: Type.String({ description: "the pidfile the guard signals (PgBouncer's own, from SHOW CONFIG)" }),
});

const DEFAULT_SILENCE_S = 15;

/** The run-wide name of the guard of a PgBouncer's pause (also how the summary names it). */
export function bouncerGuardName(host: string): string {
  return `PgBouncer pause on ${host}`;
}

export default defineStep({
  type: 'pgbouncer.pause',
  summary:
    'PAUSE PgBouncer (clients wait instead of failing), guarded so that the pause ends with the run or after max_pause.',
  params: Params,
  outputs: Outputs,
  mutating: true,
  marksChanges: true,
  undoSummary: 'RESUME',
  needs() {
    // The guard is a Python program; it signals PgBouncer, so it runs as the host's login (or become).
    return { binaries: [{ name: 'python3', package: 'python3' }] };
  },
  plan(ctx, p) {
    const at = consoleAddress(ctx.host);
    return {
      action: `pause PgBouncer ${at} (clients wait; at most ${p.max_pause} s)`,
      ops: [
        { kind: 'sql', sql: 'SHOW CONFIG' },
        {
          kind: 'note',
          text: `start the pause guard on ${ctx.host.name} (python3, over the run's own connection): if the run dies, is silent for ${p.guard_silence ?? DEFAULT_SILENCE_S} s, or the pause reaches ${p.max_pause} s, it sends SIGUSR2 (RESUME) to PgBouncer; the last fails the run`,
        },
        { kind: 'sql', sql: 'PAUSE' },
        {
          kind: 'wait',
          what: 'PAUSE returns (server connections released)',
          timeoutSeconds: p.timeout ?? 30,
        },
      ],
      undo: { action: 'resume PgBouncer', ops: [{ kind: 'sql', sql: 'RESUME' }] },
    };
  },
  async apply(ctx, p) {
    const run = String(ctx.evaluate('run.id'));
    const settings = bouncerSettings(ctx.host);
    const config = await consoleCommand(ctx.host, 'SHOW CONFIG', ctx.signal);
    const pidfile = settings.pidfile ?? String(config.find((r) => r.key === 'pidfile')?.value ?? '');
    if (!/^\/[A-Za-z0-9._/-]+$/.test(pidfile))
      throw new StepFailure(
        `PgBouncer ${consoleAddress(ctx.host)} has no pidfile (SHOW CONFIG: ${JSON.stringify(pidfile)}): the pause guard needs one to resume it if the run dies; set pidfile in pgbouncer.ini or pgbouncer.pidfile in the inventory`,
      );
    // The guard first: a runner killed right after PAUSE must already be watched.
    await ctx.guards.start(
      bouncerGuardName(ctx.host.name),
      commandLine({ script: bouncerGuardCommandLine() }, ctx.host.become),
      bouncerGuardSettings({
        run,
        pidfile,
        maxPauseS: p.max_pause,
        silenceS: p.guard_silence ?? DEFAULT_SILENCE_S,
      }),
      `the PgBouncer pause guard on ${ctx.host.name} ended while the run held the pause (the pause reached max_pause = ${p.max_pause} s, or the connection to ${ctx.host.name} was lost): PgBouncer was resumed`,
      // Resuming a pooler is safe at any point: past an upgrade's point of no return too, a run
      // that fails or dies must not leave clients waiting.
      { pastPointOfNoReturn: true },
    );
    ctx.changing();
    const started = Date.now();
    try {
      await pauseWithin(ctx, (p.timeout ?? 30) * 1000);
    } catch (err) {
      await ctx.guards.end(bouncerGuardName(ctx.host.name), 'finish');
      throw err;
    }
    const waited = Date.now() - started;
    ctx.log(
      `PgBouncer ${consoleAddress(ctx.host)} paused after ${waited} ms; guarded from ${ctx.host.name} (pidfile ${pidfile})`,
    );
    return { paused_at: new Date().toISOString(), pause_wait_ms: waited, pidfile };
  },
  async undo(ctx) {
    const resumed = await resumeConsole(ctx.host, ctx.signal);
    await ctx.guards.end(bouncerGuardName(ctx.host.name), 'release');
    ctx.log(resumed ? `PgBouncer ${consoleAddress(ctx.host)} resumed` : 'PgBouncer was not paused any more');
  },
});

/**
 * PAUSE on its own session; if it has not returned within `ms` (or the run is stopped), RESUME on
 * another session withdraws it (the waiting PAUSE then ends too) and the step fails, naming the
 * server connections still busy.
 */
async function pauseWithin(ctx: ApplyContext, ms: number): Promise<void> {
  const s = await openConsole(ctx.host);
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((res) => {
    timer = setTimeout(() => res('late'), ms);
  });
  const aborted = new Promise<'aborted'>((res) => {
    if (ctx.signal.aborted) res('aborted');
    ctx.signal.addEventListener('abort', () => res('aborted'), { once: true });
  });
  try {
    const r = await Promise.race([s.query('PAUSE').then(() => 'ok' as const), late, aborted]);
    if (r === 'ok') return;
    const busy = await consoleCommand(ctx.host, 'SHOW SERVERS').catch(() => []);
    await resumeConsole(ctx.host).catch(() => false);
    const held = busy
      .filter((b) => b.state === 'active')
      .map((b) => `${b.user}@${b.database} (${b.addr}:${b.port}, since ${b.connect_time})`);
    throw new StepFailure(
      r === 'aborted'
        ? 'stopped while PAUSE waited: the pause was withdrawn (RESUME)'
        : `PAUSE did not return within ${ms / 1000} s: server connections were still busy (${held.join(', ') || 'none listed'}); the pause was withdrawn (RESUME) and clients go on`,
    );
  } finally {
    clearTimeout(timer);
    await s.close().catch(() => {});
  }
}

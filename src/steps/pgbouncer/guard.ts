// The PgBouncer pause guard: a small Python program `pgbouncer.pause` starts on the PgBouncer
// host over the run's own connection, so that clients held by a PAUSE are never held longer than
// the run lives or than `max_pause`. It resumes PgBouncer with SIGUSR2 ("same as RESUME on the
// console", pgbouncer(1)): no password, no client library, only the right to signal the process
// (the connecting user is PgBouncer's OS user, or the host has `become: sudo`).
//
// It reads one line of JSON settings, prints "ready PID", then listens on its standard input:
//   beat      the run is alive (the runner sends it every 2 s)
//   release   the run resumed PgBouncer itself: exit, doing nothing
//   finish    the run ends with PgBouncer still paused: resume now, report, exit
// EOF (the runner died, the connection closed), no word for `silence` seconds (a network cut, a
// frozen runner), or `max_pause` seconds since it started: resume now. Ending on its own while
// the run holds it fails the run, which is the fail-safe the maximum pause promises. It ignores
// SIGHUP, SIGINT and SIGTERM from the session; what it did goes to syslog
// (`journalctl -t pgrunbook-guard`) and, while someone listens, to its stdout as one last line:
// "ok: …" (resumed, or released) or "failed: …".
import { quote } from '../../util/shell.js';

const PROGRAM = String.raw`
import json, os, select, signal, sys, time
for s in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM, signal.SIGPIPE):
    signal.signal(s, signal.SIG_IGN)
try:
    import syslog
    syslog.openlog('pgrunbook-guard')
except Exception:
    syslog = None
fd = 0
buf = b''
while b'\n' not in buf:
    c = os.read(fd, 65536)
    if not c:
        sys.exit(1)
    buf += c
l, buf = buf.split(b'\n', 1)
cfg = json.loads(l.decode())
def say(text):
    if syslog:
        try: syslog.syslog(syslog.LOG_WARNING, 'run %s, pgbouncer %s: %s' % (cfg['run'], cfg['pidfile'], text))
        except Exception: pass
    try:
        sys.stdout.write(text + '\n')
        sys.stdout.flush()
    except Exception:
        pass
def resume():
    try:
        with open(cfg['pidfile']) as f:
            pid = int(f.read().split()[0])
        with open('/proc/%d/comm' % pid) as f:
            comm = f.read().strip()
        if not comm.startswith('pgbouncer'):
            return 'failed: %s names pid %d, which is %s, not pgbouncer' % (cfg['pidfile'], pid, comm)
        os.kill(pid, signal.SIGUSR2)
        return 'ok: resumed PgBouncer (pid %d, SIGUSR2)' % pid
    except Exception as e:
        return 'failed: could not resume PgBouncer: %s' % e
deadline = time.time() + cfg['max_pause']
say('ready %d' % os.getpid())
while True:
    wait = min(cfg['silence'], deadline - time.time())
    if wait <= 0:
        why = 'the pause reached its maximum of %ss' % cfg['max_pause']
        break
    try:
        r, _, _ = select.select([fd], [], [], wait)
    except InterruptedError:
        continue
    if not r:
        if time.time() >= deadline:
            continue
        why = 'no word from the run for %ss' % cfg['silence']
        break
    try:
        c = os.read(fd, 65536)
    except OSError:
        c = b''
    if not c:
        why = "the run's connection ended"
        break
    buf += c
    done = None
    while b'\n' in buf:
        l, buf = buf.split(b'\n', 1)
        l = l.strip()
        if l == b'release':
            done = 'release'
        elif l == b'finish':
            done = 'finish'
    if done == 'release':
        say('ok: released: the run resumed PgBouncer itself')
        sys.exit(0)
    if done == 'finish':
        say(resume())
        sys.exit(0)
say('acting: %s; resuming PgBouncer' % why)
say(resume())
`;

/** The command line that starts the guard (wrapped in the host's `become` by the caller). */
export function bouncerGuardCommandLine(python = 'python3'): string {
  return `exec ${quote(python)} -u -c ${quote(PROGRAM.trim())}`;
}

/** The guard's settings: one JSON line on its input. */
export function bouncerGuardSettings(opts: {
  run: string;
  pidfile: string;
  maxPauseS: number;
  silenceS: number;
}): string {
  return `${JSON.stringify({ run: opts.run, pidfile: opts.pidfile, max_pause: opts.maxPauseS, silence: opts.silenceS })}\n`;
}

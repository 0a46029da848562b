// The pause guard: a small Python program that `patroni.pause` starts on the member it paused
// through, over the run's own connection, so that a pause cannot outlive its run. Python because
// every Patroni host has it (Patroni is Python) and it speaks HTTP(S) without anything else.
//
// It reads one line of JSON settings, prints "ready", then listens on its standard input:
//   beat     the run is alive (the runner sends it every 2 s)
//   armed    the pause is acknowledged by every member: one read of /config can be trusted
//   release  the run resumed the cluster itself: exit, doing nothing
//   finish   the run ends with its pause still in place: resume now, report, exit
// EOF (the runner died, the connection closed) or no word for `silence` seconds (a network cut,
// a frozen runner) means the run is gone: it resumes the cluster — only while the DCS config
// still carries this run's marker (`pgrunbook_pause.run`) and this attempt's token
// (`pgrunbook_pause.attempt`), so a pause someone made since, a resume someone did, or a pause
// made again by `pgrunbook resume` of the same run (whose own guard then watches it) is left
// alone. It ignores SIGHUP, SIGINT and SIGTERM from the session and keeps trying for `retry`
// seconds (the DCS may be down); what it did goes to syslog (`journalctl -t pgrunbook-guard`)
// and, while someone listens, to its stdout as one last line:
// "ok: …" (resumed, or released), "left: …" (not paused: nothing to do), "paused: …" (paused by
// someone else: left so) or "failed: …".
import type { PatroniSettings } from '../../connections/patroni.js';
import { readRegularFile } from '../../util/read-file.js';
import { quote } from '../../util/shell.js';

/** The key this run's marker takes in Patroni's dynamic configuration. */
export const MARKER_KEY = 'pgrunbook_pause';

/** What the marker holds: who paused, from where, since when. */
export interface PauseMarker {
  run: string;
  /** One per pause attempt (a resumed run pauses again under the same run id): its guard's. */
  attempt: string;
  controller: string;
  pid: number;
  since: string;
}

const PROGRAM = String.raw`
import json, os, select, signal, ssl, sys, tempfile, time, urllib.error, urllib.request
for s in (signal.SIGHUP, signal.SIGINT, signal.SIGTERM, signal.SIGPIPE):
    signal.signal(s, signal.SIG_IGN)
try:
    import syslog
    syslog.openlog('pgrunbook-guard')
except Exception:
    syslog = None
fd = 0
buf = b''
def line():
    global buf
    while b'\n' not in buf:
        c = os.read(fd, 65536)
        if not c:
            return None
        buf += c
    l, buf = buf.split(b'\n', 1)
    return l.decode()
cfg = json.loads(line())
ctx = None
if cfg['urls'][0].startswith('https') or cfg.get('ca'):
    ctx = ssl.create_default_context(cadata=cfg.get('ca') or None)
    if cfg.get('cert'):
        d = tempfile.mkdtemp()
        try:
            for n in ('cert', 'key'):
                with open(os.open(os.path.join(d, n), os.O_WRONLY | os.O_CREAT, 0o600), 'w') as f:
                    f.write(cfg.get(n) or '')
            ctx.load_cert_chain(os.path.join(d, 'cert'), os.path.join(d, 'key') if cfg.get('key') else None)
        finally:
            for n in ('cert', 'key'):
                try: os.unlink(os.path.join(d, n))
                except OSError: pass
            os.rmdir(d)
def say(text):
    if syslog:
        try: syslog.syslog(syslog.LOG_WARNING, 'run %s, cluster %s: %s' % (cfg['run'], cfg['scope'], text))
        except Exception: pass
    try:
        sys.stdout.write(text + '\n')
        sys.stdout.flush()
    except Exception:
        pass
def call(method, url, body=None):
    data = None if body is None else json.dumps(body).encode()
    r = urllib.request.Request(url, data=data, method=method)
    r.add_header('Accept', 'application/json')
    if data is not None:
        r.add_header('Content-Type', 'application/json')
    if cfg.get('auth') and method != 'GET':
        r.add_header('Authorization', cfg['auth'])
    with urllib.request.urlopen(r, timeout=5, context=ctx) as resp:
        return json.loads(resp.read().decode() or '{}')
def resume(deadline, settle_until, watch):
    last = 'no member answered'
    told = False
    while True:
        seen = None
        for url in cfg['urls']:
            try:
                conf = call('GET', url + '/config')
            except urllib.error.HTTPError as e:
                last = '%s: HTTP %s' % (url, e.code)
                continue
            except Exception as e:
                last = '%s: %s' % (url, e)
                continue
            marker = conf.get('${MARKER_KEY}') or {}
            mine = marker.get('run') == cfg['run'] and marker.get('attempt') == cfg['attempt']
            if conf.get('pause') is True and mine:
                try:
                    call('PATCH', url + '/config', {'pause': None, '${MARKER_KEY}': None})
                    return 'ok: resumed Patroni through %s' % url
                except urllib.error.HTTPError as e:
                    last = '%s: PATCH /config answered HTTP %s' % (url, e.code)
                except Exception as e:
                    last = '%s: %s' % (url, e)
                continue
            seen = seen or conf
        if seen is not None and time.time() >= settle_until:
            if seen.get('pause') is True:
                other = (seen.get('${MARKER_KEY}') or {}).get('run')
                if other == cfg['run']:
                    return 'paused: the cluster is paused again by a later attempt of this run (pgrunbook resume), whose own guard watches it: left paused'
                return 'paused: the cluster is paused by %s, not by this run: left paused' % (('pgrunbook run ' + other) if other else 'someone else')
            if not watch:
                return 'left: the cluster is not paused (nothing to resume)'
            # A pause this run sent and never saw confirmed (its DCS write may be stuck behind a
            # frozen etcd) can still land: report now, and keep watching until the deadline.
            if not told:
                say('left: the cluster is not paused (nothing to resume); watching %ds more for a pause of this run that may still land' % max(0, deadline - time.time()))
                told = True
        if time.time() >= deadline:
            return 'left: no pause of this run landed' if told else 'failed: could not resume Patroni (%s)' % last
        time.sleep(1)
armed = False
say('ready %d' % os.getpid())
while True:
    try:
        r, _, _ = select.select([fd], [], [], cfg['silence'])
    except InterruptedError:
        continue
    if not r:
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
        if l == b'armed':
            armed = True
        elif l == b'release':
            done = 'release'
        elif l == b'finish':
            done = 'finish'
    if done == 'release':
        say('ok: released: the run resumed the cluster itself')
        sys.exit(0)
    if done == 'finish':
        say(resume(time.time() + cfg['retry'], time.time() if armed else time.time() + cfg['settle'], not armed))
        sys.exit(0)
say('acting: %s; resuming the cluster if the pause is still this run\'s' % why)
# Before the pause was acknowledged everywhere, a member's cached /config may not show it yet:
# look a while before concluding there is nothing to resume.
say(resume(time.time() + cfg['retry'], time.time() if armed else time.time() + cfg['settle'], not armed))
`;

/** The command line that starts the guard; it runs as the connecting user (no `become`). */
export function guardCommandLine(python = 'python3'): string {
  return `exec ${quote(python)} -u -c ${quote(PROGRAM.trim())}`;
}

/** The guard's settings: one JSON line, sent on its input so no secret is on a command line. */
export function guardSettings(opts: {
  run: string;
  /** the marker's attempt token: the guard acts only on a pause carrying it */
  attempt: string;
  scope: string;
  /** this member's REST URL first, then the others' */
  urls: string[];
  patroni: PatroniSettings;
  silenceS: number;
  retryS: number;
  settleS: number;
}): string {
  const s = opts.patroni;
  const auth = s.username
    ? `Basic ${Buffer.from(`${s.username}:${s.password?.reveal() ?? ''}`).toString('base64')}`
    : undefined;
  // Bounded reads of regular files only: a FIFO in the inventory must not hang the step.
  const pem = (path?: string) => (path ? readRegularFile(path, 4 * 1024 * 1024).toString('utf8') : undefined);
  return `${JSON.stringify({
    run: opts.run,
    attempt: opts.attempt,
    scope: opts.scope,
    urls: opts.urls,
    auth,
    ca: pem(s.caFile),
    cert: pem(s.certFile),
    key: pem(s.keyFile),
    silence: opts.silenceS,
    retry: opts.retryS,
    settle: opts.settleS,
  })}\n`;
}

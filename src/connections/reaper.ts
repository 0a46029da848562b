// What ends a run's local commands when the runner itself dies (kill -9, a crash), when no code
// of ours runs any more: a small sh process, in its own process group and deaf to signals, that
// the runner tells about each command's process group through a pipe. When the pipe closes —
// the runner exited, however — it sends SIGTERM to the groups still listed, then SIGKILL a
// second later. A runner that ends normally has no command left, and the reaper does nothing.
import { type ChildProcess, spawn } from 'node:child_process';

const SCRIPT = `trap '' INT TERM HUP
groups=""
while IFS= read -r line; do
  case "$line" in
    +*) groups="$groups \${line#+}" ;;
    -*) groups=$(printf '%s\\n' $groups | grep -vx -- "\${line#-}" | tr '\\n' ' ') ;;
  esac
done
[ -n "$groups" ] || exit 0
for g in $groups; do kill -TERM "-$g" 2>/dev/null; done
sleep 1
for g in $groups; do kill -KILL "-$g" 2>/dev/null; done
exit 0`;

let reaper: ChildProcess | undefined;

function started(): ChildProcess | undefined {
  if (reaper && reaper.exitCode === null && !reaper.killed) return reaper;
  let r: ChildProcess;
  try {
    r = spawn('/bin/sh', ['-c', SCRIPT], { detached: true, stdio: ['pipe', 'ignore', 'ignore'] });
  } catch {
    return undefined;
  }
  reaper = r;
  r.on('error', () => {});
  r.stdin!.on('error', () => {});
  // Never what keeps the runner alive: it only matters once the runner is gone.
  r.unref();
  (r.stdin as unknown as { unref?: () => void }).unref?.();
  return r;
}

/** Registers a command's process group to be ended if the runner dies while it runs. */
export function watchGroup(pgid: number): void {
  started()?.stdin?.write(`+${pgid}\n`);
}

/** The command ended: nothing to reap for it. */
export function forgetGroup(pgid: number): void {
  reaper?.stdin?.write(`-${pgid}\n`);
}

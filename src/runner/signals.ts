// Signals during a run. First: stop and unwind. Second: give up on the clean-up in progress (the
// summary prints what remains to do by hand). Third: leave at once. SIGHUP (the operator's
// terminal or SSH session went away) unwinds as SIGTERM does.
import type { Executor } from './executor.js';

const SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

/** Hands the process's signals to the executor until `release` is called. */
export function handleSignals(executor: Executor, journalPath: string): { release(): void } {
  let count = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    count++;
    if (count === 1) executor.interrupt(sig);
    else if (count === 2) {
      process.stderr.write(
        `${sig} again: abandoning the clean-up in progress; the summary will list what remains to undo by hand\n`,
      );
      executor.abandonCleanup();
    } else {
      process.stderr.write(
        `${sig} a third time: exiting now. The journal ${journalPath} shows what was done and undone.\n`,
      );
      process.exit(3);
    }
  };
  for (const s of SIGNALS) process.on(s, onSignal);
  return {
    release() {
      for (const s of SIGNALS) process.off(s, onSignal);
    },
  };
}

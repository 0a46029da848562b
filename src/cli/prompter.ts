// The operator at the terminal: approvals and prompts read from standard input when it is a TTY.
import { createInterface } from 'node:readline/promises';
import type { Prompter } from '../runner/executor.js';

/** Asks on stderr, reads stdin; without a terminal every question answers "" (declined). */
export function ttyPrompter(): Prompter {
  const interactive = process.stdin.isTTY === true;
  return {
    interactive,
    async ask(question, signal) {
      if (!interactive) return '';
      const rl = createInterface({ input: process.stdin, output: process.stderr });
      // In raw mode readline swallows ^C: hand it to the runner's own handler, which unwinds.
      rl.on('SIGINT', () => process.kill(process.pid, 'SIGINT'));
      try {
        // Aborted by a signal (the runner's stop), the question answers "" = declined.
        return await rl.question(question, { signal }).catch(() => '');
      } finally {
        rl.close();
      }
    },
  };
}

// One JSON event per line on stdout, for machines (CI, chat bots, dashboards).
import type { Subscriber } from '../runner/events.js';
import { redactValue } from '../util/secret.js';

/** A subscriber writing each event as one JSON line. */
export function jsonReporter(write: (s: string) => void): Subscriber {
  return (e) => write(`${JSON.stringify(redactValue(e))}\n`);
}

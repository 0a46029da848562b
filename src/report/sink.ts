// Coalesces many small writes into one per event-loop turn: a lockstep round emits dozens of
// events at once, and one write per event made stdout a large share of a run's CPU time.

/** A writer that buffers within a turn and flushes on setImmediate, and on `flush()`. */
export function coalescingWriter(write: (s: string) => void): {
  write: (s: string) => void;
  flush: () => void;
} {
  let buf: string[] = [];
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    if (buf.length === 0) return;
    const text = buf.join('');
    buf = [];
    write(text);
  };
  return {
    write(s) {
      buf.push(s);
      if (!scheduled) {
        scheduled = true;
        setImmediate(flush);
      }
    },
    flush,
  };
}

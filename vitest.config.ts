import { defineConfig } from 'vitest/config';

// Integration tests start real servers: generous timeouts, one process per file so that a
// crashed server never leaks into another file's state.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Two files at once on the 2-core test machine (vitest's default there is one): most of an
    // integration file's time is waiting on servers, so the suite takes about 14 minutes instead
    // of 21. A file must not depend on running alone (its servers take free ports and their own
    // directories).
    maxWorkers: 2,
  },
});

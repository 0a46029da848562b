import { defineConfig } from 'vitest/config';

// Integration tests start real servers: generous timeouts, one process per file so that a
// crashed server never leaks into another file's state.
export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
  },
});

import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Each file owns a scratch database and Redis prefix, so files run in parallel.
    pool: 'forks',
  },
});

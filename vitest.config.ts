import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Integration tests each start their own loopback servers on port 0; two workers fit two cores.
    pool: 'forks',
    maxWorkers: 2,
  },
});

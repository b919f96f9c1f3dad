import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The end-to-end tests drive the built CLI: build dist/ first when a source is newer.
    globalSetup: ['test/e2e/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Integration tests each start their own loopback servers on port 0; two workers fit two cores.
    pool: 'forks',
    maxWorkers: 2,
  },
});

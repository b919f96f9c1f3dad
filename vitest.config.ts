import { defineConfig } from 'vitest/config';

/** One project per folder of test/, so `vitest run --project unit` runs only the unit tests. */
const folder = (name: string) => ({ extends: true as const, test: { name, include: [`test/${name}/**/*.test.ts`] } });

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 30_000,
    // Integration tests each start their own loopback servers on port 0; two workers fit two cores.
    pool: 'forks',
    maxWorkers: 2,
    projects: [
      folder('unit'),
      folder('integration'),
      // The end-to-end tests drive the built CLI: build dist/ first when a source is newer.
      { extends: true, test: { name: 'e2e', include: ['test/e2e/**/*.test.ts'], globalSetup: ['test/e2e/global-setup.ts'] } },
      folder('browser'),
    ],
  },
});

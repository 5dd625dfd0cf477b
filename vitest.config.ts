import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // The build machines have 2 cores; more workers only add contention.
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 60_000,
    include: ['test/**/*.test.ts'],
  },
});

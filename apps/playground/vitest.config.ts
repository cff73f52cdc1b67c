import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'e2e/**/*.test.ts'],
    // The browser test shares one Chromium across its steps; unit tests are fast either way.
    fileParallelism: false,
    testTimeout: 10_000,
    hookTimeout: 120_000,
  },
});

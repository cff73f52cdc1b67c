import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // The reference backend is plain TypeScript and CI machines are shared: allow slow runs rather
    // than flaky timeouts (no test here measures speed).
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});

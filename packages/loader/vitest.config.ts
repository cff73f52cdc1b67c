import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // The machines running this suite are shared (load averages above 10 on 2 cores are common): the
    // generous limits only catch hangs; no test measures speed.
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});

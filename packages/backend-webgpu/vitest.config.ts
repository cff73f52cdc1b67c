import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // One GPU device per file at a time; lavapipe shares the machine's two cores.
    fileParallelism: false,
    testTimeout: 120_000,
    hookTimeout: 60_000,
  },
});

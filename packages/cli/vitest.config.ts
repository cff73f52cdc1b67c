import { defineConfig } from 'vitest/config';

// Every test spawns the built CLI (model load, tokenizer load): seconds each, more on a busy machine.
// Files run one after another so that the spawned processes do not fight for the 2 cores.
export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
    fileParallelism: false,
  },
});

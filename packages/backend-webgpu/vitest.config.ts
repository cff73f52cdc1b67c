import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // One GPU device per file at a time; lavapipe shares the machine's two cores.
    fileParallelism: false,
    // Hang-only limits: the machine is shared and a CPU Vulkan driver slows down a lot under load.
    testTimeout: 600_000,
    hookTimeout: 120_000,
  },
});

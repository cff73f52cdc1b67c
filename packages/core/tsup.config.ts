import { defineConfig } from 'tsup';

export default defineConfig({
  // `testing` is the conformance suite for backends (Node + vitest); it is a separate entry so the main
  // entry stays free of Node APIs and of vitest.
  entry: { index: 'src/index.ts', testing: 'src/testing/index.ts' },
  format: ['esm'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'es2022',
  platform: 'neutral',
  external: ['vitest', /^node:/, '@qwen2-ts/loader', '@qwen2-ts/tokenizer'],
});

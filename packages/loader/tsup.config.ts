import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/index.ts'],
  format: ['esm'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'es2022',
  platform: 'neutral',
  // Keep `node:` specifiers: they only appear in chunks that Node code paths import dynamically, and
  // browser bundlers recognize `node:` as Node-only instead of trying to resolve 'fs'.
  removeNodeProtocol: false,
  external: [/^node:/],
});

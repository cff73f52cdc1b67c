// A check of the kernel sources themselves, for a rule no emulated or host test can see: with
// programmatic dependent launch a kernel may start before the previous one on the stream has finished,
// so every kernel must wait for it (await_prior_grids) before it touches global memory, and every launch
// must go through LAUNCH (which adds the attribute only where the context enables it).
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const nativeDir = new URL('../native/', import.meta.url);
/** The kernel sources that launch through common.cuh (probe.cu only compiles a kernel it never launches). */
const sources = readdirSync(nativeDir)
  .filter((f) => f.endsWith('.cu'))
  .map((f) => ({ file: f, text: readFileSync(new URL(f, nativeDir), 'utf8') }))
  .filter((s) => s.text.includes('#include "common.cuh"'));

/** Each `__global__` definition: its name and the first statement of its body. */
function kernels(text: string): { name: string; first: string }[] {
  const out: { name: string; first: string }[] = [];
  for (let i = text.indexOf('__global__'); i >= 0; i = text.indexOf('__global__', i + 1)) {
    const open = text.indexOf('{', i);
    const head = text.slice(i, open);
    const name = /(\w+)\s*\(/.exec(head.replace(/__launch_bounds__\([^)]*\)/, ''))?.[1] ?? '?';
    out.push({ name, first: text.slice(open + 1).trimStart().split('\n')[0]!.trim() });
  }
  return out;
}

describe('kernel sources', () => {
  it('every launched kernel waits for the grids before it first', () => {
    const all = sources.flatMap((s) => kernels(s.text).map((k) => ({ ...k, file: s.file })));
    expect(all.length).toBeGreaterThanOrEqual(15);
    expect(all.filter((k) => k.first !== 'await_prior_grids();').map((k) => `${k.file}: ${k.name} starts with "${k.first}"`)).toEqual([]);
  });

  it('kernels are launched only through LAUNCH', () => {
    expect(sources.filter((s) => s.text.includes('<<<')).map((s) => s.file)).toEqual([]);
  });

  it('finds a kernel that does not wait (the check itself)', () => {
    const bad = kernels('__global__ void __launch_bounds__(256, 2) k(int* p) {\n  *p = 1;\n}\n__global__ void ok(int* p) {\n  await_prior_grids();\n}');
    expect(bad).toEqual([
      { name: 'k', first: '*p = 1;' },
      { name: 'ok', first: 'await_prior_grids();' },
    ]);
  });
});

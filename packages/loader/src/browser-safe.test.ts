// The browser path must not load Node modules: walk the static import graph from the entry point and
// check that no module reached without a dynamic import() uses a `node:` specifier.
import { readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = dirname(fileURLToPath(import.meta.url));

function staticImports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  // `import ... from 'x'` and `export ... from 'x'`, but not `import('x')` and not type-only imports (erased).
  return [...text.matchAll(/^(?:import|export)\s+(?!type\s)[^;]*?from\s+'([^']+)'/gms)].map((m) => m[1]);
}

describe('browser safety of the entry point', () => {
  it('reaches no node: module through static imports', () => {
    const seen = new Set<string>();
    const nodeImports: string[] = [];
    const visit = (file: string) => {
      if (seen.has(file)) return;
      seen.add(file);
      for (const spec of staticImports(file)) {
        if (spec.startsWith('node:')) nodeImports.push(`${relative(SRC, file)} -> ${spec}`);
        else if (spec.startsWith('.')) visit(join(dirname(file), spec.replace(/\.js$/, '.ts')));
      }
    };
    visit(join(SRC, 'index.ts'));
    expect(seen.size).toBeGreaterThan(8);
    expect([...seen].some((f) => f.includes(`${join('node', '')}`))).toBe(false);
    expect(nodeImports).toEqual([]);
  });
  it('the check itself sees node: imports where they are', () => {
    expect(staticImports(join(SRC, 'node', 'local-folder.ts'))).toContain('node:fs/promises');
  });
});

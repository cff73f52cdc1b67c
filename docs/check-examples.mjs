#!/usr/bin/env node
// Extracts every ```ts / ```js code block from the root README, the package READMEs and the guides,
// type-checks them all against the built packages, and runs the ones marked to run (info string
// `ts run`) in Node against a fixture model. Examples read their model from `process.env.QWEN2_MODEL`
// with a real default (a Hub id), so they read naturally and still run offline here.
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const docs = dirname(fileURLToPath(import.meta.url));
const root = join(docs, '..');
const outDir = join(docs, '.examples');

/** Markdown files whose examples are checked. */
function sources() {
  const files = [join(root, 'README.md')];
  for (const group of ['packages', 'apps']) {
    for (const name of readdirSync(join(root, group)).sort()) {
      const readme = join(root, group, name, 'README.md');
      if (existsSync(readme)) files.push(readme);
    }
  }
  const guides = join(docs, 'guides');
  for (const name of readdirSync(guides).sort()) if (name.endsWith('.md')) files.push(join(guides, name));
  return files;
}

/** Code blocks of one Markdown file: language, whether to run it, the code, and its line number. */
function extract(file) {
  const blocks = [];
  const lines = readFileSync(file, 'utf8').split('\n');
  for (let i = 0; i < lines.length; i++) {
    const open = /^```(ts|typescript|js|javascript)(\s+run)?\s*$/.exec(lines[i]);
    if (!open) continue;
    const start = i + 1;
    let end = start;
    while (end < lines.length && !/^```\s*$/.test(lines[end])) end++;
    blocks.push({ lang: open[1].startsWith('t') ? 'ts' : 'js', run: Boolean(open[2]), code: lines.slice(start, end).join('\n'), line: start });
    i = end;
  }
  return blocks;
}

/** A model folder the runnable examples can use offline: the full-vocab fixture plus real tokenizer files. */
function fixtureModel() {
  const dir = mkdtempSync(join(tmpdir(), 'qwen2-example-model-'));
  const fixtures = join(root, 'fixtures');
  cpSync(join(fixtures, 'models', 'full-vocab-bf16'), dir, { recursive: true });
  for (const f of ['tokenizer.json', 'vocab.json', 'merges.txt']) cpSync(join(fixtures, 'tokenizer', f), join(dir, f));
  cpSync(join(fixtures, 'configs', 'Qwen2-0.5B-Instruct', 'tokenizer_config.json'), join(dir, 'tokenizer_config.json'));
  cpSync(join(fixtures, 'configs', 'Qwen2-0.5B-Instruct', 'generation_config.json'), join(dir, 'generation_config.json'));
  return dir;
}

rmSync(outDir, { recursive: true, force: true });
mkdirSync(outDir, { recursive: true });
const examples = [];
for (const file of sources()) {
  const rel = relative(root, file);
  extract(file).forEach((block, n) => {
    const name = `${rel.replace(/[^A-Za-z0-9]+/g, '_')}_${n + 1}.${block.lang === 'ts' ? 'mts' : 'mjs'}`;
    // The header maps errors back to the Markdown source.
    writeFileSync(join(outDir, name), `// from ${rel}:${block.line}\nexport {};\n${block.code}\n`);
    examples.push({ name, rel, line: block.line, run: block.run });
  });
}
writeFileSync(join(outDir, 'tsconfig.json'), JSON.stringify({
  extends: '../../tsconfig.base.json',
  compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', noEmit: false, outDir: 'out', declaration: false, sourceMap: false, allowJs: true, checkJs: true, types: ['node', '@webgpu/types'] },
  include: ['*.mts', '*.mjs'],
}, null, 2));

const tsc = join(root, 'node_modules', '.bin', 'tsc');
const check = spawnSync(tsc, ['-p', join(outDir, 'tsconfig.json')], { cwd: docs, encoding: 'utf8' });
if (check.status !== 0) {
  process.stderr.write(check.stdout + check.stderr);
  console.error(`docs: ${examples.length} examples extracted; type errors above (files in docs/.examples name their Markdown source)`);
  process.exit(1);
}

const runnable = examples.filter((e) => e.run);
const model = runnable.length ? fixtureModel() : undefined;
let failed = 0;
for (const e of runnable) {
  const js = join(outDir, 'out', e.name.replace(/\.mts$/, '.mjs'));
  const r = spawnSync(process.execPath, [js], { cwd: outDir, encoding: 'utf8', timeout: 120_000, env: { ...process.env, QWEN2_MODEL: model, HF_HUB_OFFLINE: '1' } });
  if (r.status === 0) {
    console.log(`ran ${e.rel}:${e.line} (${basename(js)})`);
  } else {
    failed++;
    console.error(`FAILED ${e.rel}:${e.line}: exit ${r.status}${r.signal ? ` (${r.signal})` : ''}\n${r.stdout}${r.stderr}`);
  }
}
if (model) rmSync(model, { recursive: true, force: true });
console.log(`docs examples: ${examples.length} type-checked, ${runnable.length - failed} of ${runnable.length} runnable examples passed`);
process.exit(failed ? 1 : 0);

/** Shared helpers for the CLI tests: the built CLI, the fixtures, and a model folder with a tokenizer. */
import { spawn, spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The built CLI entry point. */
export const MAIN = fileURLToPath(new URL('../../dist/main.js', import.meta.url));
/** The repository's fixtures folder (relative to this file, never ../shared). */
export const FIXTURES = fileURLToPath(new URL('../../../../fixtures/', import.meta.url));
export const MODELS = join(FIXTURES, 'models');

/** Environment for spawned CLIs: no Hub, no colours. */
export function testEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { ...process.env, HF_HUB_OFFLINE: '', FORCE_COLOR: '0', NO_COLOR: '1', ...extra };
}

/** Runs the built CLI to completion. */
export function cli(args: string[], options: { input?: string; env?: Record<string, string>; timeout?: number } = {}): SpawnSyncReturns<string> {
  return spawnSync(process.execPath, [MAIN, ...args], {
    encoding: 'utf8',
    input: options.input ?? '',
    env: testEnv(options.env),
    timeout: options.timeout ?? 60_000,
    maxBuffer: 256 * 1024 * 1024,
  });
}

/** Runs the built CLI without blocking the event loop (for tests that run a server in the same process). */
export function cliAsync(args: string[], options: { env?: Record<string, string> } = {}) {
  return spawn(process.execPath, [MAIN, ...args], { env: testEnv(options.env), stdio: ['pipe', 'pipe', 'pipe'] });
}

/**
 * A temporary model folder: the full-vocabulary random checkpoint plus the real Qwen2 tokenizer files and
 * Qwen2-0.5B-Instruct's tokenizer_config.json (chat template, eos <|im_end|>). The fixture itself ships
 * no tokenizer. Returns the folder and a cleanup function.
 */
export function modelWithTokenizer(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'qwen2-cli-model-'));
  const model = join(MODELS, 'full-vocab-bf16');
  for (const f of readdirSync(model)) if (f === 'config.json' || f.endsWith('.safetensors') && !f.startsWith('golden')) copyFileSync(join(model, f), join(dir, f));
  for (const f of ['tokenizer.json', 'vocab.json', 'merges.txt']) copyFileSync(join(FIXTURES, 'tokenizer', f), join(dir, f));
  copyFileSync(join(FIXTURES, 'configs', 'Qwen2-0.5B-Instruct', 'tokenizer_config.json'), join(dir, 'tokenizer_config.json'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** The last line of text (stderr messages are checked line by line). */
export function lines(text: string): string[] {
  return text.split('\n').filter((l) => l.trim() !== '');
}

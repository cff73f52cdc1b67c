/** Node-only: the Hub settings huggingface_hub reads from the environment, with the same precedence. */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_ENDPOINT } from '../hub/hub-spec.js';

/** Resolved Hub settings. */
export interface HubSettings { endpoint: string; token?: string; offline: boolean; cacheDir: string }

const TRUE = new Set(['1', 'ON', 'YES', 'TRUE']);

function expandHome(path: string): string {
  return path === '~' || path.startsWith('~/') ? join(homedir(), path.slice(1)) : path;
}

/** HF_HOME as huggingface_hub computes it: HF_HOME, else $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface. */
export function hfHome(env: NodeJS.ProcessEnv = process.env): string {
  if (env.HF_HOME) return expandHome(env.HF_HOME);
  return join(expandHome(env.XDG_CACHE_HOME || join(homedir(), '.cache')), 'huggingface');
}

/**
 * Options first, then the environment: HF_ENDPOINT, HF_TOKEN (then the token file `huggingface-cli login`
 * writes: HF_TOKEN_PATH or HF_HOME/token), HF_HUB_OFFLINE, HF_HUB_CACHE (then HF_HOME/hub).
 */
export function hubSettings(
  options: { endpoint?: string; token?: string; offline?: boolean; cacheDir?: string },
  env: NodeJS.ProcessEnv = process.env,
): HubSettings {
  const endpoint = (options.endpoint ?? (env.HF_ENDPOINT || DEFAULT_ENDPOINT)).replace(/\/+$/, '');
  const offline = options.offline ?? TRUE.has((env.HF_HUB_OFFLINE ?? '').toUpperCase());
  const cacheDir = expandHome(options.cacheDir ?? (env.HF_HUB_CACHE || env.HUGGINGFACE_HUB_CACHE || join(hfHome(env), 'hub')));
  let token = options.token ?? (env.HF_TOKEN || env.HUGGING_FACE_HUB_TOKEN || undefined);
  if (token === undefined) {
    try {
      token = readFileSync(expandHome(env.HF_TOKEN_PATH || join(hfHome(env), 'token')), 'utf8').trim() || undefined;
    } catch {
      // No saved token: anonymous access.
    }
  }
  return token ? { endpoint, token, offline, cacheDir } : { endpoint, offline, cacheDir };
}

/** Parsing of Hub model ids; browser-safe (no Node APIs). */
import { ModelNotFoundError } from '../errors.js';

/** `owner/name` or `owner/name@revision`. Folder paths that happen to match are checked on disk first. */
export const HUB_ID = /^[A-Za-z0-9][\w.-]*\/[\w.-]+(@[^\s@]+)?$/;

/** Default Hub endpoint, overridden by HF_ENDPOINT or the `endpoint` option. */
export const DEFAULT_ENDPOINT = 'https://huggingface.co';

/**
 * A Hub model reference.
 * @throws {@link ModelNotFoundError} from {@link parseHubSpec} for an id huggingface_hub would refuse
 */
export interface HubRef { repoId: string; revision: string }

/**
 * Splits `owner/name[@revision]`; a revision in the spec wins over the option.
 * @param spec - the Hub id
 * @param revision - fallback revision (default 'main')
 */
export function parseHubSpec(spec: string, revision?: string): HubRef {
  const at = spec.indexOf('@');
  const ref = at >= 0 ? { repoId: spec.slice(0, at), revision: spec.slice(at + 1) } : { repoId: spec, revision: revision ?? 'main' };
  // huggingface_hub's rules: no '--' or '..' (they would break the cache folder name), no '.git' suffix.
  if (!HUB_ID.test(ref.repoId) || ref.repoId.includes('--') || ref.repoId.includes('..') || ref.repoId.endsWith('.git') || ref.revision === '') {
    throw new ModelNotFoundError(spec, `'${spec}' is not a valid Hub model id (expected owner/name or owner/name@revision)`);
  }
  return ref;
}

/** The URL huggingface_hub downloads a file from: `{endpoint}/{repo}/resolve/{revision}/{file}`. */
export function resolveUrl(endpoint: string, ref: HubRef, file: string): string {
  const path = file.split('/').map(encodeURIComponent).join('/');
  return `${endpoint.replace(/\/+$/, '')}/${ref.repoId}/resolve/${encodeURIComponent(ref.revision)}/${path}`;
}

/** The message for a Hub that cannot be reached at all (DNS, refused, offline...). */
export function unreachableMessage(endpoint: string, cause: unknown): string {
  const why = (cause as { cause?: { code?: string; message?: string } })?.cause;
  const detail = why?.code ?? why?.message ?? (cause as Error)?.message ?? String(cause);
  return `cannot reach the Hugging Face Hub at ${endpoint} (${detail}); check your network, set HF_ENDPOINT, or pass a local folder with --model <dir>`;
}

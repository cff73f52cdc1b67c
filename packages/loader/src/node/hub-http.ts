/**
 * Node-only: the Hub's HTTP protocol as huggingface_hub speaks it. A HEAD on
 * `{endpoint}/{repo}/resolve/{revision}/{file}` (redirects not followed) gives the commit (X-Repo-Commit),
 * the blob id (X-Linked-Etag for LFS files = sha256, else ETag = git blob sha1) and the size
 * (X-Linked-Size, else Content-Length). A GET on the same URL (redirects followed, to a CDN for LFS) gives the bytes.
 */
import { HubError, ModelNotFoundError } from '../errors.js';
import { resolveUrl, unreachableMessage, type HubRef } from '../hub/hub-spec.js';

/** What a HEAD says about one file. */
export interface FileMetadata { commit: string; etag: string; size: number; url: string }

/** Settings for requests. */
export interface HubRequestContext {
  endpoint: string; token?: string; fetch: typeof fetch; signal?: AbortSignal; source: string;
  /** Waits before re-asking after a 5xx/429 answer to a HEAD (default 500 ms, then 2 s). */
  headRetryDelaysMs?: number[];
}

/** Thrown (internally) when fetch itself failed: no connection. Turned into HubError or a cache fallback. */
export class HubUnreachableError extends HubError {}

/** Headers for a request to `url`: the token only goes to the endpoint's own origin, never to a CDN. */
export function requestHeaders(ctx: HubRequestContext, url: string, extra: Record<string, string> = {}): Record<string, string> {
  const headers: Record<string, string> = { 'user-agent': 'qwen2-ts', ...extra };
  if (ctx.token && new URL(url).origin === new URL(ctx.endpoint).origin) headers.authorization = `Bearer ${ctx.token}`;
  return headers;
}

/** Normalizes an ETag as huggingface_hub does: drop the weak marker and the quotes. */
export function normalizeEtag(etag: string | null): string | undefined {
  return etag ? etag.replace(/^W\//, '').replace(/^"(.*)"$/, '$1') : undefined;
}

/**
 * Turns a failed Hub response into the error the user should see.
 * @param file - the file requested (for messages)
 */
export function hubResponseError(ctx: HubRequestContext, ref: HubRef, file: string, response: Response): Error {
  const code = response.headers.get('x-error-code');
  const where = `${ref.repoId}@${ref.revision}`;
  const status = response.status;
  if (code === 'RepoNotFound') {
    const auth = ctx.token ? '' : ' (if it is private or gated, set HF_TOKEN to a token with access)';
    return new ModelNotFoundError(ctx.source, `repository '${ref.repoId}' not found on ${ctx.endpoint}${auth}`);
  }
  if (code === 'RevisionNotFound') return new ModelNotFoundError(ctx.source, `revision '${ref.revision}' not found in '${ref.repoId}' on ${ctx.endpoint}`);
  if (code === 'EntryNotFound' || status === 404) return new ModelNotFoundError(ctx.source, `file '${file}' not found in ${where} on ${ctx.endpoint}`, file);
  if (status === 401 || status === 403 || code === 'GatedRepo') {
    const fix = ctx.token
      ? 'the token in HF_TOKEN (or --token) was refused or has no access; request access on the model page and check the token'
      : 'this repository is gated or private: accept its terms on the model page and set HF_TOKEN to an access token';
    return new HubError(`${ctx.endpoint} refused access to ${where}/${file} (HTTP ${status}); ${fix}`, status);
  }
  return new HubError(`${ctx.endpoint} answered HTTP ${status} for ${where}/${file}${response.headers.get('x-error-message') ? `: ${response.headers.get('x-error-message')}` : ''}`, status);
}

/** fetch, with "no connection" turned into {@link HubUnreachableError} and aborts passed through. */
export async function hubFetch(ctx: HubRequestContext, url: string, init: RequestInit): Promise<Response> {
  try {
    return await ctx.fetch(url, { ...init, signal: ctx.signal });
  } catch (e) {
    if (ctx.signal?.aborted) throw ctx.signal.reason;
    throw new HubUnreachableError(unreachableMessage(ctx.endpoint, e), undefined, { cause: e });
  }
}

/**
 * HEADs one file. Relative redirects (renamed repos) are followed; an absolute one (to the CDN) is where
 * the LFS metadata lives and ends the walk.
 * @returns the metadata, or undefined when the repo has no such file (404 EntryNotFound)
 * @throws {@link ModelNotFoundError} for a missing repo/revision; {@link HubError} otherwise
 */
export async function headFile(ctx: HubRequestContext, ref: HubRef, file: string): Promise<FileMetadata | undefined> {
  const retryDelaysMs = ctx.headRetryDelaysMs ?? [500, 2000];
  let url = resolveUrl(ctx.endpoint, ref, file);
  for (let hops = 0, tries = 0; ; hops++) {
    const response = await hubFetch(ctx, url, { method: 'HEAD', redirect: 'manual', headers: requestHeaders(ctx, url, { 'accept-encoding': 'identity' }) });
    if ((response.status >= 500 || response.status === 429) && tries < retryDelaysMs.length) {
      // A busy or briefly failing Hub: wait and ask again (no connection at all is not retried: the cache may serve).
      await new Promise((resolve) => setTimeout(resolve, retryDelaysMs[tries++]));
      ctx.signal?.throwIfAborted();
      hops--;
      continue;
    }
    const location = response.headers.get('location');
    if (response.status >= 300 && response.status < 400 && location && !/^[a-z]+:/i.test(location) && hops < 5) {
      url = new URL(location, url).toString();
      continue;
    }
    if (response.status === 404 && response.headers.get('x-error-code') !== 'RepoNotFound' && response.headers.get('x-error-code') !== 'RevisionNotFound') {
      return undefined;
    }
    if (!(response.ok || (response.status >= 300 && response.status < 400))) throw hubResponseError(ctx, ref, file, response);
    const commit = response.headers.get('x-repo-commit');
    const etag = normalizeEtag(response.headers.get('x-linked-etag') ?? response.headers.get('etag'));
    const size = Number(response.headers.get('x-linked-size') ?? response.headers.get('content-length') ?? NaN);
    if (!commit || !etag || !Number.isSafeInteger(size)) {
      throw new HubError(`${ctx.endpoint} sent no X-Repo-Commit, ETag or size for ${ref.repoId}@${ref.revision}/${file} (is HF_ENDPOINT a Hugging Face Hub?)`);
    }
    if (!/^[\w.-]+$/.test(etag)) throw new HubError(`${ctx.endpoint} sent an unusable ETag ${JSON.stringify(etag)} for ${file}`);
    return { commit, etag, size, url: resolveUrl(ctx.endpoint, ref, file) };
  }
}

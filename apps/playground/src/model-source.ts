/** Where the page loads a model from, as typed or picked by the user. */

/** A model source the worker can open (all of it structured-cloneable, so it crosses postMessage). */
export type ModelSource =
  | { kind: 'hub'; id: string }
  | { kind: 'url'; url: string }
  | { kind: 'directory'; handle: FileSystemDirectoryHandle }
  | { kind: 'files'; files: File[]; name: string };

/** The default model: small enough for a browser, Instruct so that it has a chat template. */
export const DEFAULT_MODEL = 'Qwen/Qwen2-0.5B-Instruct';

const HUB_ID = /^[A-Za-z0-9][\w.-]*\/[\w.-]+(@[^\s@]+)?$/;
/** One GGUF file of a Hub repository: `owner/name/file.gguf`, optionally `@revision`. */
const HUB_GGUF = /^[A-Za-z0-9][\w.-]*\/[\w.-]+\/[^@\s]+\.gguf(@[^\s@]+)?$/i;

/** A typed model text that is neither a Hub id nor an http(s) URL. */
export class ModelSourceError extends Error {
  override readonly name = 'ModelSourceError';
}

/**
 * Classifies what the user typed: `owner/name` or `owner/name@revision` is a Hugging Face Hub id (and
 * `owner/name/file.gguf` one GGUF file of a Hub repository), an `http(s)://` address is a folder URL
 * (holding config.json, the safetensors and tokenizer files) or a `.gguf` file's URL.
 * @throws {@link ModelSourceError} for anything else, saying what is accepted
 */
export function parseModelText(text: string): ModelSource {
  const t = text.trim();
  if (t === '') throw new ModelSourceError('enter a Hugging Face model id (like Qwen/Qwen2-0.5B-Instruct) or a URL');
  if (/^https?:\/\//i.test(t)) {
    let url: URL;
    try {
      url = new URL(t);
    } catch {
      throw new ModelSourceError(`"${t}" is not a valid URL`);
    }
    return { kind: 'url', url: url.href.replace(/\/+$/, '') };
  }
  if (HUB_ID.test(t) || HUB_GGUF.test(t)) return { kind: 'hub', id: t };
  throw new ModelSourceError(`"${t}" is neither a Hugging Face model id (owner/name, owner/name@revision, or owner/name/file.gguf) nor an http(s) URL`);
}

/** A short description for the page and the stats line. */
export function describeSource(s: ModelSource): string {
  switch (s.kind) {
    case 'hub':
      return s.id;
    case 'url':
      return s.url;
    case 'directory':
      return `local folder "${s.handle.name}"`;
    case 'files':
      return `local folder "${s.name}" (${s.files.length} files)`;
  }
}

/**
 * Files picked through `<input type=file webkitdirectory>` carry paths like `folder/config.json`; the
 * folder's name is their common first segment.
 */
export function folderNameOf(files: readonly File[]): string {
  const first = files[0]?.webkitRelativePath ?? '';
  const slash = first.indexOf('/');
  return slash > 0 ? first.slice(0, slash) : first || 'folder';
}

/**
 * Opens a GGUF model (one file, or the parts of a split one) from any model folder: configuration and
 * tokenizer from its metadata, tensors through {@link ggufCheckpoint}.
 */
import { GgufError } from '../errors.js';
import { openedModel, type LoadProgress, type OpenedModel } from '../open-folder.js';
import type { ModelFolder, RandomAccessFile } from '../random-access.js';
import { ggufCheckpoint, type GgufPart } from './gguf-checkpoint.js';
import { readGgufHeader, type GgufHeader } from './gguf-header.js';
import { qwen2ConfigFromGguf } from './gguf-qwen2-config.js';
import { tokenizerFilesFromGguf } from './gguf-tokenizer.js';
import { ggufGenerationConfig } from './gguf-sampling.js';

/** llama.cpp's names of the parts of a split model: `<prefix>-00001-of-00003.gguf`. */
const SPLIT_NAME = /^(.*)-(\d{5})-of-(\d{5})\.gguf$/i;

/** Whether a file name (or path, URL, Hub file) names a GGUF file. */
export function isGgufName(name: string): boolean {
  return /\.gguf$/i.test(name);
}

/** The name of the first part of a split GGUF model given any part's name (a whole model's name as it is). */
export function firstGgufPart(file: string): string {
  return ggufPartNames(file)[0]!;
}

/**
 * The file names of all parts of a split GGUF model, given any one part's name, or just the name for
 * a model in one file.
 */
export function ggufPartNames(file: string): string[] {
  const m = SPLIT_NAME.exec(file);
  if (!m) return [file];
  const count = Number(m[3]);
  return Array.from({ length: count }, (_, i) => `${m[1]}-${String(i + 1).padStart(5, '0')}-of-${m[3]}.gguf`);
}

/**
 * Opens the GGUF model `file` of `folder`. A split model (llama.cpp's `gguf-split`: `split.count` in the
 * metadata, parts named `-0000k-of-0000n.gguf`) is opened whole from any part's name; the
 * configuration and tokenizer come from the first part's metadata.
 * @throws {@link GgufError} for a file that is not GGUF or a part that does not belong;
 *   {@link ConfigError} naming the metadata key that is missing or not Qwen2's;
 *   {@link ModelNotFoundError} for a missing file or part
 */
export async function openGgufModel(folder: ModelFolder, file: string, source: string, options: { signal?: AbortSignal; onProgress?: (p: LoadProgress) => void } = {}): Promise<OpenedModel> {
  const { signal, onProgress } = options;
  const handles: RandomAccessFile[] = [];
  try {
    const first = await folder.openFile(file, signal);
    handles.push(first);
    const firstHeader = await readGgufHeader(first, signal);
    const count = firstHeader.metadata.get('split.count');
    const names = count === undefined || count === 1 ? [file] : ggufPartNames(file);
    if (count !== undefined && count !== names.length) {
      throw new GgufError(first.name, `'split.count' is ${String(count)}, but the file name does not say ${String(count)} parts (llama.cpp names them <name>-00001-of-0000${String(count)}.gguf)`);
    }
    const parts: GgufPart[] = [];
    for (const [i, name] of names.entries()) {
      let handle = first, header = firstHeader;
      if (name !== file) {
        handle = await folder.openFile(name, signal);
        handles.push(handle);
        header = await readGgufHeader(handle, signal);
      }
      const no = header.metadata.get('split.no');
      if (names.length > 1 && no !== i) throw new GgufError(handle.name, `'split.no' is ${String(no)}; as part ${i + 1} of ${names.length} it should be ${i}`);
      parts.push({ file: name, handle, header });
    }
    // Configuration and tokenizer from the first part's metadata; tensors from all parts.
    const head = parts[0]!;
    const whole: GgufHeader = { ...head.header, tensors: parts.flatMap((p) => p.header.tensors) };
    const config = qwen2ConfigFromGguf(whole, head.handle.name);
    const tokenizerFiles = tokenizerFilesFromGguf(head.header, head.handle.name);
    const onRead = onProgress && ((p: Omit<LoadProgress, 'phase'>) => onProgress({ ...p, phase: 'read' }));
    const checkpoint = ggufCheckpoint(source, parts, onRead);
    return openedModel(folder, source, config, tokenizerFiles, checkpoint, ggufGenerationConfig(head.header.metadata, config.eosTokenIds, head.handle.name));
  } catch (e) {
    await Promise.allSettled(handles.map((h) => h.close()));
    throw e;
  }
}

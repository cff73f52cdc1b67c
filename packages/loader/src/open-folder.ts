import { openCheckpoint, type Checkpoint } from './checkpoint.js';
import { parseGenerationConfig, parseJsonFile, parseQwen2Config, type GenerationConfig, type Qwen2Config } from './config.js';
import { ModelNotFoundError, SafetensorsError } from './errors.js';
import { dequantizingCheckpoint } from './quantized-checkpoint.js';
import type { ModelFolder } from './random-access.js';
import { openGgufModel } from './gguf/open-gguf.js';

/** Progress of a load: downloads (Hub, browser cache fill) and lazy tensor reads. */
export interface LoadProgress {
  /** File inside the model the bytes belong to. */
  file: string;
  loaded: number; total: number; overallLoaded: number; overallTotal: number;
  phase: 'download' | 'read';
}

/** Raw tokenizer files found in the model folder (text), for `Qwen2Tokenizer.fromFiles`. */
export interface TokenizerFileTexts { tokenizerJson?: string; tokenizerConfigJson?: string; vocabJson?: string; mergesTxt?: string }

/** A model opened from any source: configs and tokenizer files parsed/read, weights readable lazily. */
export interface OpenedModel {
  /** Where it came from, for messages: a path, URL or 'owner/name@rev'. */
  readonly source: string;
  readonly config: Qwen2Config;
  readonly generationConfig?: GenerationConfig;
  /**
   * Raw tokenizer files present in the model (text). A real checkpoint has tokenizerJson or
   * vocabJson+mergesTxt; the fields are left undefined when a file is absent (the random-weight test
   * fixtures ship no tokenizer), and the tokenizer package reports what is missing.
   */
  readonly tokenizerFiles: TokenizerFileTexts;
  readonly checkpoint: Checkpoint;
  /** Closes the checkpoint's files; the model's weights cannot be read afterwards. */
  close(): Promise<void>;
}

/** The tokenizer files a model may carry, by field. */
export const TOKENIZER_FILES = {
  tokenizerJson: 'tokenizer.json',
  tokenizerConfigJson: 'tokenizer_config.json',
  vocabJson: 'vocab.json',
  mergesTxt: 'merges.txt',
} as const;

/**
 * A pre-quantized checkpoint (config.json has a `quantization_config`) reads as dequantized F32 weights;
 * packed tensors without that config are refused, rather than reported later as missing weights.
 */
function withQuantization(checkpoint: Checkpoint, config: Qwen2Config, configFile: string): Checkpoint {
  if (config.quantization) return dequantizingCheckpoint(checkpoint, config.quantization);
  const packed = [...checkpoint.tensors.values()].find((t) => t.name.endsWith('.qweight'));
  if (packed) throw new SafetensorsError(packed.file, `tensor '${packed.name}' is a packed quantized weight, but ${configFile} has no quantization_config saying how to read it`);
  return checkpoint;
}

/** @internal The {@link OpenedModel} of an opened checkpoint: closing it closes the checkpoint, then the folder. */
export function openedModel(folder: ModelFolder, source: string, config: Qwen2Config, tokenizerFiles: TokenizerFileTexts, checkpoint: Checkpoint, generationConfig?: GenerationConfig): OpenedModel {
  const model: OpenedModel = {
    source,
    config,
    tokenizerFiles,
    checkpoint,
    async close() {
      await checkpoint.close();
      await folder.close?.();
    },
  };
  if (generationConfig) (model as { generationConfig?: GenerationConfig }).generationConfig = generationConfig;
  return model;
}

/**
 * Reads configs and tokenizer files of a model folder and opens its checkpoint; with `gguf`, opens that
 * GGUF file of the folder instead (configuration and tokenizer from its metadata).
 * @throws {@link ModelNotFoundError} without config.json or weights; {@link ConfigError}; {@link SafetensorsError}
 *   (also for a pre-quantized checkpoint whose packed tensors do not fit together); {@link GgufError}
 */
export async function openModelFolder(
  folder: ModelFolder,
  source: string,
  options: { signal?: AbortSignal; onProgress?: (p: LoadProgress) => void; gguf?: string } = {},
): Promise<OpenedModel> {
  const { signal, onProgress } = options;
  if (options.gguf !== undefined) return openGgufModel(folder, options.gguf, source, { signal, onProgress });
  const configText = await folder.readText('config.json', signal);
  if (configText === undefined) throw new ModelNotFoundError(source, `${source}: no config.json (is this a model folder?)`, 'config.json');
  const configFile = `${folder.source}/config.json`;
  const config = parseQwen2Config(parseJsonFile(configText, configFile), configFile);
  const generationText = await folder.readText('generation_config.json', signal);
  const generationFile = `${folder.source}/generation_config.json`;
  const generationConfig = generationText === undefined ? undefined : parseGenerationConfig(parseJsonFile(generationText, generationFile), generationFile);
  const tokenizerFiles: TokenizerFileTexts = {};
  for (const [field, file] of Object.entries(TOKENIZER_FILES) as [keyof TokenizerFileTexts, string][]) {
    const text = await folder.readText(file, signal);
    if (text !== undefined) tokenizerFiles[field] = text;
  }
  const onRead = onProgress && ((p: Omit<LoadProgress, 'phase'>) => onProgress({ ...p, phase: 'read' }));
  const opened = await openCheckpoint(folder, { signal, onRead });
  let checkpoint: Checkpoint;
  try {
    checkpoint = withQuantization(opened, config, configFile);
  } catch (e) {
    await opened.close();
    throw e;
  }
  return openedModel(folder, source, config, tokenizerFiles, checkpoint, generationConfig);
}

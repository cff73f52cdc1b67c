/** The sampling flags shared by `generate` and `chat`, mapped to core's GenerateOptions. */
import { readFileSync } from 'node:fs';
import { compileResponseFormat, type GenerateOptions, type JsonSchema, type ResponseFormat } from '@qwen2-ts/core';
import type { Args, FlagSpecs } from './util/args.js';
import { CliError, UsageError } from './util/errors.js';

export const SAMPLING_FLAGS: FlagSpecs = {
  'max-new-tokens': { type: 'string', short: 'n', value: 'N', help: 'stop after N new tokens (default 256)' },
  temperature: { type: 'string', short: 't', value: 'T', help: '0 = greedy (default: the model\'s generation_config)' },
  'top-k': { type: 'string', value: 'K', help: 'keep the K most likely tokens (0 = off)' },
  'top-p': { type: 'string', value: 'P', help: 'nucleus sampling: keep tokens up to probability P (1 = off)' },
  'min-p': { type: 'string', value: 'P', help: 'drop tokens below P x the top probability (0 = off)' },
  'repetition-penalty': { type: 'string', value: 'R', help: 'Hugging Face repetition penalty (1 = off)' },
  seed: { type: 'string', value: 'S', help: 'random seed for reproducible sampling' },
  'ignore-eos': { type: 'boolean', help: 'do not stop at end-of-sequence tokens' },
  'json-object': { type: 'boolean', help: 'constrain the output to one JSON object' },
  'json-schema': { type: 'string', value: 'FILE|JSON', help: 'constrain the output to JSON valid against this schema (a file, or the schema itself)' },
};

/** Builds core's GenerateOptions from the sampling flags; absent flags leave core's defaults. */
export function samplingOptions(args: Args, defaultMaxNewTokens = 256): GenerateOptions {
  const o: GenerateOptions = { maxNewTokens: args.int('max-new-tokens', defaultMaxNewTokens, 1) };
  const temperature = args.number('temperature', 0);
  if (temperature !== undefined) o.temperature = temperature;
  const topK = args.int('top-k', undefined, 0);
  if (topK !== undefined) o.topK = topK;
  const topP = args.number('top-p', 0, 1);
  if (topP !== undefined) o.topP = topP;
  const minP = args.number('min-p', 0, 1);
  if (minP !== undefined) o.minP = minP;
  const rp = args.number('repetition-penalty', Number.MIN_VALUE);
  if (rp !== undefined) o.repetitionPenalty = rp;
  const seed = args.int('seed', undefined, 0);
  if (seed !== undefined) o.seed = seed;
  if (args.flag('ignore-eos')) o.ignoreEos = true;
  const format = responseFormat(args);
  if (format) o.responseFormat = format;
  return o;
}

/** `--json-object` / `--json-schema`, checked before the model loads (a schema we cannot honour fails at once). */
function responseFormat(args: Args): ResponseFormat | undefined {
  const source = args.string('json-schema');
  if (source !== undefined && args.flag('json-object')) throw new UsageError('give either --json-object or --json-schema, not both', args.command);
  if (args.flag('json-object')) return { type: 'json_object' };
  if (source === undefined) return undefined;
  const inline = source.trimStart().startsWith('{');
  let text = source;
  if (!inline) {
    try {
      text = readFileSync(source, 'utf8');
    } catch (e) {
      throw new CliError(`--json-schema: cannot read ${source}: ${(e as Error).message}`);
    }
  }
  let schema: JsonSchema;
  try {
    schema = JSON.parse(text) as JsonSchema;
  } catch (e) {
    throw new CliError(`--json-schema: ${inline ? 'the schema' : source} is not JSON: ${(e as Error).message}`);
  }
  const format: ResponseFormat = { type: 'json_schema', schema };
  try {
    compileResponseFormat(format);
  } catch (e) {
    throw new CliError(`--json-schema: ${(e as Error).message}`);
  }
  return format;
}

/** `qwen2 generate`: one completion, streamed to stdout, or one JSON object with `--json` (a contract command). */
import type { GenerationResult, GenerationStream } from '@qwen2-ts/core';
import { loadModel, MODEL_FLAGS, modelFlags, requireChatTemplate } from '../load-model.js';
import { SAMPLING_FLAGS, samplingOptions } from '../sampling-flags.js';
import { SPECULATIVE_FLAGS, speculativeFlags } from '../speculative-flags.js';
import { CliError, UsageError } from '../util/errors.js';
import { round4 } from '../util/format.js';
import { writeOut } from '../util/output.js';
import { yieldToEventLoop } from '../util/event-loop.js';
import type { Command } from './command.js';

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * The `--json` object of `qwen2 generate` (field names are part of the CLI's contract). With
 * `--logprobs`, a `logprobs` field is added: per new token, its id, log-probability and top tokens; with
 * speculative decoding, a `speculative` field: tokens guessed, accepted, and the passes that checked them.
 */
export function generateJson(result: GenerationResult): string {
  return JSON.stringify({
    ids: result.ids,
    text: result.text,
    prefill_tokens_per_s: round4(result.prefillTokensPerSecond),
    decode_tokens_per_s: round4(result.decodeTokensPerSecond),
    time_to_first_token_ms: round4(result.timeToFirstTokenMs),
    ...(result.logprobs ? {
      logprobs: result.logprobs.map((l) => ({ id: l.tokenId, logprob: l.logprob, top: l.top.map((t) => ({ id: t.tokenId, logprob: t.logprob })) })),
    } : {}),
    ...(result.speculative ? { speculative: result.speculative } : {}),
  });
}

/** Throws a clear error for token ids outside the model's vocabulary. */
export function checkIds(ids: readonly number[], vocabSize: number): void {
  const bad = ids.find((id) => id >= vocabSize);
  if (bad !== undefined) throw new CliError(`token id ${bad} is outside the model's vocabulary (size ${vocabSize})`);
}

export const generateCommand: Command = {
  name: 'generate',
  summary: 'one completion (streamed, or JSON with --json)',
  usage: 'qwen2 generate --model DIR (--prompt TEXT | --ids 1,2,3) [options]',
  description:
    'Generates one completion and streams its text to stdout. With --json, prints one object\n' +
    '{"ids":[new token ids],"text":"...","prefill_tokens_per_s":x,"decode_tokens_per_s":y,"time_to_first_token_ms":z}.\n' +
    'Without --prompt or --ids the prompt is read from standard input. --temperature 0 is greedy. A model\n' +
    'folder without tokenizer files takes --ids and prints the new token ids instead of text.',
  flags: {
    ...MODEL_FLAGS,
    prompt: { type: 'string', short: 'p', value: 'TEXT', help: 'the prompt text' },
    ids: { type: 'string', value: '1,2,3', help: 'the prompt as token ids (no tokenizer needed)' },
    chat: { type: 'boolean', help: 'wrap the prompt in the model\'s chat template as a user message' },
    system: { type: 'string', value: 'TEXT', help: 'system message (with --chat)' },
    ...SAMPLING_FLAGS,
    ...SPECULATIVE_FLAGS,
    json: { type: 'boolean', help: 'print one JSON object instead of streaming text' },
    logprobs: { type: 'string', value: 'N', help: 'with --json: each new token\'s log-probability and the N most likely tokens (0-20)' },
  },
  positionals: 0,
  async run(args, { status }) {
    const flags = modelFlags(args);
    const ids = args.ids('ids');
    let prompt = args.string('prompt');
    const chat = args.flag('chat');
    const system = args.string('system');
    if (ids && prompt !== undefined) throw new UsageError('give either --prompt or --ids, not both', 'generate');
    if (ids && chat) throw new UsageError('--chat needs --prompt (text), not --ids', 'generate');
    if (system !== undefined && !chat) throw new UsageError('--system needs --chat', 'generate');
    if (!ids && prompt === undefined) {
      if (process.stdin.isTTY) throw new UsageError('give --prompt TEXT, --ids 1,2,3, or the prompt on standard input', 'generate');
      prompt = await readStdin();
    }
    const options = samplingOptions(args);
    const speculative = speculativeFlags(args, flags.dtype);
    const json = args.flag('json');
    const logprobs = args.int('logprobs', undefined, 0, 20);
    if (logprobs !== undefined) {
      if (!json) throw new UsageError('--logprobs needs --json', 'generate');
      options.logprobs = logprobs;
    }

    const controller = new AbortController();
    const onSigint = () => controller.abort();
    process.once('SIGINT', onSigint);
    const loaded = await loadModel(flags, status, controller.signal, speculative);
    try {
      const { model } = loaded;
      if (ids) checkIds(ids, model.config.vocabSize);
      const generateOptions = { ...options, signal: controller.signal, ...(loaded.speculative ? { speculative: loaded.speculative } : {}) };
      let stream: GenerationStream;
      if (chat) {
        requireChatTemplate(model, flags.spec, 'drop --chat to complete the prompt as plain text');
        const messages = [...(system !== undefined ? [{ role: 'system' as const, content: system }] : []), { role: 'user' as const, content: prompt! }];
        stream = model.chat(messages, generateOptions);
      } else {
        stream = model.generate(ids ?? prompt!, generateOptions);
      }
      if (json) {
        // Drain the stream (the result resolves when generation ends).
        for await (const chunk of stream) {
          void chunk;
          await yieldToEventLoop(); // lets Ctrl-C (SIGINT) arrive mid-generation
        }
        const result = await stream.result;
        await writeOut(`${generateJson(result)}\n`);
        return result.finishReason === 'abort' ? 130 : 0;
      }
      let last = '';
      for await (const chunk of stream) {
        // Without tokenizer files there is no text to show: the new token ids stream instead.
        const piece = loaded.hasTokenizer ? chunk.text : chunk.tokenId >= 0 ? `${last === '' ? '' : ' '}${chunk.tokenId}` : '';
        if (piece) {
          await writeOut(piece);
          last = piece;
        }
        await yieldToEventLoop();
      }
      const result = await stream.result;
      if (!last.endsWith('\n')) await writeOut('\n');
      return result.finishReason === 'abort' ? 130 : 0;
    } finally {
      process.off('SIGINT', onSigint);
      await loaded.dispose();
    }
  },
};

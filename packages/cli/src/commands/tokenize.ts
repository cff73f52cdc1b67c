/** `qwen2 tokenize`: token ids of text, with the model folder's tokenizer. */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Qwen2Tokenizer } from '@qwen2-ts/tokenizer';
import { loadTokenizer } from '../tokenizer-source.js';
import { CliError, UsageError } from '../util/errors.js';
import { writeOut } from '../util/output.js';
import type { Command } from './command.js';

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Encodes each `{"text": ...}` line of a JSONL file, printing `{"ids": [...]}` lines in order. */
async function tokenizeJsonl(tokenizer: Qwen2Tokenizer, file: string, allowSpecial: boolean): Promise<void> {
  const input = file === '-' ? process.stdin : createReadStream(file, { encoding: 'utf8' });
  const lines = createInterface({ input, crlfDelay: Infinity });
  let lineNo = 0;
  let pending: string[] = [];
  try {
    for await (const line of lines) {
      lineNo++;
      if (line.trim() === '') continue;
      let record: unknown;
      try {
        record = JSON.parse(line);
      } catch {
        throw new CliError(`${file}:${lineNo}: not a JSON line`);
      }
      const text = (record as { text?: unknown } | null)?.text;
      if (typeof text !== 'string') throw new CliError(`${file}:${lineNo}: expected an object with a string "text" field`);
      pending.push(JSON.stringify({ ids: tokenizer.encode(text, { allowSpecial }) }));
      if (pending.length >= 256) {
        await writeOut(`${pending.join('\n')}\n`);
        pending = [];
      }
    }
  } catch (err) {
    // Lines before the bad one are still printed, so a script sees exactly where it stopped.
    if (pending.length > 0) await writeOut(`${pending.join('\n')}\n`);
    if ((err as { code?: string }).code === 'ENOENT') throw new CliError(`${file}: no such file`);
    throw err;
  }
  if (pending.length > 0) await writeOut(`${pending.join('\n')}\n`);
}

export const tokenizeCommand: Command = {
  name: 'tokenize',
  summary: 'token ids of text as JSON',
  usage: 'qwen2 tokenize --model DIR [TEXT] [--jsonl FILE]',
  description:
    'Encodes TEXT (or standard input) with the model\'s tokenizer and prints {"ids":[...]}. With --jsonl FILE\n' +
    '(- for standard input), reads lines {"text": ...} and prints one {"ids":[...]} line per input line, in order.\n' +
    'Special tokens written in the text (<|im_start|>, ...) are recognized unless --no-special.',
  flags: {
    model: { type: 'string', short: 'm', value: 'DIR|owner/name[@rev]', help: 'model folder (or Hub id) whose tokenizer to use' },
    jsonl: { type: 'string', value: 'FILE', help: 'encode each {"text": ...} line of FILE (- = stdin)' },
    special: { type: 'boolean', help: 'recognize special tokens in the text (default; --no-special to disable)' },
  },
  positionals: 1,
  async run(args, { status }) {
    const spec = args.requiredString('model', 'the model folder whose tokenizer to use');
    const jsonl = args.string('jsonl');
    const allowSpecial = args.values.special !== false;
    if (jsonl !== undefined && args.positionals.length > 0) throw new UsageError('give either TEXT or --jsonl FILE, not both', 'tokenize');
    if (jsonl === undefined && args.positionals.length === 0 && process.stdin.isTTY) throw new UsageError('give TEXT, --jsonl FILE, or text on standard input', 'tokenize');
    const tokenizer = await loadTokenizer(spec, status);
    if (jsonl !== undefined) {
      await tokenizeJsonl(tokenizer, jsonl, allowSpecial);
    } else {
      const text = args.positionals[0] ?? (await readStdin());
      await writeOut(`${JSON.stringify({ ids: tokenizer.encode(text, { allowSpecial }) })}\n`);
    }
    return 0;
  },
};

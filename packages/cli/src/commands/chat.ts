/** `qwen2 chat`: an interactive chat in the terminal, streaming answers through the chat template. */
import { createInterface } from 'node:readline';
import type { ChatMessage } from '@qwen2-ts/tokenizer';
import { loadModel, MODEL_FLAGS, modelFlags, requireChatTemplate } from '../load-model.js';
import { SAMPLING_FLAGS, samplingOptions } from '../sampling-flags.js';
import { SPECULATIVE_FLAGS, speculativeFlags } from '../speculative-flags.js';
import { describeError, isAbortError } from '../util/errors.js';
import { yieldToEventLoop } from '../util/event-loop.js';
import type { Command } from './command.js';

const HELP = 'commands: /reset clears the conversation, /exit quits (or Ctrl-D); Ctrl-C stops the current answer';

export const chatCommand: Command = {
  name: 'chat',
  summary: 'interactive chat with streaming output',
  usage: 'qwen2 chat --model DIR|owner/name [--system TEXT] [options]',
  description:
    'An interactive chat: each line you type is a user message; the answer streams as it is generated,\n' +
    'through the model\'s chat template. /reset clears the conversation, /exit (or Ctrl-D) quits, Ctrl-C\n' +
    'stops the current answer without quitting. Without a terminal, reads one message per input line.',
  flags: {
    ...MODEL_FLAGS,
    system: { type: 'string', short: 's', value: 'TEXT', help: 'system message at the start of the conversation' },
    ...SAMPLING_FLAGS,
    ...SPECULATIVE_FLAGS,
    stats: { type: 'boolean', help: 'print tokens/s after each answer (default on a terminal)' },
  },
  positionals: 0,
  async run(args, { status }) {
    const flags = modelFlags(args);
    const options = samplingOptions(args, 1024);
    const speculative = speculativeFlags(args, flags.dtype);
    const system = args.string('system');
    const interactive = process.stdin.isTTY === true && process.stdout.isTTY === true;
    const showStats = args.flag('stats') || (interactive && !args.flag('quiet'));
    const loaded = await loadModel(flags, status, undefined, speculative);
    const { model } = loaded;
    if (loaded.speculative) options.speculative = loaded.speculative;
    try {
      requireChatTemplate(model, flags.spec, 'use qwen2 generate --prompt TEXT for plain completions');
    } catch (err) {
      await loaded.dispose();
      throw err;
    }
    const initial = (): ChatMessage[] => (system !== undefined ? [{ role: 'system', content: system }] : []);
    let messages = initial();

    const rl = createInterface({ input: process.stdin, output: process.stdout, terminal: interactive, prompt: '> ' });
    const prompt = () => {
      if (interactive) rl.prompt();
    };
    let current: AbortController | undefined;
    let lastIdleInterrupt = 0;
    let failures = 0;
    let interrupted = false;
    const onInterrupt = () => {
      if (!interactive) {
        // Piped input is a script: an interrupt ends it (after stopping the answer in progress).
        interrupted = true;
        current?.abort();
        rl.close();
        return;
      }
      if (current) {
        current.abort();
        return;
      }
      // At the prompt, a second Ctrl-C within two seconds quits; the first one only explains how.
      if (Date.now() - lastIdleInterrupt < 2000) {
        rl.close();
        return;
      }
      lastIdleInterrupt = Date.now();
      process.stdout.write('\n(press Ctrl-C again or Ctrl-D to quit)\n');
      rl.write(null, { ctrl: true, name: 'u' }); // clear the half-typed line
      prompt();
    };
    rl.on('SIGINT', onInterrupt);
    process.on('SIGINT', onInterrupt);

    if (interactive) process.stderr.write(`qwen2: chatting with ${flags.spec} on ${model.backend.info.name}; ${HELP}\n`);
    prompt();
    try {
      for await (const line of rl) {
        const text = line.trim();
        if (text === '') {
          prompt();
          continue;
        }
        if (text.startsWith('/')) {
          const [cmd] = text.split(/\s+/);
          if (cmd === '/exit' || cmd === '/quit') break;
          if (cmd === '/reset') {
            messages = initial();
            process.stdout.write('(conversation cleared)\n');
          } else if (cmd === '/help') {
            process.stdout.write(`${HELP}\n`);
          } else {
            process.stdout.write(`unknown command ${cmd}; ${HELP}\n`);
          }
          prompt();
          continue;
        }
        messages.push({ role: 'user', content: line });
        current = new AbortController();
        try {
          const stream = model.chat(messages, { ...options, signal: current.signal });
          for await (const chunk of stream) {
            if (chunk.text) process.stdout.write(chunk.text);
            await yieldToEventLoop(); // lets a Ctrl-C keypress arrive mid-answer
          }
          const result = await stream.result;
          messages.push({ role: 'assistant', content: result.text });
          process.stdout.write(result.finishReason === 'abort' ? '\n[stopped]\n' : '\n');
          if (showStats) {
            const guessed = result.speculative ? `, ${result.speculative.accepted}/${result.speculative.proposed} guesses kept` : '';
            process.stderr.write(`[${result.ids.length} tokens, ${result.decodeTokensPerSecond.toFixed(1)} tokens/s, first token ${result.timeToFirstTokenMs.toFixed(0)} ms${guessed}]\n`);
          }
        } catch (err) {
          if (isAbortError(err)) {
            process.stdout.write('\n[stopped]\n');
            messages.pop();
          } else {
            // The conversation goes on: an error answers this message only (e.g. the context is full).
            messages.pop();
            failures++;
            process.stderr.write(`\nqwen2: ${describeError(err)}${/context/i.test(String((err as Error)?.message)) ? ' (/reset starts a new conversation)' : ''}\n`);
          }
        } finally {
          current = undefined;
        }
        prompt();
      }
    } finally {
      process.off('SIGINT', onInterrupt);
      rl.close();
      await loaded.dispose();
    }
    if (interactive) process.stdout.write('\n');
    if (interrupted) return 130;
    // Piped input is a script: report that some messages got no answer.
    return !interactive && failures > 0 ? 1 : 0;
  },
};

/**
 * The `qwen2` command line: dispatch to sub-commands, help, and the one-line error policy (a clear line
 * on stderr and a non-zero exit code; the stack only with --verbose).
 */
import { readFileSync } from 'node:fs';
import { benchCommand } from './commands/bench.js';
import { chatCommand } from './commands/chat.js';
import type { Command } from './commands/command.js';
import { downloadCommand } from './commands/download.js';
import { generateCommand } from './commands/generate.js';
import { logitsCommand } from './commands/logits.js';
import { serveCommand } from './commands/serve.js';
import { tokenizeCommand } from './commands/tokenize.js';
import { formatHelp, parseCommandArgs } from './util/args.js';
import { describeError, exitCodeOf } from './util/errors.js';
import { StatusOutput } from './util/progress.js';

const COMMANDS: readonly Command[] = [chatCommand, generateCommand, logitsCommand, tokenizeCommand, benchCommand, serveCommand, downloadCommand];

function usage(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length)) + 3;
  return `qwen2 - run Qwen2 / Qwen2.5 models locally

Usage: qwen2 <command> [options]

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(width)}${c.summary}`).join('\n')}

Common options:
  --model DIR|owner/name[@rev]   a local model folder or .gguf file, or a Hugging Face model id
  --backend js|wasm|webgpu|cuda  kernel backend (default: the fastest available)
  --dtype auto|f32|f16|bf16|q8_0|q4_0|q4_k
                                 weight format (auto: the checkpoint's; an AWQ/GPTQ
                                 checkpoint's layers as q4_0 or q8_0; a GGUF file's
                                 Q4_K tensors as q4_k, others by bits)
  --threads N                    CPU threads (wasm backend)
  --verbose                      stack traces on errors
  --help                         help of a command: qwen2 <command> --help

Examples:
  qwen2 chat --model Qwen/Qwen2-0.5B-Instruct
  qwen2 generate --model ./Qwen2-0.5B --prompt "The capital of France is" --temperature 0
  qwen2 serve --model ./Qwen2-0.5B-Instruct --port 8080
`;
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/**
 * Runs the `qwen2` command line and returns the exit code. Errors print one line to stderr (with the
 * stack under `--verbose`); usage errors exit 2, an interrupted command 130, other failures 1.
 * @param argv - the arguments after the program name
 */
export async function runCli(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    const sub = name === 'help' ? COMMANDS.find((c) => c.name === rest[0]) : undefined;
    process.stdout.write(sub ? formatHelp(sub.usage, sub.description, sub.flags) : usage());
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-v') {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  const verbose = argv.includes('--verbose');
  const status = new StatusOutput(process.stderr, !argv.includes('--quiet') && !argv.includes('-q'));
  try {
    const command = COMMANDS.find((c) => c.name === name);
    if (!command) {
      status.always(`qwen2: unknown command '${name}' (see qwen2 --help)\n`);
      return 2;
    }
    const args = parseCommandArgs(command.name, rest, command.flags, command.positionals);
    if (args.flag('help')) {
      process.stdout.write(formatHelp(command.usage, command.description, command.flags));
      return 0;
    }
    return await command.run(args, { status, verbose });
  } catch (err) {
    status.always(`qwen2: ${describeError(err)}\n`);
    if (verbose && err instanceof Error && err.stack) status.always(`${err.stack}\n`);
    return exitCodeOf(err);
  }
}

import { readFileSync } from 'node:fs';

const USAGE = `qwen2 - run Qwen2 / Qwen2.5 models locally

Usage: qwen2 <command> [options]

Commands:
  chat       interactive chat with streaming output
  generate   one completion
  logits     full-vocabulary logits as JSON
  tokenize   token ids as JSON
  bench      prefill / decode speed as JSON
  serve      OpenAI-compatible HTTP server
  download   fill the Hugging Face cache

Options:
  --help       show this help
  --version    show the version
`;

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/**
 * Runs the `qwen2` command line and returns the exit code. Errors print one line to stderr.
 * @param argv - the arguments after the program name
 */
export async function runCli(argv: string[]): Promise<number> {
  const [command] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(USAGE);
    return command === undefined ? 2 : 0;
  }
  if (command === '--version' || command === '-v') {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  process.stderr.write(`qwen2: unknown command '${command}' (see qwen2 --help)\n`);
  return 2;
}

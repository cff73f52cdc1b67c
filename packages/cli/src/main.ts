#!/usr/bin/env node
import { runCli } from './run-cli.js';

// A closed stdout (`qwen2 logits ... | head`) is not an error worth a stack trace.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

const code = await runCli(process.argv.slice(2));
// Exit explicitly once stdout has drained: backend worker threads or a GPU device must not keep a
// finished command alive.
process.stdout.write('', () => process.exit(code));

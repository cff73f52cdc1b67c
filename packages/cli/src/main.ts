#!/usr/bin/env node
import { runCli } from './run-cli.js';

// A closed stdout (`qwen2 logits ... | head`) is not an error worth a stack trace.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

process.exitCode = await runCli(process.argv.slice(2));

/**
 * The `qwen2` command line, usable programmatically.
 * @packageDocumentation
 */
export { runCli } from './run-cli.js';

/** The shape of a `qwen2` sub-command. */
import type { Args, FlagSpecs } from '../util/args.js';
import type { StatusOutput } from '../util/progress.js';

/** What a command gets besides its arguments. */
export interface CommandContext {
  /** Progress bars and notes on stderr. */
  status: StatusOutput;
  verbose: boolean;
}

/** One sub-command: its help and its implementation. */
export interface Command {
  name: string;
  /** One line for the command list. */
  summary: string;
  /** The usage line, e.g. `qwen2 logits --model DIR --ids 1,2,3`. */
  usage: string;
  /** More help text shown under the usage line. */
  description: string;
  flags: FlagSpecs;
  /** Positional arguments accepted. */
  positionals: number;
  /** Runs the command; resolves to the exit code. */
  run(args: Args, context: CommandContext): Promise<number>;
}

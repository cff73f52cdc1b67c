/**
 * Command-line parsing on top of `node:util` parseArgs, with value checks that raise {@link UsageError}
 * naming the flag.
 */
import { parseArgs } from 'node:util';
import { UsageError } from './errors.js';

/** One flag of a command: its type, short alias and help line. */
export interface FlagSpec {
  type: 'string' | 'boolean';
  short?: string;
  multiple?: boolean;
  /** Placeholder shown in help, e.g. `N` or `TEXT`. */
  value?: string;
  help: string;
}

export type FlagSpecs = Record<string, FlagSpec>;

/** Flags every model-loading command accepts. */
export const MODEL_FLAGS: FlagSpecs = {
  model: { type: 'string', short: 'm', value: 'DIR|owner/name[@rev]', help: 'local model folder or .gguf file, Hugging Face model id, or owner/name/file.gguf (one GGUF file of a Hub repository)' },
  backend: { type: 'string', value: 'js|wasm|webgpu|cuda', help: 'kernel backend (default: the fastest available)' },
  dtype: { type: 'string', value: 'auto|f32|f16|bf16|q8_0|q4_0|q4_k', help: 'weight storage (compute accumulates in f32; default auto)' },
  threads: { type: 'string', value: 'N', help: 'CPU threads for the wasm backend' },
  'max-context': { type: 'string', value: 'N', help: 'KV cache capacity in tokens (default: the model\'s, capped by core)' },
  'kv-cache': { type: 'string', value: 'f32|f16', help: 'KV cache storage: f16 takes half the memory and is read twice as fast at long contexts (default f32)' },
  'prefill-precision': { type: 'string', value: 'f32|16-bit', help: 'cuda: prefill GEMMs with f16/bf16 weights and attention on f32 activations (default) or rounded to 16 bits (faster)' },
  'programmatic-launch': { type: 'boolean', help: 'cuda on compute capability 9.0+ (H100, H200): programmatic dependent launch (experimental)' },
};

/** Flags every command accepts. */
export const GLOBAL_FLAGS: FlagSpecs = {
  verbose: { type: 'boolean', help: 'print stack traces and extra diagnostics' },
  quiet: { type: 'boolean', short: 'q', help: 'no progress bars or notes on stderr' },
  help: { type: 'boolean', short: 'h', help: 'show this help' },
};

/** Parsed flags of one command: raw values plus typed accessors that validate. */
export class Args {
  constructor(
    readonly command: string,
    readonly values: Record<string, string | boolean | string[] | undefined>,
    readonly positionals: string[],
  ) {}

  has(name: string): boolean {
    return this.values[name] !== undefined;
  }

  flag(name: string): boolean {
    return this.values[name] === true;
  }

  string(name: string): string | undefined {
    const v = this.values[name];
    return typeof v === 'string' ? v : undefined;
  }

  requiredString(name: string, what = 'a value'): string {
    const v = this.string(name);
    if (v === undefined || v === '') throw new UsageError(`--${name} is required (${what})`, this.command);
    return v;
  }

  /** An integer flag within `[min, max]`, or `fallback` when absent. */
  int(name: string, fallback: number, min?: number, max?: number): number;
  int(name: string, fallback: undefined, min?: number, max?: number): number | undefined;
  int(name: string, fallback: number | undefined, min = 0, max = Number.MAX_SAFE_INTEGER): number | undefined {
    const v = this.string(name);
    if (v === undefined) return fallback;
    const n = Number(v);
    if (!/^-?\d+$/.test(v.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
      throw new UsageError(`--${name} must be an integer${max === Number.MAX_SAFE_INTEGER ? ` >= ${min}` : ` in ${min}..${max}`}, got '${v}'`, this.command);
    }
    return n;
  }

  /** A finite number flag within `[min, max]`, or undefined when absent. */
  number(name: string, min = -Infinity, max = Infinity): number | undefined {
    const v = this.string(name);
    if (v === undefined) return undefined;
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || n < min || n > max) {
      const range = Number.isFinite(max) ? ` in ${min}..${max}` : Number.isFinite(min) ? ` >= ${min}` : '';
      throw new UsageError(`--${name} must be a number${range}, got '${v}'`, this.command);
    }
    return n;
  }

  /** A flag restricted to a list of choices. */
  choice<T extends string>(name: string, choices: readonly T[]): T | undefined {
    const v = this.string(name);
    if (v === undefined) return undefined;
    if (!(choices as readonly string[]).includes(v)) throw new UsageError(`--${name} must be one of ${choices.join(', ')}; got '${v}'`, this.command);
    return v as T;
  }

  /** A comma- (or space-) separated list of non-negative token ids, e.g. `--ids 1,2,3`. */
  ids(name: string): number[] | undefined {
    const v = this.string(name);
    if (v === undefined) return undefined;
    const parts = v.split(/[\s,]+/).filter((p) => p !== '');
    if (parts.length === 0) throw new UsageError(`--${name} needs at least one token id, e.g. --${name} 1,2,3`, this.command);
    return parts.map((p) => {
      const n = Number(p);
      if (!/^\d+$/.test(p) || !Number.isSafeInteger(n)) throw new UsageError(`--${name}: '${p}' is not a token id (non-negative integer)`, this.command);
      return n;
    });
  }
}

/**
 * Parses the arguments of one command.
 * @param command - the command name (for messages)
 * @param argv - arguments after the command name
 * @param specs - the command's flags (global flags are added)
 * @param maxPositionals - how many positional arguments the command takes
 * @throws {@link UsageError} on an unknown flag, a missing value or too many positionals
 */
export function parseCommandArgs(command: string, argv: string[], specs: FlagSpecs, maxPositionals = 0): Args {
  const all = { ...GLOBAL_FLAGS, ...specs };
  const options: Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }> = {};
  for (const [name, s] of Object.entries(all)) {
    options[name] = { type: s.type, ...(s.short ? { short: s.short } : {}), ...(s.multiple ? { multiple: true } : {}) };
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true, allowNegative: true });
  } catch (err) {
    // parseArgs' messages are long and mention internals; keep their first sentence.
    const msg = (err as Error).message.split(/\. (?=To specify)/)[0]!.replace(/^Unknown option/, 'unknown option');
    throw new UsageError(msg, command);
  }
  if (parsed.positionals.length > maxPositionals) {
    throw new UsageError(`unexpected argument '${parsed.positionals[maxPositionals]}'`, command);
  }
  return new Args(command, parsed.values as Record<string, string | boolean | string[] | undefined>, parsed.positionals);
}

/** Renders the help text of a command. */
export function formatHelp(usage: string, summary: string, specs: FlagSpecs, withGlobal = true): string {
  const all = withGlobal ? { ...specs, ...GLOBAL_FLAGS } : specs;
  const rows = Object.entries(all).map(([name, s]) => [`${s.short ? `-${s.short}, ` : '    '}--${name}${s.value ? ` ${s.value}` : ''}`, s.help] as const);
  const width = Math.max(...rows.map(([l]) => l.length)) + 2;
  return `Usage: ${usage}\n\n${summary}\n\nOptions:\n${rows.map(([l, h]) => `  ${l.padEnd(width)}${h}`).join('\n')}\n`;
}

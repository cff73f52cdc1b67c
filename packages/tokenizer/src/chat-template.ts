import { Template } from '@huggingface/jinja';
import { TokenizerError } from './errors.js';

/** One chat message, as chat templates expect it. */
export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | 'tool';
  content: string;
  name?: string;
  tool_calls?: unknown[];
}

const compiled = new Map<string, Template>();

function compile(source: string): Template {
  let template = compiled.get(source);
  if (!template) {
    try {
      template = new Template(source);
    } catch (e) {
      throw new TokenizerError('template', `the chat template does not parse: ${(e as Error).message}`, { cause: e });
    }
    if (compiled.size > 16) compiled.clear();
    compiled.set(source, template);
  }
  return template;
}

/**
 * Renders a Jinja chat template with the variables transformers' `apply_chat_template` provides:
 * `messages`, `add_generation_prompt`, `tools`, the special tokens, `raise_exception` and `strftime_now`.
 * @throws TokenizerError when the template does not parse or raises while rendering.
 */
export function renderChatTemplate(source: string, variables: Record<string, unknown>): string {
  const template = compile(source);
  try {
    return template.render({
      ...variables,
      raise_exception: (message: unknown) => {
        throw new TokenizerError('template', `the chat template raised: ${String(message)}`);
      },
      strftime_now: (format: unknown) => strftime(new Date(), String(format)),
    });
  } catch (e) {
    if (e instanceof TokenizerError) throw e;
    throw new TokenizerError('template', `rendering the chat template failed: ${(e as Error).message}`, { cause: e });
  }
}

const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];
const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];

/** The subset of Python's strftime that chat templates use (dates in system prompts). */
function strftime(d: Date, format: string): string {
  const pad = (n: number) => String(n).padStart(2, '0');
  return format.replace(/%([dmYyBbAaHMS%])/g, (_, f: string) => {
    switch (f) {
      case 'd': return pad(d.getDate());
      case 'm': return pad(d.getMonth() + 1);
      case 'Y': return String(d.getFullYear());
      case 'y': return pad(d.getFullYear() % 100);
      case 'B': return MONTHS[d.getMonth()];
      case 'b': return MONTHS[d.getMonth()].slice(0, 3);
      case 'A': return DAYS[d.getDay()];
      case 'a': return DAYS[d.getDay()].slice(0, 3);
      case 'H': return pad(d.getHours());
      case 'M': return pad(d.getMinutes());
      case 'S': return pad(d.getSeconds());
      default: return '%';
    }
  });
}

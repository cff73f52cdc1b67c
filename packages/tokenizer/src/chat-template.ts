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
 * Renders a Jinja chat template with the variables transformers' `apply_chat_template` provides
 * (`messages`, `add_generation_prompt`, `tools`, the special tokens); `raise_exception` and
 * `strftime_now` are globals of @huggingface/jinja.
 * @throws TokenizerError when the template does not parse or fails (or raises) while rendering.
 */
export function renderChatTemplate(source: string, variables: Record<string, unknown>): string {
  const template = compile(source);
  try {
    return template.render(variables);
  } catch (e) {
    throw new TokenizerError('template', `rendering the chat template failed: ${(e as Error).message}`, { cause: e });
  }
}

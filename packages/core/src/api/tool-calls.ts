// Tool calls in Qwen2.5's (Hermes) format: the model writes
//   <tool_call>
//   {"name": "get_weather", "arguments": {"city": "Paris"}}
//   </tool_call>
// after any text. These helpers parse such blocks out of a reply (whole or streamed), build the grammar
// that forces one call when the caller requires it, and turn OpenAI's assistant messages back into the
// shape the chat templates expect.
import type { ChatMessage } from '@qwen2-ts/tokenizer';
import { compileJsonSchema, compileResponseFormat, JsonSchemaError, literalText, propertyNode, type JsonSchema, type ValueNode } from '../constrain/json-schema.js';
import type { ChatOptions } from './types.js';

/** A tool the model may call, in OpenAI's shape (`parameters` is a JSON Schema of the arguments object). */
export interface ToolDefinition {
  type: 'function';
  function: { name: string; description?: string; parameters?: JsonSchema };
}

/** Whether and which tool to call: OpenAI's `tool_choice`. */
export type ToolChoice = 'none' | 'auto' | 'required' | { type: 'function'; function: { name: string } };

/** One call the model made, in OpenAI's shape (`arguments` is JSON text). */
export interface ToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

const OPEN = '<tool_call>';
const CLOSE = '</tool_call>';

/**
 * Splits a reply into its text and its tool calls. Undefined when the reply has no `<tool_call>` block,
 * or when a block is not a JSON object with a string `name` (the reply is then plain text).
 */
export function parseToolCalls(text: string): { content: string; toolCalls: ToolCall[] } | undefined {
  const start = text.indexOf(OPEN);
  if (start < 0) return undefined;
  const toolCalls: ToolCall[] = [];
  let rest = text.slice(start);
  while (rest.startsWith(OPEN)) {
    const end = rest.indexOf(CLOSE);
    // A last block cut off by the token limit still counts when its JSON is whole.
    const body = (end < 0 ? rest.slice(OPEN.length) : rest.slice(OPEN.length, end)).trim();
    let call: unknown;
    try {
      call = JSON.parse(body);
    } catch {
      return undefined;
    }
    const c = call as { name?: unknown; arguments?: unknown };
    if (typeof c !== 'object' || c === null || typeof c.name !== 'string') return undefined;
    const args = typeof c.arguments === 'string' ? c.arguments : JSON.stringify(c.arguments ?? {});
    toolCalls.push({ id: `call_${randomId()}`, type: 'function', function: { name: c.name, arguments: args } });
    rest = end < 0 ? '' : rest.slice(end + CLOSE.length).trimStart();
  }
  if (rest.trim() !== '') return undefined; // text after the calls: not a tool-call reply
  return { content: text.slice(0, start).trimEnd(), toolCalls };
}

/**
 * Streams a reply's text while holding back what may be tool calls: text before `<tool_call>` passes
 * (a piece that could be the start of the tag waits until it is known not to be), everything from the
 * tag on waits for {@link finish}.
 */
export class ToolCallFilter {
  private pending = '';
  private held = false;
  private all = '';

  /** The text that can be shown now. */
  push(text: string): string {
    this.all += text;
    if (this.held) return '';
    const s = this.pending + text;
    const at = s.indexOf(OPEN);
    if (at >= 0) {
      this.held = true;
      this.pending = '';
      return s.slice(0, at);
    }
    // Keep the longest end of s that is a start of the tag.
    let keep = Math.min(OPEN.length - 1, s.length);
    while (keep > 0 && !OPEN.startsWith(s.slice(s.length - keep))) keep--;
    this.pending = s.slice(s.length - keep);
    return s.slice(0, s.length - keep);
  }

  /** At the end: the calls, and the text not shown yet (all of the held text when it held no calls). */
  finish(): { text: string; toolCalls: ToolCall[] } {
    const parsed = parseToolCalls(this.all);
    if (parsed) return { text: '', toolCalls: parsed.toolCalls };
    // Not calls after all: what was held is text.
    const shown = this.held ? this.all.slice(0, this.all.indexOf(OPEN)) : this.all.slice(0, this.all.length - this.pending.length);
    return { text: this.all.slice(shown.length), toolCalls: [] };
  }
}

/**
 * The grammar of one call of `tools` (or of the one `choice` names), as the model writes it: the tag,
 * `{"name": ..., "arguments": {...}}` with the arguments valid against the tool's `parameters`, the
 * closing tag.
 * @throws JsonSchemaError when a tool's parameters cannot be compiled, or `choice` names no tool
 */
export function toolCallGrammar(tools: readonly ToolDefinition[], choice: ToolChoice = 'required'): ValueNode {
  const chosen = typeof choice === 'object' ? tools.filter((t) => t.function?.name === choice.function?.name) : tools;
  if (chosen.length === 0) {
    throw new JsonSchemaError('tools', typeof choice === 'object' ? `tool_choice names ${JSON.stringify(choice.function?.name)}, which is not among the tools` : 'no tools to call');
  }
  const calls = chosen.map((t, i): ValueNode => {
    if (t?.type !== 'function' || typeof t.function?.name !== 'string') throw new JsonSchemaError(`tools/${i}`, "a tool must be {type: 'function', function: {name, parameters}}");
    const args = compileJsonSchema(t.function.parameters ?? { type: 'object' }, `tools/${i}/function/parameters`);
    return {
      kind: 'object',
      properties: [propertyNode('name', literalText(JSON.stringify(t.function.name)), true), propertyNode('arguments', args, true)],
      additional: null,
    };
  });
  const call = calls.length === 1 ? calls[0]! : { kind: 'union' as const, options: calls };
  return { kind: 'sequence', parts: [literalText(`${OPEN}\n`), call, literalText(`\n${CLOSE}`)] };
}

/**
 * What a chat offers and must write: the tools offered to the template (none when `toolChoice` is
 * 'none' or the list is empty) and the grammar of the reply (one call when the choice requires it,
 * else `responseFormat`'s). Checked before any work, by `chat` and by a server before it streams.
 * @throws RangeError when the choice needs tools there are none of, or is combined with a responseFormat;
 *   JsonSchemaError when a grammar cannot be compiled
 */
export function chatOutput(options: ChatOptions): { tools?: ToolDefinition[]; grammar?: ValueNode } {
  const choice = options.toolChoice ?? 'auto';
  const tools = options.tools && options.tools.length > 0 && choice !== 'none' ? options.tools : undefined;
  if (choice === 'auto' || choice === 'none') {
    const grammar = options.responseFormat === undefined ? undefined : compileResponseFormat(options.responseFormat);
    return { ...(tools ? { tools } : {}), ...(grammar ? { grammar } : {}) };
  }
  if (!tools) throw new RangeError(`toolChoice ${JSON.stringify(choice)} needs tools`);
  if (options.responseFormat && options.responseFormat.type !== 'text') throw new RangeError('a required tool call and a responseFormat cannot be combined');
  return { tools, grammar: toolCallGrammar(tools, choice) };
}

/**
 * OpenAI chat messages as the chat templates expect them: an assistant message's `tool_calls` carry
 * `arguments` as an object (OpenAI sends JSON text), so that the template writes it as JSON rather than
 * as a quoted string.
 */
export function messagesForTemplate(messages: readonly ChatMessage[]): ChatMessage[] {
  return messages.map((m) => {
    if (!Array.isArray(m.tool_calls)) return m;
    const tool_calls = m.tool_calls.map((call) => {
      const fn = (call as { function?: { name?: unknown; arguments?: unknown } }).function;
      if (!fn || typeof fn.arguments !== 'string') return call;
      let args: unknown = fn.arguments;
      try {
        args = JSON.parse(fn.arguments);
      } catch {
        // Not JSON: the template gets the text as it came.
      }
      return { ...(call as object), function: { ...fn, arguments: args } };
    });
    return { ...m, tool_calls };
  });
}

function randomId(): string {
  let id = '';
  for (let i = 0; i < 24; i++) id += 'abcdefghijklmnopqrstuvwxyz0123456789'[Math.floor(Math.random() * 36)];
  return id;
}

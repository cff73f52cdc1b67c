import { describe, expect, it } from 'vitest';
import type { ChatMessage } from './chat-template.js';
import { TokenizerError } from './errors.js';
import { Qwen2Tokenizer } from './tokenizer.js';
import { readFixture, readJsonl } from './test-fixtures.js';

interface TemplateCase {
  name: string;
  messages: ChatMessage[];
  add_generation_prompt: boolean;
  text: string;
  ids: number[];
}

const tokenizerJson = readFixture('tokenizer/tokenizer.json');
const byModel = new Map<string, Qwen2Tokenizer>();
function tokenizerFor(model: string): Qwen2Tokenizer {
  let tok = byModel.get(model);
  if (!tok) {
    tok = Qwen2Tokenizer.fromFiles({ tokenizerJson, tokenizerConfigJson: readFixture(`configs/${model}/tokenizer_config.json`) });
    byModel.set(model, tok);
  }
  return tok;
}

describe('Qwen2-Instruct chat template goldens', () => {
  const cases = readJsonl<TemplateCase>('tokenizer/qwen2_chat_template.jsonl');
  it('has the 10 cases', () => expect(cases.length).toBe(10));
  it.each(cases.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    const tok = tokenizerFor(c.name.split('/')[0]);
    expect(tok.hasChatTemplate).toBe(true);
    const text = tok.applyChatTemplate(c.messages, { addGenerationPrompt: c.add_generation_prompt });
    expect(text).toBe(c.text);
    expect(tok.encode(text)).toEqual(c.ids);
  });

  it('uses <|im_end|> as the Instruct eos', () => {
    expect(tokenizerFor('Qwen2-7B-Instruct').eosTokenId).toBe(151645);
  });
});

// A template in the style of Qwen2.5-Instruct's (no Qwen2.5 tokenizer_config is among the fixtures): a
// default system prompt, a tools section listing each tool as JSON, assistant tool calls and tool
// responses grouped into one user turn.
const TOOLS_TEMPLATE = `{%- if tools %}
{{- '<|im_start|>system\\n' }}
{%- if messages[0]['role'] == 'system' %}{{- messages[0]['content'] }}{%- else %}{{- 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' }}{%- endif %}
{{- "\\n\\n# Tools\\n\\nYou may call one or more functions to assist with the user query.\\n\\nYou are provided with function signatures within <tools></tools> XML tags:\\n<tools>" }}
{%- for tool in tools %}{{- "\\n" }}{{- tool | tojson }}{%- endfor %}
{{- "\\n</tools>\\n\\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\\n<tool_call>\\n{\\"name\\": <function-name>, \\"arguments\\": <args-json-object>}\\n</tool_call><|im_end|>\\n" }}
{%- else %}
{%- if messages[0]['role'] == 'system' %}{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}{%- else %}{{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}{%- endif %}
{%- endif %}
{%- for message in messages %}
{%- if (message.role == "user") or (message.role == "system" and not loop.first) or (message.role == "assistant" and not message.tool_calls) %}
{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}
{%- elif message.role == "assistant" %}
{{- '<|im_start|>' + message.role }}
{%- if message.content %}{{- '\\n' + message.content }}{%- endif %}
{%- for tool_call in message.tool_calls %}
{%- if tool_call.function is defined %}{%- set tool_call = tool_call.function %}{%- endif %}
{{- '\\n<tool_call>\\n{"name": "' }}{{- tool_call.name }}{{- '", "arguments": ' }}{{- tool_call.arguments | tojson }}{{- '}\\n</tool_call>' }}
{%- endfor %}
{{- '<|im_end|>\\n' }}
{%- elif message.role == "tool" %}
{%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != "tool") %}{{- '<|im_start|>user' }}{%- endif %}
{{- '\\n<tool_response>\\n' }}{{- message.content }}{{- '\\n</tool_response>' }}
{%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}{{- '<|im_end|>\\n' }}{%- endif %}
{%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}
`;

describe('chat templates with tools (Qwen2.5 style)', () => {
  const tok = Qwen2Tokenizer.fromFiles({
    tokenizerJson,
    tokenizerConfigJson: JSON.stringify({ chat_template: TOOLS_TEMPLATE, eos_token: '<|im_end|>' }),
  });
  const weather = {
    type: 'function',
    function: {
      name: 'get_weather',
      description: 'Current weather in a city',
      parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
    },
  };

  it('without tools: default system prompt, generation prompt', () => {
    const text = tok.applyChatTemplate([{ role: 'user', content: 'Hi' }], { addGenerationPrompt: true });
    expect(text).toBe(
      '<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n' +
        '<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n',
    );
  });

  it('with tools: tool list as JSON, tool call and tool response turns', () => {
    const messages: ChatMessage[] = [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Weather in Paris?' },
      { role: 'assistant', content: '', tool_calls: [{ type: 'function', function: { name: 'get_weather', arguments: { city: 'Paris' } } }] },
      { role: 'tool', content: '{"temp": 21}' },
      { role: 'tool', content: '{"sky": "clear"}' },
    ];
    const text = tok.applyChatTemplate(messages, { tools: [weather], addGenerationPrompt: true });
    const toolJson = JSON.stringify(weather).replaceAll('":', '": ').replaceAll(',"', ', "');
    expect(text).toBe(
      '<|im_start|>system\nBe brief.\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n' +
        'You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n' +
        toolJson +
        '\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n' +
        '<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n' +
        '<|im_start|>user\nWeather in Paris?<|im_end|>\n' +
        '<|im_start|>assistant\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call><|im_end|>\n' +
        '<|im_start|>user\n<tool_response>\n{"temp": 21}\n</tool_response>\n<tool_response>\n{"sky": "clear"}\n</tool_response><|im_end|>\n' +
        '<|im_start|>assistant\n',
    );
    // Rendered text encodes with the special tokens recognized.
    const ids = tok.encode(text);
    expect(ids[0]).toBe(151644);
    expect(ids.filter((id) => id === 151645).length).toBe(4);
  });

  it('passes tools as none when absent, as transformers does', () => {
    const template = '{% if tools is not none %}with tools{% else %}no tools{% endif %}';
    expect(tok.applyChatTemplate([], { chatTemplate: template })).toBe('no tools');
    expect(tok.applyChatTemplate([], { chatTemplate: template, tools: [weather] })).toBe('with tools');
  });

  it('a chat template passed in options overrides the config one', () => {
    const text = tok.applyChatTemplate([{ role: 'user', content: 'x' }], { chatTemplate: '{{ messages[0].content }}!' });
    expect(text).toBe('x!');
  });
});

describe('chat template errors', () => {
  it('throws TokenizerError when there is no template', () => {
    const tok = Qwen2Tokenizer.fromFiles({ tokenizerJson });
    expect(tok.hasChatTemplate).toBe(false);
    expect(() => tok.applyChatTemplate([{ role: 'user', content: 'x' }])).toThrow(TokenizerError);
  });
  it('surfaces raise_exception as TokenizerError', () => {
    const tok = Qwen2Tokenizer.fromFiles({ tokenizerJson });
    expect(() =>
      tok.applyChatTemplate([{ role: 'user', content: 'x' }], { chatTemplate: "{{ raise_exception('roles must alternate') }}" }),
    ).toThrow(/roles must alternate/);
  });
  it('reports a template that does not parse', () => {
    const tok = Qwen2Tokenizer.fromFiles({ tokenizerJson });
    expect(() => tok.applyChatTemplate([], { chatTemplate: '{% for %}' })).toThrow(TokenizerError);
  });
});

import { describe, expect, it } from 'vitest';
import { Conversation, ConversationError } from './conversation.js';

describe('Conversation', () => {
  it('sends the history with the system prompt and streams a reply into it', () => {
    const c = new Conversation();
    expect(c.send('Hi', 'Be brief.')).toEqual([{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi' }]);
    expect(c.streaming).toBe(true);
    c.append(9707, 'Hello');
    c.append(0, '!');
    c.append(-1, '?'); // text released at the end, no token
    c.finish('stop');
    expect(c.turns[1]).toEqual({ role: 'assistant', content: 'Hello!?', tokenIds: [9707, 0], finishReason: 'stop' });
    expect(c.send('More', '')).toEqual([
      { role: 'user', content: 'Hi' },
      { role: 'assistant', content: 'Hello!?' },
      { role: 'user', content: 'More' },
    ]);
  });
  it('regenerates the last reply from the same history', () => {
    const c = new Conversation();
    c.send('Hi', '');
    c.append(1, 'a');
    c.finish('abort');
    expect(c.regenerate('sys')).toEqual([{ role: 'system', content: 'sys' }, { role: 'user', content: 'Hi' }]);
    expect(c.turns).toHaveLength(2);
    expect(c.turns[1]).toEqual({ role: 'assistant', content: '', tokenIds: [] });
  });
  it('refuses sending or regenerating at the wrong time', () => {
    const c = new Conversation();
    expect(() => c.regenerate('')).toThrow(ConversationError);
    expect(() => c.send('  ', '')).toThrow(/type a message/);
    c.send('Hi', '');
    expect(() => c.send('again', '')).toThrow(/wait for the reply/);
    expect(() => c.regenerate('')).toThrow(/wait for the reply/);
    expect(() => c.clear()).toThrow(ConversationError);
    c.finish('error');
    c.clear();
    expect(c.turns).toEqual([]);
    expect(() => c.append(1, 'x')).toThrow(/no reply is streaming/);
  });
});

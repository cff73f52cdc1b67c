/** The chat's history: what is shown, and what is sent to the model for the next reply. */

/** One turn in the chat log. */
export interface Turn {
  role: 'user' | 'assistant';
  content: string;
  /** Assistant turns: the generated token ids, in order (the test reads them from the page). */
  tokenIds: number[];
  /** Assistant turns: set once the reply ended. */
  finishReason?: 'stop' | 'length' | 'abort' | 'error';
}

/** A message in the shape the tokenizer's chat template takes. */
export interface PromptMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

/** Misuse of the conversation (sending while a reply streams, regenerating with nothing to regenerate). */
export class ConversationError extends Error {
  override readonly name = 'ConversationError';
}

/** Holds the turns of one chat; the page renders from it. */
export class Conversation {
  readonly turns: Turn[] = [];

  /** Whether the last turn is an assistant reply still streaming. */
  get streaming(): boolean {
    const last = this.turns.at(-1);
    return last?.role === 'assistant' && last.finishReason === undefined;
  }

  /**
   * Adds a user message and an empty assistant turn to stream into.
   * @returns the messages to send to the model
   * @throws {@link ConversationError} while a reply is streaming or for an empty message
   */
  send(text: string, systemPrompt: string): PromptMessage[] {
    if (this.streaming) throw new ConversationError('wait for the reply to finish (or stop it) before sending');
    if (text.trim() === '') throw new ConversationError('type a message first');
    this.turns.push({ role: 'user', content: text, tokenIds: [] });
    return this.startReply(systemPrompt);
  }

  /**
   * Drops the last assistant reply and starts a new one for the same history.
   * @throws {@link ConversationError} while streaming or when the chat has no reply yet
   */
  regenerate(systemPrompt: string): PromptMessage[] {
    if (this.streaming) throw new ConversationError('wait for the reply to finish (or stop it) before regenerating');
    if (this.turns.at(-1)?.role !== 'assistant') throw new ConversationError('nothing to regenerate yet');
    this.turns.pop();
    return this.startReply(systemPrompt);
  }

  /**
   * Appends a streamed chunk to the reply in progress. core ends a stream with `tokenId: -1` when it
   * releases held-back text at the end; that chunk adds text but no token.
   */
  append(tokenId: number, text: string): void {
    const reply = this.current();
    if (tokenId >= 0) reply.tokenIds.push(tokenId);
    reply.content += text;
  }

  /** Ends the reply in progress; an errored or aborted reply keeps what streamed so far. */
  finish(reason: NonNullable<Turn['finishReason']>, finalText?: string): void {
    const reply = this.current();
    if (finalText !== undefined) reply.content = finalText;
    reply.finishReason = reason;
  }

  /** Forgets every turn. */
  clear(): void {
    if (this.streaming) throw new ConversationError('stop the reply before clearing the chat');
    this.turns.length = 0;
  }

  private startReply(systemPrompt: string): PromptMessage[] {
    const messages: PromptMessage[] = [];
    // An empty system prompt leaves it to the chat template (Qwen2's adds "You are a helpful assistant.").
    if (systemPrompt.trim() !== '') messages.push({ role: 'system', content: systemPrompt });
    for (const t of this.turns) messages.push({ role: t.role, content: t.content });
    this.turns.push({ role: 'assistant', content: '', tokenIds: [] });
    return messages;
  }

  private current(): Turn {
    if (!this.streaming) throw new ConversationError('no reply is streaming');
    return this.turns.at(-1)!;
  }
}

/**
 * Renders the conversation. Each turn is an `<li class="turn">` with `data-role`; assistant turns carry
 * `data-token-ids` (comma-separated, in order) and, once finished, `data-finish-reason`: test hooks that
 * do not depend on how text is shown.
 */
import type { Turn } from '../conversation.js';
import { el } from './dom.js';

export class ChatView {
  private readonly items: HTMLLIElement[] = [];

  constructor(private readonly list: HTMLOListElement) {}

  /** Brings the list in line with `turns`; only the last turn changes while streaming, so it is cheap. */
  render(turns: readonly Turn[]): void {
    // Follow the reply while the user is at the bottom; leave them alone when they scrolled up to read.
    // Measured before the new text lands: one frame can add more than the margin.
    const atBottom = this.list.scrollHeight - this.list.scrollTop - this.list.clientHeight < 80;
    while (this.items.length > turns.length) this.items.pop()!.remove();
    turns.forEach((turn, i) => {
      let item = this.items[i];
      if (!item) {
        item = el('li', undefined, 'turn');
        this.items.push(item);
        this.list.append(item);
      }
      item.dataset.role = turn.role;
      if (item.textContent !== turn.content) item.textContent = turn.content;
      if (turn.role === 'assistant') item.dataset.tokenIds = turn.tokenIds.join(',');
      if (turn.finishReason) item.dataset.finishReason = turn.finishReason;
      else delete item.dataset.finishReason;
    });
    if (atBottom) this.list.scrollTop = this.list.scrollHeight;
  }
}

import type { Backend, Tensor } from '../backend/types.js';
import { CachedSequence } from '../model/cached-sequence.js';

/** A member's row of a batched pass: the logits of its last token. */
export interface BatchRow {
  /** A one-row view of the pass's logits, valid until the member's next step. */
  logits: Tensor;
  /**
   * The argmax of the row, taken for every row of the pass at once (one device call and one readback
   * per pass rather than one per member).
   */
  argmax(): Promise<number>;
}

/** A generation taking part in batched decoding (see {@link DecodeBatcher}). */
export interface BatchMember {
  /**
   * Feeds `ids` (a decoding step's token, or a prompt) to the member's sequence in the coming batched
   * passes and resolves with its row of the pass that fed the last one. A long prompt is fed a part per
   * pass, beside the others' steps.
   * @param signal - aborts the step while it waits (what was fed stays in the cache); rejects with its reason
   */
  step(ids: readonly number[], signal?: AbortSignal): Promise<BatchRow>;
  /** Leaves the batch (the generation ended); the others stop waiting for this member's steps. */
  leave(): void;
}

interface PendingStep {
  cache: CachedSequence;
  /** Tokens not fed yet. */
  ids: readonly number[];
  resolve: (row: BatchRow) => void;
  reject: (error: unknown) => void;
}

/**
 * Continuous batching: the steps of concurrent generations, each in its own KV cache, run together in
 * passes ({@link CachedSequence.forwardBatch}), so that the weights are read once per pass for all of
 * them rather than once per generation. A pass runs as soon as every member has a step waiting; a
 * generation joins with its first step (its prompt) and leaves when it ends, so the batch widens and
 * narrows between passes.
 *
 * A pass holds at most the model's `maxChunk` tokens: every waiting decoding step's token first, then
 * prompts in the order they came, a prompt too long for what is left continuing in the next passes. So a
 * long prompt is prefilled a chunk per pass while the others keep decoding, one token per pass, in the
 * same passes.
 *
 * Every member must keep stepping or leave: a pass waits for all of them (so a generation in a batch
 * must not wait on anything else between steps, such as a slow reader of its stream).
 */
export class DecodeBatcher {
  private readonly members = new Set<object>();
  private pending: PendingStep[] = [];

  /** @param budget - most tokens in one pass (the model's `maxChunk`) */
  constructor(private readonly backend: Backend, private readonly budget: number) {
    if (!Number.isInteger(budget) || budget < 1) throw new RangeError(`DecodeBatcher: the token budget must be a positive integer, got ${budget}`);
  }

  /** Generations in the batch now. */
  get size(): number {
    return this.members.size;
  }

  /** A member for the generation that decodes in `cache`. */
  join(cache: CachedSequence): BatchMember {
    const member = {};
    let left = false;
    return {
      step: (ids, signal) => {
        if (left) return Promise.reject(new Error('DecodeBatcher: step after leave'));
        if (ids.length === 0) return Promise.reject(new RangeError('DecodeBatcher: a step needs at least one token'));
        if (signal?.aborted) return Promise.reject(signal.reason);
        this.members.add(member);
        return new Promise<BatchRow>((resolve, reject) => {
          const onAbort = (): void => {
            // Out of the coming passes; the member stays until it leaves, so no pass waits on it in vain.
            this.pending = this.pending.filter((s) => s !== step);
            reject(signal!.reason);
          };
          const step: PendingStep = {
            cache,
            ids,
            resolve: (row) => {
              signal?.removeEventListener('abort', onAbort);
              resolve(row);
            },
            reject: (error) => {
              signal?.removeEventListener('abort', onAbort);
              reject(error);
            },
          };
          signal?.addEventListener('abort', onAbort, { once: true });
          this.pending.push(step);
          this.runWhileReady();
        });
      },
      leave: () => {
        if (left) return;
        left = true;
        this.members.delete(member);
        this.runWhileReady();
      },
    };
  }

  /** Runs passes while every member has a step waiting (a prompt's rest keeps its member waiting). */
  private runWhileReady(): void {
    while (this.pending.length > 0 && this.pending.length >= this.members.size) {
      if (!this.runPass()) return;
    }
  }

  /** One pass; false when it failed (its steps are rejected). */
  private runPass(): boolean {
    // Decoding steps (one token) first, then prompts in arrival order, within the budget.
    const order = [...this.pending.filter((s) => s.ids.length === 1), ...this.pending.filter((s) => s.ids.length > 1)];
    let left = this.budget;
    const parts: { step: PendingStep; ids: readonly number[] }[] = [];
    for (const step of order) {
      if (left === 0) break;
      const ids = step.ids.length <= left ? step.ids : step.ids.slice(0, left);
      parts.push({ step, ids });
      left -= ids.length;
    }
    let logits: Tensor;
    try {
      logits = CachedSequence.forwardBatch(parts.map((p) => p.step.cache), parts.map((p) => p.ids));
    } catch (e) {
      // A failed pass may have filled some caches: every step in it fails.
      for (const { step } of parts) step.reject(e);
      this.pending = this.pending.filter((s) => !parts.some((p) => p.step === s));
      return false;
    }
    const done = new Set<PendingStep>();
    // Asked for by the first member that wants it, before the next pass can overwrite the logits.
    let argmax: Promise<Int32Array> | undefined;
    parts.forEach(({ step, ids }, i) => {
      if (ids.length < step.ids.length) {
        step.ids = step.ids.slice(ids.length);
        return;
      }
      done.add(step);
      step.resolve({
        logits: parts.length === 1 ? logits : this.backend.view(logits, i, 1),
        argmax: async () => (await (argmax ??= this.backend.argmax(logits)))[i]!,
      });
    });
    this.pending = this.pending.filter((s) => !done.has(s));
    return true;
  }
}

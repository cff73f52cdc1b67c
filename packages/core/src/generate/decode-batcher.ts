import type { Backend, Tensor } from '../backend/types.js';
import { CachedSequence } from '../model/cached-sequence.js';

/** A generation taking part in batched decoding (see {@link DecodeBatcher}). */
export interface BatchMember {
  /**
   * Feeds `id` to the member's sequence in the next batched pass and resolves with that sequence's
   * logits: a one-row view of the pass's logits, valid until the member's next step.
   */
  step(id: number): Promise<Tensor>;
  /** Leaves the batch (the generation ended); the others stop waiting for this member's steps. */
  leave(): void;
}

interface PendingStep {
  member: object;
  cache: CachedSequence;
  id: number;
  resolve: (logits: Tensor) => void;
  reject: (error: unknown) => void;
}

/**
 * Continuous batching: the decoding steps of concurrent generations, each in its own KV cache, run as
 * one pass per step ({@link CachedSequence.forwardBatch}), so that the weights are read once per step
 * for all of them rather than once per generation. A pass runs as soon as every member has asked for its
 * next step; a generation joins with its first step (after its own prefill) and leaves when it ends, so
 * the batch widens and narrows between passes.
 *
 * Every member must keep stepping or leave: a pass waits for all of them (so a generation in a batch
 * must not wait on anything else between steps, such as a slow reader of its stream).
 */
export class DecodeBatcher {
  private readonly members = new Set<object>();
  private pending: PendingStep[] = [];

  constructor(private readonly backend: Backend) {}

  /** Generations in the batch now. */
  get size(): number {
    return this.members.size;
  }

  /** A member for the generation that decodes in `cache`. */
  join(cache: CachedSequence): BatchMember {
    const member = {};
    let left = false;
    return {
      step: (id) => {
        if (left) return Promise.reject(new Error('DecodeBatcher: step after leave'));
        this.members.add(member);
        return new Promise<Tensor>((resolve, reject) => {
          this.pending.push({ member, cache, id, resolve, reject });
          this.runIfReady();
        });
      },
      leave: () => {
        if (left) return;
        left = true;
        this.members.delete(member);
        this.runIfReady();
      },
    };
  }

  /** Runs the pass once every member has a step waiting. */
  private runIfReady(): void {
    if (this.pending.length === 0 || this.pending.length < this.members.size) return;
    const steps = this.pending;
    this.pending = [];
    let logits: Tensor;
    try {
      logits = CachedSequence.forwardBatch(steps.map((s) => s.cache), steps.map((s) => s.id));
    } catch (e) {
      for (const s of steps) s.reject(e);
      return;
    }
    steps.forEach((s, i) => s.resolve(steps.length === 1 ? logits : this.backend.view(logits, i, 1)));
  }
}

// Speculative decoding's two host-side parts: proposing tokens by prompt lookup, and choosing how many to
// propose. The model checks the proposals in one pass and keeps those its own choice agrees with (see
// Qwen2's generation loop), so neither part can change the output, only how fast it comes.

/**
 * Tokens that followed the latest earlier occurrence of the context's last n-gram (n from `ngram` down
 * to 1; the longest that occurs wins): `max` of them, none when no n-gram recurs. Text that repeats its
 * input (edits, extraction, code, quoting) continues the way it went before. A continuation that runs
 * into the end of the context goes on as a copy of itself (as an LZ77 match may overlap what it copies):
 * a loop of period p found p tokens back is proposed for `max` tokens, not p.
 */
export function promptLookup(context: readonly number[], max: number, ngram: number): number[] {
  const L = context.length;
  for (let n = Math.min(ngram, L - 1); n >= 1; n--) {
    // An occurrence ending at `end` (exclusive) must leave a token after it: end <= L - 1.
    for (let end = L - 1; end >= n; end--) {
      let same = true;
      for (let i = 1; i <= n && same; i++) same = context[end - i] === context[L - i];
      if (!same) continue;
      const period = L - end;
      const out: number[] = [];
      for (let i = 0; i < max; i++) out.push(i < period ? context[end + i]! : out[i - period]!);
      return out;
    }
  }
  return [];
}

/** Weight of the newest observation in the running estimates. */
const EMA = 0.3;
/** How far each plain step moves the acceptance estimate back towards the prior, so that speculation is tried again. */
const FORGET = 0.05;
/**
 * Acceptance assumed before anything is known, and where plain steps lead the estimate back: above what
 * a pass of two tokens on two CPU cores needs to pay (0.68), so that a generation whose first guesses
 * failed still tries again every 30 or so steps (text turns repetitive), for a few percent of its time.
 */
const PRIOR = 0.75;
/** A plan with proposals must promise this much more speed than a plain step to be chosen. */
const MARGIN = 1.05;

/**
 * Chooses how many tokens to propose per step from what it has measured: the chance that a proposed
 * token is accepted (α, a running estimate) and the time of a pass of T tokens and of one proposed
 * token. Proposing k tokens yields 1 + α + ... + α^k tokens per step on average, for one pass of k + 1
 * tokens and k proposals; the k with the most tokens per millisecond wins, 0 (a plain step) unless
 * another is clearly better. A pass of T tokens costs about one of 1 token on a GPU, where weights are
 * read once for all tokens, and about 1.6 + 0.6 (T - 2) of them on two CPU cores, so the same guesses
 * pay on one and not on the other. Pass sizes are tried one larger than the largest measured, so that
 * `k` grows while each size proves itself.
 */
export class SpeculationSchedule {
  private alpha = PRIOR;
  private readonly passMs = new Map<number, number>();
  private proposalMs: number | undefined;

  /** @param maxTokens - most tokens proposed in one step */
  constructor(readonly maxTokens: number) {}

  /** The current estimate of the chance that a proposed token is accepted. */
  get acceptance(): number {
    return this.alpha;
  }

  /** Tokens to propose for the next step (0: a plain step), at most `limit`. */
  next(limit: number): number {
    const plain = this.passMs.get(1);
    if (plain === undefined) return 0; // measure a plain step first
    let largest = 1;
    for (const T of this.passMs.keys()) largest = Math.max(largest, T);
    const top = Math.min(limit, this.maxTokens, largest);
    let best = 0;
    let bestRate = (1 / plain) * MARGIN;
    let expected = 1;
    let term = 1;
    for (let k = 1; k <= top; k++) {
      term *= this.alpha;
      expected += term;
      const rate = expected / (this.costOfPass(k + 1) + k * (this.proposalMs ?? 0));
      if (rate > bestRate) {
        best = k;
        bestRate = rate;
      }
    }
    return best;
  }

  /** A pass of `tokens` tokens took `ms`. */
  recordPass(tokens: number, ms: number): void {
    const old = this.passMs.get(tokens);
    this.passMs.set(tokens, old === undefined ? ms : old + EMA * (ms - old));
    if (tokens === 1) this.alpha += FORGET * (PRIOR - this.alpha);
  }

  /** Proposing `tokens` tokens took `ms`. */
  recordProposal(tokens: number, ms: number): void {
    if (tokens === 0) return;
    const per = ms / tokens;
    this.proposalMs = this.proposalMs === undefined ? per : this.proposalMs + EMA * (per - this.proposalMs);
  }

  /** Of `proposed` tokens, the first `accepted` were accepted (the check stops at the first refused). */
  recordCheck(proposed: number, accepted: number): void {
    if (proposed === 0) return;
    // Each checked token is one observation; the refused one (if any) too.
    const observed = accepted + (accepted < proposed ? 1 : 0);
    const rate = accepted / observed;
    const weight = 1 - (1 - EMA) ** observed;
    this.alpha += weight * (rate - this.alpha);
  }

  /** Measured time of a pass of T tokens, or (not measured yet) the largest measured below it: optimistic, so that it gets tried. */
  private costOfPass(T: number): number {
    for (let t = T; t >= 1; t--) {
      const ms = this.passMs.get(t);
      if (ms !== undefined) return ms;
    }
    return 0;
  }
}

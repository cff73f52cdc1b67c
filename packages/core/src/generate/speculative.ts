// Speculative decoding's two host-side parts: proposing tokens by prompt lookup, and choosing how many to
// propose. The model checks the proposals in one pass and keeps those its own choice agrees with (see
// Qwen2's generation loop), so neither part can change the output, only how fast it comes.

/** What {@link promptLookup} found: the tokens it proposes and the length of the n-gram that matched. */
export interface LookupMatch {
  tokens: number[];
  /** Tokens matched (1 to `ngram`; 0 when nothing recurs). Longer matches are better guesses. */
  matched: number;
}

/**
 * Tokens that followed the latest earlier occurrence of the context's last n-gram (n from `ngram` down
 * to 1; the longest that occurs wins): `max` of them, none when no n-gram recurs. Text that repeats its
 * input (edits, extraction, code, quoting) continues the way it went before. A continuation that runs
 * into the end of the context goes on as a copy of itself (as an LZ77 match may overlap what it copies):
 * a loop of period p found p tokens back is proposed for `max` tokens, not p.
 */
export function promptLookup(context: readonly number[], max: number, ngram: number): LookupMatch {
  const L = context.length;
  for (let n = Math.min(ngram, L - 1); n >= 1; n--) {
    // An occurrence ending at `end` (exclusive) must leave a token after it: end <= L - 1.
    for (let end = L - 1; end >= n; end--) {
      let same = true;
      for (let i = 1; i <= n && same; i++) same = context[end - i] === context[L - i];
      if (!same) continue;
      const period = L - end;
      const tokens: number[] = [];
      for (let i = 0; i < max; i++) tokens.push(i < period ? context[end + i]! : tokens[i - period]!);
      return { tokens, matched: n };
    }
  }
  return { tokens: [], matched: 0 };
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
 * token is accepted (α, a running estimate per kind of guess: the proposer says which, for example
 * prompt lookup's matched n-gram length, since a 3-token match guesses better than a 1-token one) and
 * the time of a pass of T tokens and of one proposed token. Proposing k tokens yields
 * 1 + α + ... + α^k tokens per step on average, for one pass of k + 1 tokens and k proposals; the k with
 * the most tokens per millisecond wins, 0 (a plain step) unless another is clearly better. A pass of T
 * tokens costs about one of 1 token on a GPU, where weights are read once for all tokens, and about
 * 1.6 + 0.6 (T - 2) of them on two CPU cores, so the same guesses pay on one and not on the other. Pass
 * sizes are tried one larger than the largest measured, so that `k` grows while each size proves itself.
 */
export class SpeculationSchedule {
  private readonly alpha = new Map<number, number>();
  private readonly passMs = new Map<number, number>();
  private proposalMs: number | undefined;

  /** @param maxTokens - most tokens proposed in one step */
  constructor(readonly maxTokens: number) {}

  /** The current estimate of the chance that a proposed token of `kind` is accepted. */
  acceptance(kind = 0): number {
    return this.alpha.get(kind) ?? PRIOR;
  }

  /** Tokens to propose for the next step (0: a plain step), at most `limit`, for guesses of `kind`. */
  next(limit: number, kind = 0): number {
    const plain = this.passMs.get(1);
    if (plain === undefined) return 0; // measure a plain step first
    let largest = 1;
    for (const T of this.passMs.keys()) largest = Math.max(largest, T);
    const top = Math.min(limit, this.maxTokens, largest);
    const alpha = this.acceptance(kind);
    let best = 0;
    let bestRate = (1 / plain) * MARGIN;
    let expected = 1;
    let term = 1;
    for (let k = 1; k <= top; k++) {
      term *= alpha;
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
    if (tokens === 1) for (const [kind, a] of this.alpha) this.alpha.set(kind, a + FORGET * (PRIOR - a));
  }

  /** Proposing `tokens` tokens took `ms`. */
  recordProposal(tokens: number, ms: number): void {
    if (tokens === 0) return;
    const per = ms / tokens;
    this.proposalMs = this.proposalMs === undefined ? per : this.proposalMs + EMA * (per - this.proposalMs);
  }

  /** Of `proposed` tokens of `kind`, the first `accepted` were accepted (the check stops at the first refused). */
  recordCheck(proposed: number, accepted: number, kind = 0): void {
    if (proposed === 0) return;
    // Each checked token is one observation; the refused one (if any) too.
    const observed = accepted + (accepted < proposed ? 1 : 0);
    const rate = accepted / observed;
    const weight = 1 - (1 - EMA) ** observed;
    const a = this.acceptance(kind);
    this.alpha.set(kind, a + weight * (rate - a));
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

/** Guesses of one step, and their kind for the schedule's acceptance estimate (0 when the proposer has one kind). */
export interface Guesses {
  tokens: number[];
  kind: number;
}

/**
 * Where guesses come from. A cheap proposer (prompt lookup) proposes first, and the schedule cuts its
 * guesses knowing their kind; a costly one (a draft model) is asked only for as many as the schedule wants.
 */
export interface Proposer {
  /** Proposing costs next to nothing (prompt lookup), so guesses may be made and then cut. */
  cheap: boolean;
  /** At most `max` guesses of the tokens after `context`. */
  propose(context: readonly number[], max: number): Promise<Guesses> | Guesses;
}

/**
 * This step's guesses after `context`, at most `limit`: as many as `schedule` finds worth checking, or
 * with `adapt` false as many as the proposer has up to the schedule's `maxTokens`.
 */
export async function nextGuesses(proposer: Proposer, schedule: SpeculationSchedule, context: readonly number[], limit: number, adapt: boolean): Promise<Guesses> {
  const most = Math.min(limit, schedule.maxTokens);
  if (most <= 0) return { tokens: [], kind: 0 };
  if (!proposer.cheap && adapt) {
    const k = schedule.next(most);
    if (k === 0) return { tokens: [], kind: 0 };
    return timed(proposer, schedule, context, k);
  }
  const guesses = await timed(proposer, schedule, context, most);
  const k = adapt ? schedule.next(guesses.tokens.length, guesses.kind) : guesses.tokens.length;
  return { tokens: guesses.tokens.slice(0, k), kind: guesses.kind };
}

async function timed(proposer: Proposer, schedule: SpeculationSchedule, context: readonly number[], max: number): Promise<Guesses> {
  const t0 = performance.now();
  const guesses = await proposer.propose(context, max);
  schedule.recordProposal(guesses.tokens.length, performance.now() - t0);
  return guesses;
}

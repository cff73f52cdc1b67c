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
/** Weights of a pass time below and above the estimate of its size. */
const FASTER = 0.5;
const SLOWER = 0.1;
/**
 * How far each plain step moves the acceptance estimate back towards the prior, so that speculation is
 * tried again (the text may have turned repetitive). Failed tries cost the extra of a check over a plain
 * step (0.4 of a step for two tokens on two CPU cores): at 0.02, where guesses keep failing, a try comes
 * every 20 or so steps there, a few percent of the time.
 */
const FORGET = 0.02;
/** The share of decoding time that probes (checks of one guess that the estimates advise against) may take. */
const PROBE_SHARE = 0.03;
/**
 * Acceptance assumed before anything is known, and where plain steps lead the estimate back: above what
 * a pass of two tokens on two CPU cores needs to pay (about 0.5), so that guesses are tried.
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
 * 1.4 + 0.5 (T - 2) of them on two CPU cores (q4_0), so the same guesses pay on one and not on the other. Pass
 * sizes are tried one larger than the largest measured, so that `k` grows while each size proves itself.
 */
export class SpeculationSchedule {
  private readonly alpha = new Map<number, number>();
  /** The acceptance estimate over every kind of guess. */
  private pooled = PRIOR;
  /** Time in plain steps since the last check. */
  private plainSinceCheckMs = 0;
  /** Per pass size: its estimated time, and how many passes of it were timed. */
  private readonly passMs = new Map<number, { ms: number; passes: number }>();
  private proposalMs: number | undefined;

  /** @param maxTokens - most tokens proposed in one step */
  constructor(readonly maxTokens: number) {}

  /**
   * The current estimate of the chance that a proposed token of `kind` is accepted; for a kind not seen
   * yet, the estimate over all kinds (so that a new kind of guess starts from how guessing has gone).
   */
  acceptance(kind = 0): number {
    return this.alpha.get(kind) ?? this.pooled;
  }

  /**
   * Tokens to propose for the next step (0: a plain step), at most `limit`, for guesses of `kind`.
   * With `probe`, one guess now and then where the estimates advise none (see below): for cheap guesses
   * only, since a draft model that has not guessed for a while must first catch up on the text.
   */
  next(limit: number, kind = 0, probe = true): number {
    const plain = this.passMs.get(1)?.ms;
    if (plain === undefined) return 0; // time a plain step first
    // Sizes grow one past the largest whose cost is known (two passes timed).
    let largest = 1;
    for (const [T, c] of this.passMs) if (c.passes >= 2) largest = Math.max(largest, T);
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
    // A probe of one guess now and then, within PROBE_SHARE of the time: estimates that say speculation
    // does not pay (guesses refused a while ago, passes slowed by a busy machine) are otherwise never
    // measured again, and the text may have turned repetitive since. A probe costs the check's extra
    // over a plain step, taken as at most half a plain step: an estimate too high must not make the
    // probes that would correct it rare.
    const cost = Math.min(this.costOfPass(2) - plain, plain / 2) + (this.proposalMs ?? 0);
    if (probe && best === 0 && top >= 1 && this.plainSinceCheckMs * PROBE_SHARE >= cost) return 1;
    return best;
  }

  /**
   * A pass of `tokens` tokens took `ms`. A busy machine only ever makes a pass slower, and the first
   * pass of a size is often slow (code and memory warming up): a size's cost counts from its second
   * pass, as the faster of its first two, then follows a faster pass at once and a slower one slowly.
   */
  recordPass(tokens: number, ms: number): void {
    const old = this.passMs.get(tokens);
    if (old === undefined) this.passMs.set(tokens, { ms, passes: 1 });
    else if (old.passes === 1) this.passMs.set(tokens, { ms: Math.min(old.ms, ms), passes: 2 });
    else this.passMs.set(tokens, { ms: old.ms + (ms < old.ms ? FASTER : SLOWER) * (ms - old.ms), passes: old.passes + 1 });
    if (tokens !== 1) {
      this.plainSinceCheckMs = 0;
      return;
    }
    this.plainSinceCheckMs += ms;
    for (const [kind, a] of this.alpha) this.alpha.set(kind, a + FORGET * (PRIOR - a));
    this.pooled += FORGET * (PRIOR - this.pooled);
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
    this.pooled += weight * (rate - this.pooled);
  }

  /**
   * Estimated time of a pass of T tokens. A size with fewer than two passes timed (plain steps aside) is
   * extrapolated from the two largest sizes below it that have an estimate, at the same cost per token
   * (and at no extra cost from a plain step alone): optimistic enough for a size to be tried, not so
   * optimistic that guesses which rarely pass are checked many at a time.
   */
  private costOfPass(T: number): number {
    const known = (t: number): number | undefined => {
      const c = this.passMs.get(t);
      return c !== undefined && (c.passes >= 2 || t === 1) ? c.ms : undefined;
    };
    let t = T;
    while (t > 1 && known(t) === undefined) t--;
    const at = known(t) ?? 0;
    if (t === T) return at;
    let below = t - 1;
    while (below >= 1 && known(below) === undefined) below--;
    const perToken = below >= 1 ? Math.max(0, (at - known(below)!) / (t - below)) : 0;
    return at + (T - t) * perToken;
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
    const k = schedule.next(most, 0, false);
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

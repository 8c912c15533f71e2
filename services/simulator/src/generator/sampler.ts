/**
 * Seeded randomness for the simulated generator: a small PRNG, the
 * output-length distribution, and the token ids and logprobs of a
 * completion. Everything is a pure function of its seed, so a request with
 * the same `seed`, prompt and choice index always gets the same completion,
 * whatever the load or the timing (vLLM gives the same guarantee for seeded
 * requests on one build and GPU).
 */

/** Token ids below this are reserved: 0 pad, 1 BOS, 2 EOS (see tokenizer.ts). */
export const FIRST_ORDINARY_TOKEN_ID = 3;

/** vLLM clamps -inf logprobs to this before JSON encoding. */
export const MIN_LOGPROB = -9999;

/** mulberry32: tiny, fast, good enough for simulation; not for cryptography. */
export class Prng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** Uniform 32-bit unsigned integer. */
  nextUint32(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    return this.nextUint32() / 4_294_967_296;
  }

  /** Uniform integer in [lo, hi). */
  nextInt(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo));
  }

  /** Standard normal (Box–Muller). */
  normal(): number {
    // 1 - next() is in (0, 1], so the log is finite.
    const u = 1 - this.next();
    const v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** Exponential with mean 1. */
  exponential(): number {
    return -Math.log(1 - this.next());
  }
}

/** Mixes numbers, strings and id lists into one 32-bit seed (FNV-1a + murmur3 finaliser). */
export function deriveSeed(...parts: ReadonlyArray<number | string | readonly number[]>): number {
  let h = 0x811c9dc5;
  const mix = (x: number): void => {
    h ^= x & 0xff;
    h = Math.imul(h, 0x01000193);
    h ^= (x >>> 8) & 0xff;
    h = Math.imul(h, 0x01000193);
    h ^= (x >>> 16) & 0xff;
    h = Math.imul(h, 0x01000193);
    h ^= (x >>> 24) & 0xff;
    h = Math.imul(h, 0x01000193);
  };
  for (const part of parts) {
    if (typeof part === 'number') {
      // Split so that seeds above 2^32 (vLLM accepts int64) still mix in fully.
      mix(part | 0);
      mix(Math.floor(part / 4_294_967_296) | 0);
    } else if (typeof part === 'string') {
      for (let i = 0; i < part.length; i++) mix(part.charCodeAt(i));
    } else {
      mix(part.length);
      for (const id of part) mix(id);
    }
    mix(0x9e3779b9); // separator, so ("ab","c") differs from ("a","bc")
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Options of the output-length distribution. */
export interface OutputLengthOptions {
  medianTokens: number;
  sigma: number;
}

/**
 * A draw from the long-tailed natural length distribution: lognormal with the
 * given median and sigma, rounded, at least 1. The caller clips to max_tokens.
 */
export function sampleNaturalLength(rng: Prng, options: OutputLengthOptions): number {
  const draw = options.medianTokens * Math.exp(options.sigma * rng.normal());
  return Math.max(1, Math.round(draw));
}

/** Why a completion ended, as vLLM reports it. */
export type FinishReason = 'stop' | 'length' | 'abort';

/** Everything a completion will produce, fixed before decoding starts. */
export interface CompletionPlan {
  tokenIds: number[];
  /** Logprob of each sampled token: finite, ≤ 0, ≥ {@link MIN_LOGPROB}. */
  logprobs: number[];
  /** Reason if it runs to the end: `stop` (EOS sampled) or `length` (clipped). */
  finishReason: 'stop' | 'length';
}

/** Inputs of {@link planCompletion}. */
export interface PlanCompletionInput {
  /** Seed of this choice (see {@link deriveSeed}). */
  seed: number;
  maxTokens: number;
  minTokens: number;
  ignoreEos: boolean;
  /** Sampling temperature; 0 is greedy (logprobs near 0). */
  temperature: number;
  vocabSize: number;
  eosTokenId: number;
  outputLength: OutputLengthOptions;
}

/**
 * Plans one completion. A natural length at or past `maxTokens` is clipped
 * (`finish_reason: "length"`); a shorter one ends with the EOS token, which
 * vLLM includes in `token_ids` (`finish_reason: "stop"`).
 */
export function planCompletion(input: PlanCompletionInput): CompletionPlan {
  const rng = new Prng(input.seed);
  const natural = Math.max(input.minTokens, sampleNaturalLength(rng, input.outputLength));
  const clipped = input.ignoreEos || natural >= input.maxTokens;
  const length = clipped ? input.maxTokens : natural;
  // Higher temperature spreads probability mass, so sampled tokens are less likely.
  const scale = input.temperature <= 0 ? 0.02 : Math.min(6, 0.9 * input.temperature);
  const tokenIds: number[] = [];
  const logprobs: number[] = [];
  for (let i = 0; i < length; i++) {
    const isEos = !clipped && i === length - 1;
    let id = input.eosTokenId;
    if (!isEos) {
      do id = rng.nextInt(FIRST_ORDINARY_TOKEN_ID, input.vocabSize);
      while (id === input.eosTokenId);
    }
    tokenIds.push(id);
    logprobs.push(Math.max(MIN_LOGPROB, -scale * rng.exponential()));
  }
  return { tokenIds, logprobs, finishReason: clipped ? 'length' : 'stop' };
}

import { describe, expect, it } from 'vitest';
import { MIN_LOGPROB, Prng, deriveSeed, planCompletion, sampleNaturalLength } from './sampler.js';
import type { PlanCompletionInput } from './sampler.js';
import { decode, encode, renderChat } from './tokenizer.js';

const base: PlanCompletionInput = {
  seed: 1,
  maxTokens: 256,
  minTokens: 0,
  ignoreEos: false,
  temperature: 1,
  vocabSize: 32_000,
  eosTokenId: 2,
  outputLength: { medianTokens: 64, sigma: 0.8 },
};

describe('sampler', () => {
  it('is a pure function of its seed', () => {
    expect(planCompletion(base)).toEqual(planCompletion({ ...base }));
    expect(planCompletion(base)).not.toEqual(planCompletion({ ...base, seed: 2 }));
    expect(deriveSeed('a', 1, [1, 2])).toBe(deriveSeed('a', 1, [1, 2]));
    expect(deriveSeed('ab', 'c')).not.toBe(deriveSeed('a', 'bc'));
    expect(deriveSeed(2 ** 40)).not.toBe(deriveSeed(0));
  });

  it('produces one finite logprob ≤ 0 per token and ends with EOS when it stops', () => {
    for (let seed = 0; seed < 200; seed++) {
      const p = planCompletion({ ...base, seed });
      expect(p.logprobs).toHaveLength(p.tokenIds.length);
      for (const lp of p.logprobs) {
        expect(Number.isFinite(lp)).toBe(true);
        expect(lp).toBeLessThanOrEqual(0);
        expect(lp).toBeGreaterThanOrEqual(MIN_LOGPROB);
      }
      if (p.finishReason === 'stop') {
        expect(p.tokenIds.at(-1)).toBe(2);
        expect(p.tokenIds.length).toBeLessThan(256);
      } else {
        expect(p.tokenIds).toHaveLength(256);
        expect(p.tokenIds).not.toContain(2);
      }
      expect(p.tokenIds.slice(0, -1).every((id) => id >= 3 && id < 32_000)).toBe(true);
    }
  });

  it('clips the long tail to max_tokens with finish_reason "length"', () => {
    const reasons = { stop: 0, length: 0 };
    for (let seed = 0; seed < 500; seed++) reasons[planCompletion({ ...base, seed, maxTokens: 64 }).finishReason]++;
    // median 64 = max_tokens: about half the draws are clipped.
    expect(reasons.length).toBeGreaterThan(175);
    expect(reasons.stop).toBeGreaterThan(175);
  });

  it('honours ignore_eos and min_tokens', () => {
    const p = planCompletion({ ...base, ignoreEos: true, maxTokens: 40 });
    expect(p).toMatchObject({ finishReason: 'length' });
    expect(p.tokenIds).toHaveLength(40);
    for (let seed = 0; seed < 50; seed++) {
      expect(planCompletion({ ...base, seed, minTokens: 200 }).tokenIds.length).toBeGreaterThanOrEqual(200);
    }
  });

  it('draws natural lengths with roughly the configured median and a long tail', () => {
    const rng = new Prng(123);
    const draws = Array.from({ length: 4000 }, () => sampleNaturalLength(rng, { medianTokens: 100, sigma: 0.8 })).sort(
      (a, b) => a - b,
    );
    const median = draws[2000] ?? 0;
    const p99 = draws[3960] ?? 0;
    expect(median).toBeGreaterThan(90);
    expect(median).toBeLessThan(110);
    expect(p99).toBeGreaterThan(4 * median);
  });

  it('gives greedy sampling logprobs close to 0', () => {
    const p = planCompletion({ ...base, temperature: 0, ignoreEos: true, maxTokens: 50 });
    expect(Math.min(...p.logprobs)).toBeGreaterThan(-0.5);
  });
});

describe('simulated tokenizer', () => {
  it('round-trips text and adds BOS on request', () => {
    const ids = encode('héllo\n', { addSpecialTokens: true });
    expect(ids[0]).toBe(1);
    expect(decode(ids)).toBe('héllo\n');
    expect(encode('a', { addSpecialTokens: false })).toEqual([97 + 3]);
  });

  it('renders chat messages through its fixed template', () => {
    const text = renderChat([{ role: 'user', content: 'hi' }], { addGenerationPrompt: true, continueFinalMessage: false });
    expect(text).toBe('<|user|>\nhi\n<|assistant|>\n');
  });
});

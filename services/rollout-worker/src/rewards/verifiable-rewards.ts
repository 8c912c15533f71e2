import type { RewardFunction, RewardInput } from './reward-function.js';

/** 1 when the trimmed completion equals the trimmed answer, else 0. */
export function exactMatchReward(): RewardFunction {
  return {
    name: 'exact_match',
    score: async (input: RewardInput) =>
      input.completions.map((c) => (input.answer !== undefined && c.trim() === input.answer.trim() ? 1 : 0)),
  };
}

/**
 * 1 when the last number in the completion is within `tolerance` of the
 * numeric answer, else 0 ("The answer is 42." scores against "42").
 */
export function numericReward(tolerance: number): RewardFunction {
  return {
    name: 'numeric',
    score: async (input: RewardInput) => {
      const expected = input.answer === undefined ? Number.NaN : Number(input.answer.trim());
      return input.completions.map((c) => {
        const found = lastNumber(c);
        return found !== undefined && Number.isFinite(expected) && Math.abs(found - expected) <= tolerance ? 1 : 0;
      });
    },
  };
}

/** 1 when the completion matches `pattern`, else 0. */
export function regexReward(pattern: string): RewardFunction {
  const re = new RegExp(pattern);
  return {
    name: 'regex',
    score: async (input: RewardInput) => input.completions.map((c) => (re.test(c) ? 1 : 0)),
  };
}

const NUMBER = /-?\d+(?:,\d{3})*(?:\.\d+)?(?:[eE][-+]?\d+)?/g;

/** The last number written in `text`, ignoring thousands separators. */
export function lastNumber(text: string): number | undefined {
  const matches = text.match(NUMBER);
  if (!matches || matches.length === 0) return undefined;
  const value = Number((matches[matches.length - 1] as string).replace(/,/g, ''));
  return Number.isFinite(value) ? value : undefined;
}

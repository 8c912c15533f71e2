import { z } from 'zod';
import { ErrorCode, TandemError } from '@tandem/common';
import { readCapped } from '../read-capped.js';
import type { Reward, RewardFunction, RewardInput } from './reward-function.js';

/**
 * The remote reward protocol: `POST url` with one group,
 * `{"runId", "prompts": [p × G], "completions": [c_1..c_G], "answers": [a × G]}`
 * (the argument shape of TRL reward functions, `reward_func(prompts,
 * completions, **kwargs)`), answered by `{"rewards": [r_1..r_G]}`, each a
 * finite number or `null` for a completion nothing could score.
 * The trainer agent serves the user's Python reward functions this way.
 */
const RemoteRewardResponse = z.object({ rewards: z.array(z.number().finite().nullable()) });

/**
 * Largest reward magnitude accepted. GRPO normalises rewards within a group
 * (mean, standard deviation); beyond this the squares overflow float64 and
 * every advantage of the group becomes NaN.
 */
export const MAX_ABS_REWARD = 1e9;

/** Largest answer read for G completions: 64 KiB plus 64 bytes a reward. */
export function maxRewardResponseBytes(completions: number): number {
  return 64 * 1024 + completions * 64;
}

/** Options of {@link remoteReward}. */
export interface RemoteRewardOptions {
  url: string;
  timeoutMs: number;
  runId: string;
  /** Extra headers (e.g. Authorization); never logged. */
  headers?: Record<string, string>;
  fetch?: typeof fetch;
}

/** A reward function served over HTTP. Errors are UNAVAILABLE (retryable) or INVALID_ARGUMENT. */
export function remoteReward(options: RemoteRewardOptions): RewardFunction {
  const doFetch = options.fetch ?? fetch;
  // A URL may carry credentials (user:password@): messages show it without them.
  const shownUrl = withoutUserinfo(options.url);
  return {
    name: 'remote',
    async score(input: RewardInput, signal?: AbortSignal): Promise<Reward[]> {
      const timeout = AbortSignal.timeout(options.timeoutMs);
      const combined = signal ? AbortSignal.any([signal, timeout]) : timeout;
      let res: Response;
      try {
        res = await doFetch(options.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...options.headers },
          body: JSON.stringify({
            runId: options.runId,
            prompts: input.completions.map(() => input.prompt),
            completions: input.completions,
            answers: input.completions.map(() => input.answer ?? null),
          }),
          signal: combined,
        });
      } catch (err) {
        const what = timeout.aborted ? `timed out after ${options.timeoutMs} ms` : 'could not be reached';
        throw new TandemError(ErrorCode.Unavailable, `reward endpoint ${shownUrl} ${what}`, { cause: err });
      }
      const limit = maxRewardResponseBytes(input.completions.length);
      let text: string;
      try {
        text = await readCapped(
          res,
          limit,
          () => new TandemError(ErrorCode.InvalidArgument, `reward endpoint answer exceeds the limit of ${limit} bytes (64 KiB + 64 bytes per completion)`),
        );
      } catch (err) {
        if (err instanceof TandemError) throw err;
        const what = timeout.aborted ? `timed out after ${options.timeoutMs} ms` : 'broke off its answer';
        throw new TandemError(ErrorCode.Unavailable, `reward endpoint ${shownUrl} ${what}`, { cause: err });
      }
      if (!res.ok) {
        const code = res.status >= 500 || res.status === 429 ? ErrorCode.Unavailable : ErrorCode.InvalidArgument;
        throw new TandemError(code, `reward endpoint answered ${res.status}: ${text.slice(0, 200)}`);
      }
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch {
        throw new TandemError(ErrorCode.InvalidArgument, 'reward endpoint answered with invalid JSON');
      }
      const parsed = RemoteRewardResponse.safeParse(body);
      if (!parsed.success) {
        throw new TandemError(ErrorCode.InvalidArgument, `reward endpoint answer: rewards must be an array of finite numbers or null`);
      }
      if (parsed.data.rewards.length !== input.completions.length) {
        throw new TandemError(
          ErrorCode.InvalidArgument,
          `reward endpoint returned ${parsed.data.rewards.length} rewards for ${input.completions.length} completions`,
        );
      }
      const huge = parsed.data.rewards.findIndex((r) => r !== null && Math.abs(r) > MAX_ABS_REWARD);
      if (huge >= 0) {
        throw new TandemError(
          ErrorCode.InvalidArgument,
          `reward endpoint answer: rewards[${huge}] = ${parsed.data.rewards[huge]} exceeds the limit of ${MAX_ABS_REWARD} in magnitude (MAX_ABS_REWARD)`,
        );
      }
      return parsed.data.rewards;
    },
  };
}

/** `url` without user and password (for messages and logs). */
export function withoutUserinfo(url: string): string {
  try {
    const u = new URL(url);
    if (u.username === '' && u.password === '') return url;
    u.username = '';
    u.password = '';
    return u.toString();
  } catch {
    return url.replace(/\/\/[^/@]*@/, '//');
  }
}

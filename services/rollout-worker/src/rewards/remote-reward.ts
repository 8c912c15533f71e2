import { z } from 'zod';
import { ErrorCode, TandemError } from '@tandem/common';
import type { RewardFunction, RewardInput } from './reward-function.js';

/**
 * The remote reward protocol: `POST url` with one group,
 * `{"runId", "prompts": [p × G], "completions": [c_1..c_G], "answers": [a × G]}`
 * (the argument shape of TRL reward functions, `reward_func(prompts,
 * completions, **kwargs)`), answered by `{"rewards": [r_1..r_G]}`.
 * The trainer agent serves the user's Python reward functions this way.
 */
const RemoteRewardResponse = z.object({ rewards: z.array(z.number().finite()) });

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
  return {
    name: 'remote',
    async score(input: RewardInput, signal?: AbortSignal): Promise<number[]> {
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
        throw new TandemError(ErrorCode.Unavailable, `reward endpoint ${options.url} ${what}`, { cause: err });
      }
      const text = await res.text();
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
        throw new TandemError(ErrorCode.InvalidArgument, `reward endpoint answer: rewards must be an array of finite numbers`);
      }
      if (parsed.data.rewards.length !== input.completions.length) {
        throw new TandemError(
          ErrorCode.InvalidArgument,
          `reward endpoint returned ${parsed.data.rewards.length} rewards for ${input.completions.length} completions`,
        );
      }
      return parsed.data.rewards;
    },
  };
}

import { TandemError } from '@tandem/common';
import type { RunSpec } from '@tandem/run-spec';
import type { RewardFunction } from './reward-function.js';
import { exactMatchReward, numericReward, regexReward } from './verifiable-rewards.js';
import { remoteReward } from './remote-reward.js';

export type { Reward, RewardFunction, RewardInput } from './reward-function.js';
export { exactMatchReward, numericReward, regexReward, lastNumber } from './verifiable-rewards.js';
export { remoteReward } from './remote-reward.js';

/**
 * The reward function a run spec names. `env` supplies the values of a
 * remote reward's `headersFromEnv`; a variable that is not set is an
 * INVALID_ARGUMENT naming the header and the variable (not its value).
 */
export function rewardFor(spec: RunSpec['reward'], runId: string, env: Record<string, string | undefined> = {}): RewardFunction {
  switch (spec.kind) {
    case 'exact_match':
      return exactMatchReward();
    case 'numeric':
      return numericReward(spec.tolerance);
    case 'regex':
      return regexReward(spec.pattern);
    case 'remote':
      return remoteReward({ url: spec.url, timeoutMs: spec.timeoutMs, runId, ...(spec.headersFromEnv ? { headers: headersFrom(spec.headersFromEnv, env) } : {}) });
  }
}

function headersFrom(names: Record<string, string>, env: Record<string, string | undefined>): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [header, variable] of Object.entries(names)) {
    const value = env[variable];
    if (value === undefined || value === '') {
      throw TandemError.invalid('reward', [{ path: `reward.headersFromEnv.${header}`, message: `environment variable ${variable} is not set in the rollout worker` }]);
    }
    headers[header] = value;
  }
  return headers;
}

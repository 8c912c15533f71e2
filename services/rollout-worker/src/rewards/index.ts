import type { RunSpec } from '@tandem/run-spec';
import type { RewardFunction } from './reward-function.js';
import { exactMatchReward, numericReward, regexReward } from './verifiable-rewards.js';
import { remoteReward } from './remote-reward.js';

export type { RewardFunction, RewardInput } from './reward-function.js';
export { exactMatchReward, numericReward, regexReward, lastNumber } from './verifiable-rewards.js';
export { remoteReward } from './remote-reward.js';

/** The reward function a run spec names. */
export function rewardFor(spec: RunSpec['reward'], runId: string): RewardFunction {
  switch (spec.kind) {
    case 'exact_match':
      return exactMatchReward();
    case 'numeric':
      return numericReward(spec.tolerance);
    case 'regex':
      return regexReward(spec.pattern);
    case 'remote':
      return remoteReward({ url: spec.url, timeoutMs: spec.timeoutMs, runId });
  }
}

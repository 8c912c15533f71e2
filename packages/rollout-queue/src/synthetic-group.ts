import { PromptGroup, packFloat32, packInt32 } from '@tandem/protocol';
import { encodePromptGroup, type EncodedGroup } from './prompt-group-codec.js';

/** Options for {@link syntheticGroup}. */
export interface SyntheticGroupOptions {
  groupSize: number;
  tokensPerCompletion: number;
  minPolicyVersion: number;
  maxPolicyVersion?: number;
  targetStep?: number;
  promptId?: string;
}

/**
 * A well-formed finished group with deterministic token ids and logprobs,
 * for tests and benchmarks. The first completion carries the min version
 * and the last the max, so the group's stamps are honest.
 */
export function syntheticGroup(groupId: string, o: SyntheticGroupOptions): PromptGroup {
  const maxV = o.maxPolicyVersion ?? o.minPolicyVersion;
  const ids = new Int32Array(o.tokensPerCompletion);
  const lps = new Float32Array(o.tokensPerCompletion);
  for (let i = 0; i < o.tokensPerCompletion; i++) {
    ids[i] = (i * 7919 + groupId.length) % 151_936;
    lps[i] = -((i % 97) + 1) / 50;
  }
  const tokenIds = packInt32(ids);
  const logprobs = packFloat32(lps);
  return PromptGroup.fromPartial({
    groupId,
    promptId: o.promptId ?? '',
    targetStep: o.targetStep ?? 0,
    minPolicyVersion: o.minPolicyVersion,
    maxPolicyVersion: maxV,
    promptTokenIds: packInt32([1, 2, 3, 4]),
    trajectories: Array.from({ length: o.groupSize }, (_, i) => ({
      tokenIds,
      logprobs,
      reward: i % 2,
      minPolicyVersion: i === o.groupSize - 1 && o.groupSize > 1 ? maxV : o.minPolicyVersion,
      maxPolicyVersion: i === 0 && o.groupSize > 1 ? o.minPolicyVersion : maxV,
      finishReason: 'stop',
      text: '',
    })),
  });
}

/** {@link syntheticGroup}, validated and encoded. */
export function encodedSyntheticGroup(groupId: string, o: SyntheticGroupOptions): EncodedGroup {
  return encodePromptGroup(syntheticGroup(groupId, o), {
    groupSize: o.groupSize,
    maxTokens: Math.max(1, o.tokensPerCompletion),
  });
}

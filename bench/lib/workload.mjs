// The fixed, seeded rollout workload: prompt groups of G completions x T
// tokens with int32 token ids and float32 logprobs. The same content is
// offered to every system: Tandem and raw Redis move it as an encoded
// tandem.v1.PromptGroup (packed bytes), the naive BullMQ baseline as JSON
// with number arrays (what a queue of plain objects carries).
import { PromptGroup } from '@tandem/protocol';
import { seededRandom } from './common.mjs';

/** Distinct group contents cycled through by producers (bounded memory). */
export const CONTENT_POOL = 8;

/**
 * `CONTENT_POOL` group contents from `seed`: per completion, token ids in
 * [0, 151936) and logprobs in (-8, 0], each packed and as number arrays.
 */
export function groupContents({ groupSize, tokensPerCompletion, seed }) {
  const random = seededRandom(seed);
  const pool = [];
  for (let p = 0; p < CONTENT_POOL; p++) {
    const completions = [];
    for (let c = 0; c < groupSize; c++) {
      const ids = new Int32Array(tokensPerCompletion);
      const lps = new Float32Array(tokensPerCompletion);
      for (let i = 0; i < tokensPerCompletion; i++) {
        ids[i] = Math.floor(random() * 151_936);
        lps[i] = -random() * 8;
      }
      completions.push({
        tokenIds: Buffer.from(ids.buffer),
        logprobs: Buffer.from(lps.buffer),
        tokenIdArray: Array.from(ids),
        logprobArray: Array.from(lps),
        reward: Math.round(random()),
      });
    }
    pool.push({ promptTokenIds: Buffer.from(new Int32Array([1, 2, 3, 4, 5, 6, 7, 8]).buffer), completions });
  }
  return pool;
}

/** The PromptGroup message of one group (version stamps honest: one version throughout). */
export function promptGroup(content, { groupId, policyVersion = 0, targetStep = 0 }) {
  return PromptGroup.fromPartial({
    groupId,
    promptId: groupId,
    targetStep,
    minPolicyVersion: policyVersion,
    maxPolicyVersion: policyVersion,
    promptTokenIds: content.promptTokenIds,
    trajectories: content.completions.map((c) => ({
      tokenIds: c.tokenIds,
      logprobs: c.logprobs,
      reward: c.reward,
      minPolicyVersion: policyVersion,
      maxPolicyVersion: policyVersion,
      finishReason: 'length',
      text: '',
    })),
  });
}

/** The same group as a plain JSON-able object (the naive BullMQ payload). */
export function jsonGroup(content, { groupId }) {
  return {
    groupId,
    promptId: groupId,
    targetStep: 0,
    minPolicyVersion: 0,
    maxPolicyVersion: 0,
    promptTokenIds: [1, 2, 3, 4, 5, 6, 7, 8],
    trajectories: content.completions.map((c) => ({
      tokenIds: c.tokenIdArray,
      logprobs: c.logprobArray,
      reward: c.reward,
      minPolicyVersion: 0,
      maxPolicyVersion: 0,
      finishReason: 'length',
      text: '',
    })),
  };
}

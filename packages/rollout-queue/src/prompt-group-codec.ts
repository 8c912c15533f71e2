import { TandemError, type FieldViolation } from '@tandem/common';
import { PromptGroup } from '@tandem/protocol';

/** Limits a finished group is checked against before it is queued. */
export interface GroupLimits {
  /** Completions per group (G). */
  groupSize: number;
  /** Longest allowed completion. */
  maxTokens: number;
}

/** A validated, encoded group ready for {@link RolloutQueue.complete}. */
export interface EncodedGroup {
  groupId: string;
  minPolicyVersion: number;
  maxPolicyVersion: number;
  /** Completion tokens in the group. */
  tokens: number;
  /** The encoded tandem.v1.PromptGroup. */
  payload: Buffer;
}

/**
 * Checks a finished group (G completions, token ids and logprobs of equal
 * length, finite non-positive logprobs, honest version stamps) and encodes
 * it. Throws INVALID_ARGUMENT naming each bad field; nothing malformed ever
 * reaches the queue.
 */
export function encodePromptGroup(group: PromptGroup, limits: GroupLimits): EncodedGroup {
  const violations: FieldViolation[] = [];
  if (!group.groupId) violations.push({ path: 'groupId', message: 'required' });
  if (group.trajectories.length !== limits.groupSize) {
    violations.push({
      path: 'trajectories',
      message: `expected ${limits.groupSize} completions (groupSize), got ${group.trajectories.length}`,
    });
  }
  if (group.promptTokenIds.byteLength % 4 !== 0) {
    violations.push({ path: 'promptTokenIds', message: 'byte length is not a multiple of 4 (packed int32)' });
  }
  let tokens = 0;
  let minV = Number.POSITIVE_INFINITY;
  let maxV = Number.NEGATIVE_INFINITY;
  group.trajectories.forEach((t, i) => {
    const path = `trajectories[${i}]`;
    if (t.tokenIds.byteLength % 4 !== 0) {
      violations.push({ path: `${path}.tokenIds`, message: 'byte length is not a multiple of 4 (packed int32)' });
      return;
    }
    const n = t.tokenIds.byteLength / 4;
    if (n > limits.maxTokens) {
      violations.push({ path: `${path}.tokenIds`, message: `${n} tokens exceed maxTokens ${limits.maxTokens}` });
    }
    if (t.logprobs.byteLength !== t.tokenIds.byteLength) {
      violations.push({
        path: `${path}.logprobs`,
        message: `has ${t.logprobs.byteLength / 4} values for ${n} tokens`,
      });
    } else {
      const view = new DataView(t.logprobs.buffer, t.logprobs.byteOffset, t.logprobs.byteLength);
      for (let j = 0; j < n; j++) {
        const lp = view.getFloat32(j * 4, true);
        if (!(lp <= 0)) {
          violations.push({ path: `${path}.logprobs[${j}]`, message: `logprob ${lp} is not a finite value <= 0` });
          break;
        }
      }
    }
    if (!Number.isFinite(t.reward)) violations.push({ path: `${path}.reward`, message: 'not a finite number' });
    if (!Number.isInteger(t.minPolicyVersion) || !Number.isInteger(t.maxPolicyVersion) || t.minPolicyVersion < 0 || t.minPolicyVersion > t.maxPolicyVersion) {
      violations.push({ path: `${path}.minPolicyVersion`, message: 'versions must be integers with 0 <= min <= max' });
    }
    tokens += n;
    minV = Math.min(minV, t.minPolicyVersion);
    maxV = Math.max(maxV, t.maxPolicyVersion);
  });
  if (group.trajectories.length > 0 && (group.minPolicyVersion !== minV || group.maxPolicyVersion !== maxV)) {
    violations.push({
      path: 'minPolicyVersion',
      message: `group stamps [${group.minPolicyVersion}, ${group.maxPolicyVersion}] differ from its completions' [${minV}, ${maxV}]`,
    });
  }
  if (violations.length > 0) throw TandemError.invalid('prompt group', violations);
  const bytes = PromptGroup.encode(group).finish();
  return {
    groupId: group.groupId,
    minPolicyVersion: group.minPolicyVersion,
    maxPolicyVersion: group.maxPolicyVersion,
    tokens,
    payload: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength),
  };
}

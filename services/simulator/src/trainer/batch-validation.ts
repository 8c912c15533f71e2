import { TandemError, type FieldViolation } from '@tandem/common';
import { PromptGroup } from '@tandem/protocol';

/** What a batch is checked against (from the control plane's `welcome`). */
export interface BatchExpectations {
  step: number;
  /** The staleness bound k. */
  maxTrajectoryAgeSteps: number;
  /** Groups per batch; 0 skips the check. */
  batchGroups: number;
  /** Completions per group (G); 0 only checks that all groups agree. */
  groupSize: number;
}

/** A decoded, checked batch. */
export interface CheckedBatch {
  groups: PromptGroup[];
  /** Completion tokens over all groups. */
  tokens: number;
  /** step − minPolicyVersion of each group. */
  ages: number[];
}

/**
 * Decodes every group of a served batch and checks what a trainer relies
 * on: the batch size, G completions per group, token ids and logprobs of
 * equal length, honest version stamps, and the staleness contract
 * (0 ≤ age ≤ k). A real trainer would refuse such a batch rather than train
 * on it, so a violation is an error naming each bad field.
 */
export function checkBatch(payloads: readonly Uint8Array[], expect: BatchExpectations): CheckedBatch {
  const violations: FieldViolation[] = [];
  const groups: PromptGroup[] = [];
  const ages: number[] = [];
  let tokens = 0;
  if (expect.batchGroups > 0 && payloads.length !== expect.batchGroups) {
    violations.push({ path: 'groups', message: `expected ${expect.batchGroups} groups (batchGroups), got ${payloads.length}` });
  }
  let groupSize = expect.groupSize;
  payloads.forEach((bytes, g) => {
    const path = `groups[${g}]`;
    let group: PromptGroup;
    try {
      group = PromptGroup.decode(bytes);
    } catch (err: unknown) {
      violations.push({ path, message: `not a tandem.v1.PromptGroup: ${(err as Error).message}` });
      return;
    }
    groups.push(group);
    const n = group.trajectories.length;
    if (groupSize === 0 && n > 0) groupSize = n;
    if (n === 0 || n !== groupSize) {
      violations.push({ path: `${path}.trajectories`, message: `expected ${groupSize || '>0'} completions, got ${n}` });
    }
    let minV = Number.POSITIVE_INFINITY;
    group.trajectories.forEach((t, i) => {
      const tpath = `${path}.trajectories[${i}]`;
      if (t.tokenIds.byteLength === 0 || t.tokenIds.byteLength % 4 !== 0) {
        violations.push({ path: `${tpath}.tokenIds`, message: `${t.tokenIds.byteLength} bytes is not a non-empty packed int32 array` });
      }
      if (t.logprobs.byteLength !== t.tokenIds.byteLength) {
        violations.push({
          path: `${tpath}.logprobs`,
          message: `${t.logprobs.byteLength / 4} logprobs for ${t.tokenIds.byteLength / 4} tokens`,
        });
      }
      tokens += Math.floor(t.tokenIds.byteLength / 4);
      minV = Math.min(minV, t.minPolicyVersion);
    });
    if (n > 0 && minV !== group.minPolicyVersion) {
      violations.push({
        path: `${path}.minPolicyVersion`,
        message: `group says ${group.minPolicyVersion}, its completions say ${minV}`,
      });
    }
    const age = expect.step - group.minPolicyVersion;
    ages.push(age);
    if (age < 0 || age > expect.maxTrajectoryAgeSteps) {
      violations.push({
        path: `${path}.minPolicyVersion`,
        message: `age ${age} (step ${expect.step} − version ${group.minPolicyVersion}) is outside [0, ${expect.maxTrajectoryAgeSteps}]`,
      });
    }
  });
  if (violations.length > 0) throw TandemError.invalid(`batch for step ${expect.step}`, violations);
  return { groups, tokens, ages };
}

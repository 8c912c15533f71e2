import type { Condition } from './rlrun-status.js';

/**
 * Sets a condition the metav1 way: `lastTransitionTime` moves only when
 * `status` changes, so "since when" stays true while reasons and messages
 * are refreshed.
 */
export function setCondition(
  conditions: Condition[],
  next: { type: string; status: Condition['status']; reason: string; message: string },
  now: string,
  observedGeneration: number | undefined,
): Condition[] {
  const old = conditions.find((c) => c.type === next.type);
  const updated: Condition = {
    type: next.type,
    status: next.status,
    reason: next.reason,
    message: next.message,
    lastTransitionTime: old && old.status === next.status ? old.lastTransitionTime : now,
    ...(observedGeneration !== undefined ? { observedGeneration } : {}),
  };
  return [...conditions.filter((c) => c.type !== next.type), updated];
}

export function conditionOf(conditions: Condition[] | undefined, type: string): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

/** `status === 'True'`. */
export function isTrue(conditions: Condition[] | undefined, type: string): boolean {
  return conditionOf(conditions, type)?.status === 'True';
}

/** Capped exponential backoff. */
export interface BackoffPolicy {
  initialMs: number;
  maxMs: number;
}

/**
 * Delay before retry `attempt` (0 for the first retry): the ceiling doubles
 * from `initialMs` up to `maxMs`, and the delay is drawn from the upper half
 * of it ("equal jitter"), so trainers restarted together do not reconnect in
 * lockstep yet never retry sooner than half the ceiling.
 */
export function backoffDelayMs(policy: BackoffPolicy, attempt: number, random: () => number): number {
  const exponent = Math.min(Math.max(0, Math.floor(attempt)), 30);
  const ceiling = Math.min(policy.maxMs, policy.initialMs * 2 ** exponent);
  const r = Math.min(Math.max(random(), 0), 1);
  return ceiling / 2 + (ceiling / 2) * r;
}

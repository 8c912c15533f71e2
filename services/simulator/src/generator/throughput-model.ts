import type { ThroughputConfig } from './config.js';

/**
 * The latency model of one simulated vLLM replica under continuous batching.
 * All durations are simulated seconds; the batch engine turns them into
 * clock milliseconds with `timeScale`.
 *
 * Decode: every engine step advances each running sequence by one token, and
 * a step gets slower as the batch grows (more KV cache read per step). With
 * `c` sequences decoding, one sequence makes
 *
 *     perSequence(c) = peak / (1 + (c − 1) / knee)      tokens/s
 *
 * so a lone sequence runs at `peak`, per-sequence speed halves at
 * `c = knee + 1`, and the aggregate `c × perSequence(c)` rises almost
 * linearly at first and saturates at `peak × knee` — the shape measured on
 * real vLLM deployments (memory-bound decode turning compute-bound).
 *
 * Prefill: proportional to prompt length, `promptTokens / prefillTokensPerSecond`,
 * and independent of the batch (chunked prefill hides most of the interference).
 */

/** Decode tokens/s of one sequence when `concurrency` sequences decode together. */
export function perSequenceDecodeTokensPerSecond(concurrency: number, config: ThroughputConfig): number {
  const c = Math.max(1, concurrency);
  return config.peakTokensPerSecondPerSequence / (1 + (c - 1) / config.concurrencyKnee);
}

/** Aggregate decode tokens/s of the replica with `concurrency` sequences decoding. */
export function aggregateDecodeTokensPerSecond(concurrency: number, config: ThroughputConfig): number {
  if (concurrency <= 0) return 0;
  return concurrency * perSequenceDecodeTokensPerSecond(concurrency, config);
}

/** The asymptote of {@link aggregateDecodeTokensPerSecond} as concurrency grows. */
export function saturatedDecodeTokensPerSecond(config: ThroughputConfig): number {
  return config.peakTokensPerSecondPerSequence * config.concurrencyKnee;
}

/** Seconds of prefill for a prompt of `promptTokens`. */
export function prefillSeconds(promptTokens: number, config: ThroughputConfig): number {
  return Math.max(0, promptTokens) / config.prefillTokensPerSecond;
}

/** Seconds to move `bytes` over a link of `bandwidthBytesPerSecond`. */
export function transferSeconds(bytes: number, bandwidthBytesPerSecond: number): number {
  return Math.max(0, bytes) / bandwidthBytesPerSecond;
}

/**
 * Expected seconds for one isolated request (no other load): prefill, then
 * `outputTokens` decode steps at single-sequence speed. Useful for sizing
 * timeouts in demos; the batch engine computes the real figure under load.
 */
export function isolatedRequestSeconds(
  promptTokens: number,
  outputTokens: number,
  config: ThroughputConfig,
): number {
  return prefillSeconds(promptTokens, config) + outputTokens / perSequenceDecodeTokensPerSecond(1, config);
}

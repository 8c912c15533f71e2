/**
 * How long the simulated trainer takes. Pure functions of the batch and the
 * configuration, so a benchmark's trainer side is reproducible: no noise,
 * no dependence on the machine.
 */

/** Train-time parameters (see config.ts for units and defaults). */
export interface CostModel {
  /** Fixed simulated cost of one optimizer step. */
  stepOverheadMs: number;
  /** Simulated train time per 1000 completion tokens. */
  msPerKiloToken: number;
  /** Simulated-to-clock multiplier. */
  timeScale: number;
}

/**
 * Clock milliseconds one optimizer step on `tokens` completion tokens takes:
 * `(stepOverheadMs + tokens / 1000 × msPerKiloToken) × timeScale`.
 */
export function trainTimeMs(model: CostModel, tokens: number): number {
  if (!Number.isFinite(tokens) || tokens < 0) throw new RangeError(`tokens must be a finite number >= 0, got ${tokens}`);
  return (model.stepOverheadMs + (tokens / 1000) * model.msPerKiloToken) * model.timeScale;
}

/** Clock milliseconds a broadcast of `bytes` takes at `bandwidthBytesPerSecond`. */
export function broadcastTimeMs(bytes: number, bandwidthBytesPerSecond: number, timeScale: number): number {
  if (!(bandwidthBytesPerSecond > 0)) throw new RangeError(`bandwidth must be > 0, got ${bandwidthBytesPerSecond}`);
  if (!Number.isFinite(bytes) || bytes < 0) throw new RangeError(`bytes must be a finite number >= 0, got ${bytes}`);
  return (bytes / bandwidthBytesPerSecond) * 1000 * timeScale;
}

import type { RunSpecInput } from '@tandem/run-spec';

/** Knobs of the built-in demo. */
export interface DemoOptions {
  steps: number;
  maxAgeSteps: number;
  generators: number;
  seed: number;
  /** Wall seconds per simulated second. */
  timeScale: number;
}

/**
 * The demo workload: generated arithmetic prompts with a numeric reward,
 * GRPO groups of 8, 16 groups a step, on simulated generators and a
 * simulated trainer whose speeds keep generation and training time of a
 * step comparable (the regime where overlapping them pays most). The
 * generator model is a 7B-class model on one H100-like GPU per replica
 * (continuous batching saturating near 1.9k decode tokens/s); the trainer
 * takes 2 s per step plus 300 ms per 1,000 completion tokens (a 7B
 * policy's forward and backward passes on a few GPUs).
 */
export function demoSpec(o: DemoOptions): RunSpecInput {
  return {
    name: `demo k=${o.maxAgeSteps}`,
    model: { name: 'sim-7b' },
    dataset: { source: 'builtin', name: 'arithmetic', size: 5000, seed: o.seed },
    reward: { kind: 'numeric' },
    algorithm: { groupSize: 8, batchGroups: 16, maxTokens: 384, temperature: 1.0 },
    async: { maxTrajectoryAgeSteps: o.maxAgeSteps, inFlightWeightUpdates: true, weightSync: { timeoutMs: 60_000 } },
    maxSteps: o.steps,
    generator: { replicas: o.generators },
    rolloutWorkers: { replicas: 2, concurrency: 256 },
    failurePolicy: { maxRestarts: 3 },
    simulation: {
      timeScale: o.timeScale,
      seed: o.seed,
      generator: {
        peakTokensPerSecondPerSequence: 60,
        concurrencyKnee: 32,
        medianOutputTokens: 160,
        modelBytes: 2e8,
        bandwidthBytesPerSecond: 10e9,
      },
      trainer: { stepOverheadMs: 2000, msPerKiloToken: 300 },
    },
  };
}

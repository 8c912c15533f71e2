import type { RunSpecInput } from '@tandem/run-spec';

/** How hard the suite pushes: quick for CI, long for a soak. */
export type ChaosMode = 'quick' | 'long';

/** The size of each scenario's run and how many faults it takes. */
export interface ChaosModeSettings {
  /** Optimizer steps of the run. */
  steps: number;
  /** Faults injected per scenario, at seeded moments spread over the run. */
  faults: number;
  /** Limit on one scenario's run, start to end (a limit, not an expectation). */
  runLimitMs: number;
}

/** Quick: one fault in a short run (CI). Long: several faults in a longer run. */
export const CHAOS_MODES: Readonly<Record<ChaosMode, ChaosModeSettings>> = {
  quick: { steps: 12, faults: 1, runLimitMs: 120_000 },
  long: { steps: 40, faults: 4, runLimitMs: 600_000 },
};

/** Generators and rollout workers of every chaos run: several of each, so one can die. */
export const CHAOS_GENERATORS = 3;
export const CHAOS_ROLLOUT_WORKERS = 2;
/** The staleness bound of the chaos runs. */
export const CHAOS_MAX_AGE_STEPS = 1;

/**
 * A small simulated GRPO run (arithmetic prompts, groups of 4, 8 groups a
 * step) on the demo's generator and trainer models, fast enough that a
 * quick scenario takes seconds. `maxRestarts` leaves room for every fault
 * the mode injects into one role, plus one.
 */
export function chaosRunSpec(options: { name: string; steps: number; faults: number; seed: number }): RunSpecInput {
  return {
    name: `chaos ${options.name}`,
    model: { name: 'sim-7b' },
    dataset: { source: 'builtin', name: 'arithmetic', size: 2000, seed: options.seed },
    reward: { kind: 'numeric' },
    algorithm: { groupSize: 4, batchGroups: 8, maxTokens: 192, temperature: 1.0 },
    async: { maxTrajectoryAgeSteps: CHAOS_MAX_AGE_STEPS, inFlightWeightUpdates: true, weightSync: { timeoutMs: 30_000 } },
    maxSteps: options.steps,
    generator: { replicas: CHAOS_GENERATORS },
    rolloutWorkers: { replicas: CHAOS_ROLLOUT_WORKERS, concurrency: 64 },
    failurePolicy: { maxRestarts: options.faults + 1 },
    simulation: {
      timeScale: 0.1,
      seed: options.seed,
      generator: { peakTokensPerSecondPerSequence: 60, concurrencyKnee: 32, medianOutputTokens: 96, modelBytes: 2e8, bandwidthBytesPerSecond: 10e9 },
      trainer: { stepOverheadMs: 2000, msPerKiloToken: 300 },
    },
  };
}

/** Figures of one finished demo run (the `--json` fields). */
export interface RunSummary {
  runId: string;
  simulated: true;
  phase: string;
  maxTrajectoryAgeSteps: number;
  steps: number;
  groupsAdmitted: number;
  groupsTrained: number;
  groupsDroppedStale: number;
  groupsFailed: number;
  groupsCancelled: number;
  tokensTrained: number;
  tokensWasted: number;
  maxAgeObserved: number;
  meanAge: number;
  /** Share of wall time the trainer was not training. */
  trainerIdleRatio: number;
  /** Share of wall time the average generator had nothing running. */
  generatorIdleRatio: number;
  wallSeconds: number;
  /** Mean trainer wait for a batch, per step (in a k = 0 run, the generation phase). */
  meanWaitSecondsPerStep: number;
  /** Mean training time per step. */
  meanTrainSecondsPerStep: number;
  weightSyncs: number;
  weightSyncP50Ms: number;
  weightSyncP99Ms: number;
  generators: number;
  generatorRestarts: number;
  trainerRestarts: number;
}

/** Percentile of `values` (nearest rank); 0 for none. */
export function percentile(values: number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] as number;
}

/**
 * The ideal speedup of overlapping generation and training, from the phase
 * times measured in the synchronous run: (T_gen + T_train) / max(T_gen, T_train).
 */
export function idealSpeedup(sync: RunSummary): number {
  const gen = sync.meanWaitSecondsPerStep;
  const train = sync.meanTrainSecondsPerStep;
  const slower = Math.max(gen, train);
  return slower > 0 ? (gen + train) / slower : 1;
}

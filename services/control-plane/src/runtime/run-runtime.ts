import type { RunRecord } from '@tandem/rollout-queue';

/**
 * What starts and stops a run's workloads: generators, rollout workers and
 * the trainer. `local` runs child processes; `kubernetes` reconciles pods.
 * The control plane calls it and nothing else to create workloads.
 */
export interface RunRuntime {
  readonly name: string;
  /** Starts a run's workloads (idempotent: a running run is left alone). */
  startRun(run: RunRecord): Promise<void>;
  /** Resizes the generator pool of a running run. */
  scaleGenerators(runId: string, replicas: number): Promise<void>;
  /** Stops everything of a run. */
  stopRun(runId: string): Promise<void>;
  /** Stops everything. */
  stop(): Promise<void>;
}

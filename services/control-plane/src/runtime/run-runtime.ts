import type { RunPhase, RunRecord } from '@tandem/rollout-queue';
import type { RunSpec } from '@tandem/run-spec';

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

/** A run as declared outside Redis (kubernetes: an RLRun object), before or besides the control plane's record. */
export interface DeclaredRun {
  id: string;
  spec: RunSpec;
  /** Set when cancellation was requested on the declaration. */
  cancelReason?: string;
  /** What the declaration's status says, when the control plane holds no record (e.g. an invalid spec). */
  phase?: RunPhase;
  message?: string;
  createdAt: string;
}

/**
 * Where runs are declared when the control plane is not their only writer:
 * with the kubernetes runtime, RLRun objects, which `kubectl apply` writes
 * too. The RunManager declares on submit, records cancel and scale on the
 * declaration, and shows declared runs that are not yet accepted (the
 * leader's reconciler accepts them into Redis), so `POST /v1/runs` and
 * `kubectl apply` are the same thing.
 */
export interface RunDeclarations {
  /** Validates a submitted spec; may accept more than the run spec (the RLRun extension fields). */
  parseSpec(input: unknown): RunSpec;
  /** Declares a new run: ALREADY_EXISTS when the id is taken, INVALID_ARGUMENT naming the fields the store refuses. */
  declare(id: string, spec: RunSpec): Promise<void>;
  get(id: string): Promise<DeclaredRun | undefined>;
  list(): Promise<DeclaredRun[]>;
  /** Records a cancellation; NOT_FOUND when the run is not declared. */
  cancel(id: string, reason: string): Promise<void>;
  /** Changes the declared generator replicas; NOT_FOUND when the run is not declared. */
  scale(id: string, generators: number): Promise<void>;
}

import { ErrorCode, TandemError, type Clock, type Logger } from '@tandem/common';
import type { RolloutStore, ServedBatch } from '@tandem/rollout-queue';
import type { ControlPlaneMetrics } from '../metrics/control-plane-metrics.js';

/** What a pull returns to the trainer. */
export type PullResult =
  | { state: 'ready'; batch: ServedBatch }
  | { state: 'not_ready'; droppedStale: number }
  | { state: 'run_ended'; droppedStale: number };

/** Collaborators of the {@link TrainerBroker}. */
export interface TrainerBrokerDeps {
  store: RolloutStore;
  metrics: ControlPlaneMetrics;
  clock: Clock;
  log: Logger;
  /** Cap on a pull's long poll. */
  maxPullWaitMs: number;
  /**
   * Whether an ack publishes the new version to generators at once. True
   * when no weight-sync coordinator drives the run (the trainer's version
   * is then the generators' by definition); the coordinator publishes after
   * each sync otherwise.
   */
  publishOnAck: (runId: string) => boolean;
}

/**
 * Serves batches to the trainer and records acks: the consumption side of
 * the staleness contract, with the age histogram and trainer-wait metrics.
 */
export class TrainerBroker {
  private readonly deps: TrainerBrokerDeps;
  private readonly knownRuns = new Set<string>();
  /** When each run's trainer started its current wait, if it is waiting. */
  private readonly waitingSince = new Map<string, number>();
  private readonly waitedMs = new Map<string, number>();

  constructor(deps: TrainerBrokerDeps) {
    this.deps = deps;
  }

  /** Long-polls for the batch of `step` (at most `waitMs`, capped by config). */
  async pullBatch(runId: string, step: number, waitMs: number, signal?: AbortSignal): Promise<PullResult> {
    checkStep(step);
    await this.assertRun(runId);
    const queue = this.deps.store.forRun(runId);
    const started = this.deps.clock.now();
    this.waitingSince.set(runId, started);
    let attempt;
    try {
      attempt = await queue.serveBatch(step, {
        timeoutMs: Math.min(Math.max(0, waitMs), this.deps.maxPullWaitMs),
        ...(signal ? { signal } : {}),
      });
    } finally {
      this.waitingSince.delete(runId);
      this.waitedMs.set(runId, (this.waitedMs.get(runId) ?? 0) + (this.deps.clock.now() - started));
    }
    const run = runId;
    const waited = (this.deps.clock.now() - started) / 1000;
    if (attempt.kind === 'ended') {
      return { state: 'run_ended', droppedStale: 0 };
    }
    if (attempt.kind === 'not_ready') {
      this.deps.metrics.trainerWait.inc({ run }, waited);
      if (attempt.droppedStale > 0) await this.journalStale(runId, step, attempt.droppedStale);
      return { state: 'not_ready', droppedStale: attempt.droppedStale };
    }
    const batch = attempt.batch;
    this.deps.metrics.trainerWait.inc({ run }, waited);
    if (batch.droppedStale > 0) await this.journalStale(runId, step, batch.droppedStale);
    this.deps.metrics.batchesServed.inc({ run, reserved: String(batch.reserved) });
    if (!batch.reserved) {
      for (const v of batch.minPolicyVersions) this.deps.metrics.trajectoryAge.observe({ run }, step - v);
    }
    this.deps.log.debug({ runId, step, groups: batch.groupIds.length, reserved: batch.reserved }, 'batch served');
    return { state: 'ready', batch };
  }

  /**
   * Seconds the run's trainer has spent waiting in PullBatch, including a
   * wait in progress (a live figure for progress displays; the
   * tandem_trainer_wait_seconds_total counter moves when a pull returns).
   */
  trainerWaitSeconds(runId: string): number {
    const since = this.waitingSince.get(runId);
    const live = since === undefined ? 0 : this.deps.clock.now() - since;
    return ((this.waitedMs.get(runId) ?? 0) + live) / 1000;
  }

  /** Records the batch of `step` as trained. */
  async ackBatch(runId: string, step: number): Promise<{ policyVersion: number; groupsTrained: number; duplicate: boolean }> {
    checkStep(step);
    await this.assertRun(runId);
    const result = await this.deps.store.forRun(runId).ackBatch(step, { publishVersion: this.deps.publishOnAck(runId) });
    this.deps.log.info({ runId, step, groups: result.groupsTrained, duplicate: result.duplicate }, 'batch acked');
    return { policyVersion: result.trainerStep, groupsTrained: result.groupsTrained, duplicate: result.duplicate };
  }

  private async journalStale(runId: string, step: number, dropped: number): Promise<void> {
    await this.deps.store.journal.record(runId, 'Warning', 'StaleDropped', `${dropped} finished group(s) too old for step ${step} were dropped (older than maxTrajectoryAgeSteps)`);
  }

  private async assertRun(runId: string): Promise<void> {
    if (this.knownRuns.has(runId)) return;
    if (!runId) throw TandemError.invalid('request', [{ path: 'runId', message: 'required' }]);
    await this.deps.store.forRun(runId).snapshot(); // NOT_FOUND when there is no such run
    this.knownRuns.add(runId);
  }
}

function checkStep(step: number): void {
  if (!Number.isInteger(step) || step < 0) {
    throw new TandemError(ErrorCode.InvalidArgument, 'invalid request: step: must be a non-negative integer', {
      fieldViolations: [{ path: 'step', message: 'must be a non-negative integer' }],
    });
  }
}

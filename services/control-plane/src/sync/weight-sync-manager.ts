import { ErrorCode, TandemError, type Clock, type Logger } from '@tandem/common';
import { RunRecordStore, TERMINAL_PHASES, type GeneratorRecord, type RolloutStore } from '@tandem/rollout-queue';
import type { WeightsSent } from '@tandem/protocol';
import type { TrainerSessionListener, TrainerSessions } from '../broker/trainer-sessions.js';
import type { ControlPlaneMetrics } from '../metrics/control-plane-metrics.js';
import { vllmAdmin, type VllmAdmin } from './vllm-admin-client.js';
import { WeightSyncCoordinator, type WeightSyncSettings } from './weight-sync-coordinator.js';

/** Collaborators of the {@link WeightSyncManager}. */
export interface WeightSyncManagerDeps {
  store: RolloutStore;
  sessions: TrainerSessions;
  metrics: ControlPlaneMetrics;
  clock: Clock;
  log: Logger;
  keyPrefix: string;
  /** Admin client factory; real HTTP when omitted. */
  admin?: (url: string) => VllmAdmin;
  /** Settings common to all runs (the run spec adds its own). */
  defaults: Pick<WeightSyncSettings, 'transferPort' | 'healthIntervalMs' | 'unhealthyAfterFailures'>;
}

/**
 * One weight-sync coordinator per run that has generators. Routes the
 * trainer's messages to its run's coordinator, and owns generator
 * membership changes (register / remove) so that each reaches the
 * coordinator as a sync-boundary event.
 */
export class WeightSyncManager implements TrainerSessionListener {
  private readonly deps: WeightSyncManagerDeps;
  private readonly records: RunRecordStore;
  private readonly coordinators = new Map<string, WeightSyncCoordinator>();

  constructor(deps: WeightSyncManagerDeps) {
    this.deps = deps;
    this.records = new RunRecordStore(deps.store.redis, deps.keyPrefix);
    deps.sessions.addListener(this);
  }

  /** Whether a coordinator publishes this run's versions (acks then do not). */
  manages(runId: string): boolean {
    return this.coordinators.has(runId);
  }

  coordinator(runId: string): WeightSyncCoordinator | undefined {
    return this.coordinators.get(runId);
  }

  /** Adds (or re-adds, after a restart) a generator; it serves after its first sync. */
  async registerGenerator(runId: string, id: string, url: string): Promise<GeneratorRecord> {
    const record = await this.records.get(runId);
    if (!record) throw new TandemError(ErrorCode.NotFound, `run ${runId} not found`);
    if (TERMINAL_PHASES.has(record.phase)) throw new TandemError(ErrorCode.FailedPrecondition, `run ${runId} has ended`);
    const g = await this.deps.store.generators(runId).register(id, url, this.deps.clock.now());
    await this.ensure(runId);
    this.coordinators.get(runId)?.generatorRegistered(id);
    this.deps.log.info({ runId, generator: id, url }, 'generator registered; joins at the next sync');
    return g;
  }

  async removeGenerator(runId: string, id: string): Promise<void> {
    const removed = await this.deps.store.generators(runId).remove(id);
    if (!removed) throw new TandemError(ErrorCode.NotFound, `generator ${id} of run ${runId} not found`);
    this.coordinators.get(runId)?.membershipChanged();
  }

  async listGenerators(runId: string): Promise<GeneratorRecord[]> {
    if (!(await this.records.get(runId))) throw new TandemError(ErrorCode.NotFound, `run ${runId} not found`);
    return this.deps.store.generators(runId).list();
  }

  /** Starts coordinators for open runs that have generators (after a restart). */
  async resumeOpenRuns(): Promise<void> {
    for (const id of await this.records.ids()) {
      const record = await this.records.get(id);
      if (!record || TERMINAL_PHASES.has(record.phase)) continue;
      if ((await this.deps.store.generators(id).list()).length > 0) await this.ensure(id);
    }
  }

  async stopRun(runId: string): Promise<void> {
    const c = this.coordinators.get(runId);
    this.coordinators.delete(runId);
    await c?.stop();
  }

  async stop(): Promise<void> {
    await Promise.all([...this.coordinators.keys()].map((id) => this.stopRun(id)));
  }

  onAttached(runId: string): void {
    this.coordinators.get(runId)?.trainerAttached();
  }

  onWeightsReady(runId: string, version: number, updateInfoJson: string): void {
    this.coordinators.get(runId)?.weightsReady(version, updateInfoJson);
  }

  onWeightsSent(runId: string, result: WeightsSent): void {
    this.coordinators.get(runId)?.weightsSent(result);
  }

  private async ensure(runId: string): Promise<void> {
    if (this.coordinators.has(runId)) return;
    const record = await this.records.get(runId);
    // Generators register concurrently: another call may have created the
    // coordinator while this one read the record. A second coordinator would
    // run its own syncs whose WeightsSent never reach it (they are routed to
    // the one in the map), time out, and reset every generator to joining.
    if (!record || this.coordinators.has(runId)) return;
    const coordinator = new WeightSyncCoordinator(
      {
        runId,
        registry: this.deps.store.generators(runId),
        queue: this.deps.store.forRun(runId),
        sessions: this.deps.sessions,
        metrics: this.deps.metrics,
        clock: this.deps.clock,
        log: this.deps.log,
        admin: this.deps.admin ?? ((url) => vllmAdmin(url)),
        journal: (type, reason, message) => this.deps.store.journal.record(runId, type, reason, message),
      },
      {
        ...this.deps.defaults,
        timeoutMs: record.spec.async.weightSync.timeoutMs,
        inFlightWeightUpdates: record.spec.async.inFlightWeightUpdates,
      },
    );
    this.coordinators.set(runId, coordinator);
    coordinator.start();
  }
}

import type { Logger } from '@tandem/common';
import { ControlPlane, loadConfig } from '@tandem/control-plane';
import { RolloutStore } from '@tandem/rollout-queue';
import type { RunSpecInput } from '@tandem/run-spec';
import { ControlPlaneReplicas, type LeaderKill } from './control-plane-replicas.js';

/** What the harness reads of a run while it trains. */
export interface ChaosRunView {
  phase: string;
  trainerStep: number;
  message: string;
}

/** A leader kill, with the step it happened at and when training went on. */
export interface ChaosFailover extends LeaderKill {
  /** The run's trainer step just before the kill. */
  stepAtKill: number;
  /** Kill → the first step trained after it (undefined if none was). */
  firstStepMs: number | undefined;
}

/**
 * The control plane(s) of one scenario: an in-process control plane, or
 * replicas as processes with leader election. The harness drives a run
 * through it the same way either way.
 */
export interface ChaosDeployment {
  /** The scenario's Redis, as the audit reads it. */
  readonly store: RolloutStore;
  submit(spec: RunSpecInput): Promise<string>;
  /** Undefined while the run cannot be read (Redis down, no replica answering). */
  view(runId: string): Promise<ChaosRunView | undefined>;
  cancel(runId: string, reason: string): Promise<void>;
  /** Process restarts by role. */
  restarts(runId: string): Promise<Record<string, number>>;
  /** Stops everything it started; returns problems found doing so (processes that outlived their parent). */
  stop(): Promise<string[]>;
}

/** The in-process control plane with the local runtime. */
export class InProcessDeployment implements ChaosDeployment {
  private constructor(readonly plane: ControlPlane) {}

  static async start(options: { redisUrl: string; keyPrefix: string; log: Logger; trainedLog: string }): Promise<InProcessDeployment> {
    const plane = await ControlPlane.create(
      loadConfig({
        TANDEM_HOST: '127.0.0.1',
        TANDEM_HTTP_PORT: '0',
        TANDEM_GRPC_PORT: '0',
        TANDEM_REDIS_URL: options.redisUrl,
        TANDEM_KEY_PREFIX: options.keyPrefix,
        TANDEM_LOG_LEVEL: options.log.level,
        TANDEM_GENERATOR_HEALTH_INTERVAL_MS: '500',
      }),
      { log: options.log, local: { trainerEnv: { TANDEM_TRAINER_TRAINED_LOG: options.trainedLog } } },
    );
    try {
      await plane.start();
    } catch (err) {
      await plane.stop().catch(() => undefined);
      throw err;
    }
    return new InProcessDeployment(plane);
  }

  get store(): RolloutStore {
    return this.plane.store;
  }

  async submit(spec: RunSpecInput): Promise<string> {
    return (await this.plane.runs.submit({ spec })).id;
  }

  async view(runId: string): Promise<ChaosRunView | undefined> {
    const view = await this.plane.runs.get(runId).catch(() => undefined); // Redis may be down
    return view && { phase: view.status.phase, trainerStep: view.status.trainerStep, message: view.status.message ?? '' };
  }

  async cancel(runId: string, reason: string): Promise<void> {
    await this.plane.runs.cancel(runId, reason);
  }

  async restarts(runId: string): Promise<Record<string, number>> {
    return this.plane.local?.events(runId)?.restarts ?? {};
  }

  async stop(): Promise<string[]> {
    await this.plane.stop();
    return [];
  }
}

/**
 * Two control-plane replicas as processes (leader election over the Redis
 * lock), driven through the leader's HTTP API like a user would. The
 * simulated trainer's record reaches whichever replica's trainer runs
 * through the replica's environment (the local runtime's processes inherit
 * it). Restarts are counted from the run's journal, which every replica
 * writes to Redis.
 */
export class ReplicaDeployment implements ChaosDeployment {
  /** Every leader kill so far, oldest first. */
  readonly failovers: ChaosFailover[] = [];

  private constructor(
    readonly replicas: ControlPlaneReplicas,
    readonly store: RolloutStore,
  ) {}

  static async start(options: { redisUrl: string; keyPrefix: string; log: Logger; trainedLog: string }): Promise<ReplicaDeployment> {
    const store = await RolloutStore.create({ redisUrl: options.redisUrl, keyPrefix: options.keyPrefix });
    try {
      const replicas = await ControlPlaneReplicas.start({
        redisUrl: options.redisUrl,
        keyPrefix: options.keyPrefix,
        env: {
          TANDEM_LOG_LEVEL: options.log.level,
          TANDEM_GENERATOR_HEALTH_INTERVAL_MS: '500',
          TANDEM_TRAINER_TRAINED_LOG: options.trainedLog,
        },
      });
      return new ReplicaDeployment(replicas, store);
    } catch (err) {
      await store.close().catch(() => undefined);
      throw err;
    }
  }

  async submit(spec: RunSpecInput): Promise<string> {
    const body = await this.http('POST', '/v1/runs', { spec });
    if (typeof body.id !== 'string') throw new Error(`submit answered without a run id: ${JSON.stringify(body).slice(0, 500)}`);
    return body.id;
  }

  async view(runId: string): Promise<ChaosRunView | undefined> {
    const body = await this.http('GET', `/v1/runs/${runId}`).catch(() => undefined);
    const status = body?.status as Partial<ChaosRunView> | undefined;
    if (!status) return undefined;
    return { phase: status.phase ?? 'Pending', trainerStep: status.trainerStep ?? 0, message: status.message ?? '' };
  }

  async cancel(runId: string, reason: string): Promise<void> {
    await this.http('POST', `/v1/runs/${runId}:cancel`, { reason });
  }

  async restarts(runId: string): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const e of await this.store.journal.list(runId, 200)) {
      if (e.reason !== 'ProcessRestarted') continue;
      const role = e.message.split(' ')[0] ?? '?';
      out[role] = (out[role] ?? 0) + 1;
    }
    return out;
  }

  /**
   * kill -9 the leader; resolves when the standby leads (with `replaceStandby`,
   * once a fresh standby is up too). The first step trained afterwards is
   * noted by {@link noteStep}.
   */
  async killLeader(runId: string, replaceStandby: boolean): Promise<ChaosFailover> {
    const before = await this.view(runId);
    const kill = await this.replicas.killLeader(replaceStandby);
    const failover: ChaosFailover = { ...kill, stepAtKill: before?.trainerStep ?? 0, firstStepMs: undefined };
    this.failovers.push(failover);
    return failover;
  }

  /** Called with each step the harness sees: completes the failover timings. */
  noteStep(step: number): void {
    const now = Date.now();
    for (const f of this.failovers) if (f.firstStepMs === undefined && step > f.stepAtKill) f.firstStepMs = now - f.killedAtMs;
  }

  async stop(): Promise<string[]> {
    try {
      return await this.replicas.stop();
    } finally {
      // Bounded: after a terminal's Ctrl-C, Redis may be gone already.
      await Promise.race([this.store.close().catch(() => undefined), new Promise((r) => setTimeout(r, 5000).unref())]);
    }
  }

  private async http(method: string, path: string, body?: unknown): Promise<Record<string, unknown>> {
    const res = await fetch(`${this.replicas.leader.httpUrl}${path}`, {
      method,
      signal: AbortSignal.timeout(10_000),
      ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
    });
    const json = (await res.json()) as Record<string, unknown>;
    if (!res.ok) throw new Error(`${method} ${path}: HTTP ${res.status}: ${JSON.stringify(json).slice(0, 500)}`);
    return json;
  }
}

import { startRedisServer, type RedisServerHandle, type ServiceProcess } from '@tandem/testkit';
import { ControlPlaneApi } from './control-plane-api.js';
import { ProcessBook, SCRIPTS, within } from './processes.js';

/** Served model name of the simulated generators (their default). */
export const SIM_MODEL = 'tandem-sim/qwen-like-0.5b';
/** Limit on a process printing its ready line (generous: CI machines can be loaded). */
const START_LIMIT_MS = 60_000;

/** Simulated seconds → wall clock: 100× faster than real time. */
export const TIME_SCALE = '0.01';

/** Run-spec fields a scenario varies. */
export interface ScenarioSpec {
  maxSteps: number;
  batchGroups?: number;
  groupSize?: number;
  k?: number;
  weightSyncTimeoutMs?: number;
}

/** A run spec with no `simulation`: the control plane starts nothing, the test starts every process. */
export function runSpec(s: ScenarioSpec): Record<string, unknown> {
  return {
    name: 'e2e-generation',
    model: { name: SIM_MODEL },
    dataset: { source: 'builtin', name: 'arithmetic', size: 500, seed: 3 },
    reward: { kind: 'numeric' },
    algorithm: { groupSize: s.groupSize ?? 4, batchGroups: s.batchGroups ?? 4, maxTokens: 64, temperature: 1 },
    async: {
      maxTrajectoryAgeSteps: s.k ?? 1,
      inFlightWeightUpdates: true,
      weightSync: { timeoutMs: s.weightSyncTimeoutMs ?? 10_000 },
    },
    maxSteps: s.maxSteps,
    generator: { replicas: 3 },
    rolloutWorkers: { replicas: 2, concurrency: 16 },
  };
}

/** A simulated generator process. */
export interface SimGenerator {
  id: string;
  url: string;
  process: ServiceProcess;
}

/** What `GET /tandem/stats` of a simulated generator reports (the parts tests read). */
export interface SimGeneratorStats {
  engine: { waiting: number; prefilling: number; decoding: number };
  weights: { policyVersion: number; paused: boolean; updatePhase: string; updatesFinished: number };
  requests: { completionRequests: number; injectedRateLimits: number; injectedMalformed: number; completionsAnswered: number };
}

/** The simulated trainer's final report (the parts tests read). */
export interface TrainerReport {
  event: 'done';
  outcome: string;
  steps: number;
  groups: number;
  policyVersion: number;
  weightSyncs: number;
  ages: { max: number; mean: number; histogram: Record<string, number> };
}

/**
 * Real processes on loopback for generation-side end-to-end tests: one
 * Redis and one control plane (TANDEM_RUNTIME=none) for the file; each
 * scenario submits its own run and starts its own simulated generators,
 * rollout workers and simulated trainer through {@link ProcessBook}.
 */
export class GenerationRig {
  /** The scenario's processes (killed after each scenario). */
  readonly book = new ProcessBook();
  /** The control plane, outside {@link book}: it serves every scenario of the file. */
  private readonly cpBook = new ProcessBook();
  private redis: RedisServerHandle | undefined;
  private controlPlane: ServiceProcess | undefined;
  api!: ControlPlaneApi;
  grpcAddress = '';
  private seed = 100;

  get redisUrl(): string {
    if (!this.redis) throw new Error('rig not started');
    return this.redis.url;
  }

  async start(): Promise<void> {
    this.redis = await startRedisServer();
    this.controlPlane = await this.cpBook.start({
      name: 'control-plane',
      script: SCRIPTS.controlPlane,
      timeoutMs: START_LIMIT_MS,
      env: {
        TANDEM_REDIS_URL: this.redis.url,
        TANDEM_HTTP_PORT: '0',
        TANDEM_GRPC_PORT: '0',
        TANDEM_RUNTIME: 'none',
        TANDEM_GENERATOR_HEALTH_INTERVAL_MS: '500',
        TANDEM_LOG_LEVEL: 'warn',
      },
    });
    this.api = new ControlPlaneApi(String(this.controlPlane.ready.httpUrl));
    this.grpcAddress = String(this.controlPlane.ready.grpcAddress);
  }

  /** Control-plane logs (stderr), for failure messages. */
  controlPlaneLogs(): string {
    return this.controlPlane?.logs() ?? '';
  }

  async stop(): Promise<void> {
    await this.book.dispose();
    await this.cpBook.dispose();
    await this.redis?.stop();
  }

  /** Starts a simulated vLLM server with extra flags (faults). */
  async startGenerator(id: string, flags: string[] = []): Promise<SimGenerator> {
    const p = await this.book.start({
      name: id,
      script: SCRIPTS.generator,
      timeoutMs: START_LIMIT_MS,
      args: ['--port', '0', '--time-scale', TIME_SCALE, '--seed', String(this.seed++), '--log-level', 'warn', ...flags],
    });
    return { id, url: String(p.ready.url), process: p };
  }

  /** Starts `n` rollout workers for the run (no ready line: they start consuming when up). */
  async startWorkers(runId: string, n: number, env: Record<string, string> = {}): Promise<ServiceProcess[]> {
    const workers: ServiceProcess[] = [];
    for (let i = 0; i < n; i++) {
      workers.push(
        await this.book.start({
          name: `rollout-worker-${i}`,
          script: SCRIPTS.rolloutWorker,
          readyEvent: null,
          env: {
            TANDEM_REDIS_URL: this.redisUrl,
            TANDEM_RUN_ID: runId,
            TANDEM_LOG_LEVEL: 'warn',
            TANDEM_LOCK_DURATION_MS: '3000',
            TANDEM_STALLED_INTERVAL_MS: '1000',
            TANDEM_PROBE_AFTER_MS: '300',
            TANDEM_BACKOFF_BASE_MS: '20',
            TANDEM_BACKOFF_CAP_MS: '500',
            TANDEM_REQUEST_TIMEOUT_MS: '3000',
            ...env,
          },
        }),
      );
    }
    return workers;
  }

  /** Starts the simulated trainer; `report` resolves with its `done` line when it exits 0. */
  async startTrainer(runId: string, flags: string[] = []): Promise<{ process: ServiceProcess; report: (limitMs: number) => Promise<TrainerReport> }> {
    const p = await this.book.start({
      name: 'trainer',
      script: SCRIPTS.trainer,
      readyEvent: null,
      args: ['--server', this.grpcAddress, '--run-id', runId, '--time-scale', TIME_SCALE, '--log-level', 'warn', ...flags],
    });
    const report = async (limitMs: number): Promise<TrainerReport> => {
      const { code, signal } = await within(p.exited, limitMs, () => `trainer did not finish; its logs:\n${p.logs().slice(-3000)}\ncontrol plane:\n${this.controlPlaneLogs().slice(-3000)}`);
      if (code !== 0) throw new Error(`trainer exited ${code ?? signal}:\n${p.logs().slice(-3000)}`);
      const done = p.events.find((e) => e.event === 'done');
      if (!done) throw new Error(`trainer printed no done line:\n${p.logs().slice(-3000)}`);
      return done as unknown as TrainerReport;
    };
    return { process: p, report };
  }

  /** `GET /tandem/stats` of a simulated generator. */
  async simStats(url: string): Promise<SimGeneratorStats> {
    const res = await fetch(`${url}/tandem/stats`, { signal: AbortSignal.timeout(5000) });
    if (!res.ok) throw new Error(`GET ${url}/tandem/stats answered ${res.status}`);
    return (await res.json()) as SimGeneratorStats;
  }

  /** `GET /weight_info` of a simulated generator: the version it serves. */
  async servedVersion(url: string): Promise<number> {
    const res = await fetch(`${url}/weight_info`, { signal: AbortSignal.timeout(5000) });
    if (!res.ok) throw new Error(`GET ${url}/weight_info answered ${res.status}`);
    const body = (await res.json()) as { tandem_policy_version: number };
    return body.tandem_policy_version;
  }
}

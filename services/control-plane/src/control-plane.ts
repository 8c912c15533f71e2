import { Server as GrpcServer, ServerCredentials } from '@grpc/grpc-js';
import type { Server as HttpServer } from 'node:http';
import { systemClock, type Clock, type Logger } from '@tandem/common';
import { RunServiceService } from '@tandem/protocol';
import { RolloutStore } from '@tandem/rollout-queue';
import type { ControlPlaneConfig } from './config.js';
import { ControlPlaneMetrics } from './metrics/control-plane-metrics.js';
import { RunManager } from './runs/run-manager.js';
import { TrainerBroker } from './broker/trainer-broker.js';
import { TrainerSessions } from './broker/trainer-sessions.js';
import { createHttpApi, boundPort } from './api/http-server.js';
import { runServiceHandlers } from './api/run-service-grpc.js';
import { trainerServiceDefinition, trainerServiceHandlers } from './api/trainer-service-grpc.js';
import { WeightSyncManager } from './sync/weight-sync-manager.js';
import type { VllmAdmin } from './sync/vllm-admin-client.js';
import { LocalRuntime, type LocalScripts } from './runtime/local-runtime.js';
import type { RunRuntime } from './runtime/run-runtime.js';
import { createKubernetesRuntime, type KubeApi, type KubernetesRuntime } from './kubernetes/index.js';

/** Injectable collaborators; real ones are made when omitted. */
export interface ControlPlaneDeps {
  log: Logger;
  clock?: Clock;
  store?: RolloutStore;
  metrics?: ControlPlaneMetrics;
  /** vLLM admin client factory (tests inject in-process fakes); real HTTP when omitted. */
  vllmAdmin?: (url: string) => VllmAdmin;
  /** Overrides for the local runtime (tests). */
  local?: { scripts?: LocalScripts; workerEnv?: Record<string, string> };
  /** Kubernetes client for TANDEM_RUNTIME=kubernetes (tests inject one for a fake apiserver). */
  kubeApi?: KubeApi;
}

/** Addresses the control plane listens on. */
export interface ControlPlaneAddresses {
  httpUrl: string;
  grpcAddress: string;
}

/** Largest gRPC message accepted (a SubmitRun with inline prompts). */
const MAX_GRPC_RECEIVE_BYTES = 16 * 1024 * 1024;

/**
 * The control plane: run API (gRPC + HTTP), trainer broker, admission,
 * metrics. `create` does the wiring; `start` binds the servers.
 */
export class ControlPlane {
  readonly runs: RunManager;
  readonly broker: TrainerBroker;
  readonly sessions: TrainerSessions;
  readonly metrics: ControlPlaneMetrics;
  readonly store: RolloutStore;
  readonly syncs: WeightSyncManager;
  /** The local runtime, when TANDEM_RUNTIME=local. */
  readonly local: LocalRuntime | undefined;
  /** The kubernetes runtime, when TANDEM_RUNTIME=kubernetes. */
  readonly kubernetes: KubernetesRuntime | undefined;
  private readonly config: ControlPlaneConfig;
  private readonly log: Logger;
  private readonly http: HttpServer;
  private readonly grpc: GrpcServer;
  private addresses: ControlPlaneAddresses | undefined;

  private constructor(config: ControlPlaneConfig, store: RolloutStore, deps: ControlPlaneDeps) {
    const clock = deps.clock ?? systemClock;
    this.config = config;
    this.log = deps.log;
    this.store = store;
    this.metrics = deps.metrics ?? new ControlPlaneMetrics();
    this.sessions = new TrainerSessions(deps.log);
    this.syncs = new WeightSyncManager({
      store,
      sessions: this.sessions,
      metrics: this.metrics,
      clock,
      log: deps.log,
      keyPrefix: config.keyPrefix,
      ...(deps.vllmAdmin ? { admin: deps.vllmAdmin } : {}),
      defaults: {
        transferPort: config.transferPort,
        healthIntervalMs: config.generatorHealthIntervalMs,
        unhealthyAfterFailures: 3,
      },
    });
    this.local =
      config.runtime === 'local'
        ? new LocalRuntime({
            log: deps.log.child({ component: 'local-runtime' }),
            redisUrl: config.redisUrl,
            keyPrefix: config.keyPrefix,
            grpcAddress: () => this.addresses?.grpcAddress ?? `${config.host}:${config.grpcPort}`,
            registerGenerator: async (runId, id, url) => {
              await this.syncs.registerGenerator(runId, id, url);
            },
            removeGenerator: (runId, id) => this.syncs.removeGenerator(runId, id),
            failRun: async (runId, message) => {
              await this.runs.fail(runId, message);
            },
            ...(deps.local?.scripts ? { scripts: deps.local.scripts } : {}),
            ...(deps.local?.workerEnv ? { workerEnv: deps.local.workerEnv } : {}),
          })
        : undefined;
    this.kubernetes = config.kubernetes
      ? createKubernetesRuntime(config.kubernetes, { runs: () => this.runs, syncs: this.syncs, store, keyPrefix: config.keyPrefix, metrics: this.metrics, clock, log: deps.log, ...(deps.kubeApi ? { api: deps.kubeApi } : {}) })
      : undefined;
    const runtime: RunRuntime | undefined = this.local ?? this.kubernetes;
    this.runs = new RunManager({
      store,
      metrics: this.metrics,
      clock,
      log: deps.log,
      keyPrefix: config.keyPrefix,
      ...(runtime ? { runtime } : {}),
      ...(this.kubernetes ? { declarations: this.kubernetes.declarations } : {}),
      onRunEnded: async (runId, phase, message) => {
        this.sessions.endRun(runId, phase, message);
        await this.syncs.stopRun(runId);
      },
    });
    this.broker = new TrainerBroker({
      store,
      metrics: this.metrics,
      clock,
      log: deps.log.child({ component: 'broker' }),
      maxPullWaitMs: config.maxPullWaitMs,
      publishOnAck: (runId) => !this.syncs.manages(runId),
    });
    this.http = createHttpApi({
      runs: this.runs,
      syncs: this.syncs,
      registry: this.metrics.registry,
      ready: async () => {
        await store.redis.ping();
      },
      log: deps.log.child({ component: 'http' }),
      maxRequestBytes: config.maxRequestBytes,
    });
    this.grpc = new GrpcServer({ 'grpc.max_receive_message_length': MAX_GRPC_RECEIVE_BYTES });
    this.grpc.addService(RunServiceService, runServiceHandlers(this.runs));
    this.grpc.addService(
      trainerServiceDefinition,
      trainerServiceHandlers({
        broker: this.broker,
        sessions: this.sessions,
        store,
        keyPrefix: config.keyPrefix,
        log: deps.log.child({ component: 'trainer-service' }),
      }),
    );
  }

  /** Connects to Redis and wires every component. */
  static async create(config: ControlPlaneConfig, deps: ControlPlaneDeps): Promise<ControlPlane> {
    const store =
      deps.store ??
      (await RolloutStore.create({
        redisUrl: config.redisUrl,
        keyPrefix: config.keyPrefix,
        log: deps.log.child({ component: 'rollout-store' }),
        ...(deps.clock ? { clock: deps.clock } : {}),
      }));
    return new ControlPlane(config, store, deps);
  }

  /** Binds HTTP and gRPC and resumes admission of open runs. */
  async start(): Promise<ControlPlaneAddresses> {
    const { host } = this.config;
    await new Promise<void>((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(this.config.httpPort, host, () => resolve());
    });
    const grpcPort = await new Promise<number>((resolve, reject) => {
      this.grpc.bindAsync(`${host}:${this.config.grpcPort}`, ServerCredentials.createInsecure(), (err, port) =>
        err ? reject(err) : resolve(port),
      );
    });
    this.addresses = { httpUrl: `http://${host}:${boundPort(this.http)}`, grpcAddress: `${host}:${grpcPort}` };
    await this.syncs.resumeOpenRuns();
    const resumed = await this.runs.resumeOpenRuns();
    this.kubernetes?.start();
    this.log.info({ ...this.addresses, resumedRuns: resumed }, 'control plane listening');
    return this.addresses;
  }

  /** Stops serving, stops admission, closes connections. */
  async stop(): Promise<void> {
    this.sessions.closeAll();
    await this.kubernetes?.stop();
    await this.syncs.stop();
    await this.runs.stop();
    await this.local?.stop();
    await new Promise<void>((resolve) => this.grpc.tryShutdown(() => resolve()));
    this.grpc.forceShutdown();
    await new Promise<void>((resolve) => {
      this.http.closeAllConnections();
      this.http.close(() => resolve());
    });
    await this.store.close();
  }
}

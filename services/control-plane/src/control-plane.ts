import { Server as GrpcServer } from '@grpc/grpc-js';
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
import { authorizationOf, runServiceHandlers } from './api/run-service-grpc.js';
import { withDecodeErrors } from './api/grpc-errors.js';
import { trainerCredentialCheck, trainerServiceDefinition, trainerServiceHandlers } from './api/trainer-service-grpc.js';
import { WeightSyncManager } from './sync/weight-sync-manager.js';
import type { VllmAdmin } from './sync/vllm-admin-client.js';
import { LocalRuntime, type LocalScripts } from './runtime/local-runtime.js';
import type { RunRuntime } from './runtime/run-runtime.js';
import { createKubernetesRuntime, type KubeApi, type KubernetesRuntime } from './kubernetes/index.js';
import { Security } from './auth/security.js';
import { RedisLeaderLock } from './ha/redis-leader-lock.js';
import type { RedisLeaderElector } from './ha/redis-leader-elector.js';
import { assertLeader, guardService, notLeaderError, type LeaderGate } from './ha/leader-gate.js';
import { Leadership, type Takeover } from './ha/leadership.js';

/** Injectable collaborators; real ones are made when omitted. */
export interface ControlPlaneDeps {
  log: Logger;
  clock?: Clock;
  store?: RolloutStore;
  metrics?: ControlPlaneMetrics;
  /** vLLM admin client factory (tests inject in-process fakes); real HTTP when omitted. */
  vllmAdmin?: (url: string) => VllmAdmin;
  /** Overrides for the local runtime (tests). */
  local?: { scripts?: LocalScripts; workerEnv?: Record<string, string>; trainerEnv?: Record<string, string> };
  /** Kubernetes client for TANDEM_RUNTIME=kubernetes (tests inject one for a fake apiserver). */
  kubeApi?: KubeApi;
  /** Authentication, TLS and per-run credentials; made from `config.security` by `create` when omitted. */
  security?: Security;
  /** Called after this replica took the runs over as the new leader (TANDEM_LEADER_ELECTION=redis). */
  onTakeover?: (takeover: Takeover) => void;
}

/** Addresses the control plane listens on. */
export interface ControlPlaneAddresses {
  httpUrl: string;
  grpcAddress: string;
}

/** RunService methods a standby serves itself (everything else names the leader). */
const RUN_SERVICE_READS: ReadonlySet<string> = new Set(['getRun', 'listRuns', 'watchRun']);

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
  /** Leader election over Redis (TANDEM_LEADER_ELECTION=redis); undefined: this replica always leads. */
  readonly elector: RedisLeaderElector | undefined;
  /** Whether this replica may change runs, and who leads (ha/leader-gate.ts). */
  readonly gate: LeaderGate;
  /** This replica's part in leader election (TANDEM_LEADER_ELECTION=redis). */
  readonly leadership: Leadership | undefined;
  /** Authentication, TLS, per-run credentials (auth/security.ts). */
  readonly security: Security;
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
    this.security = deps.security ?? Security.disabled();
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
            ...(deps.local?.trainerEnv ? { trainerEnv: deps.local.trainerEnv } : {}),
            journal: (runId, type, reason, message) => store.journal.record(runId, type, reason, message),
            credentials: (runId) => this.security.issue(runId),
            ...(this.security.tls ? { tls: { ...(this.security.caFile === undefined ? {} : { caFile: this.security.caFile }) } } : {}),
          })
        : undefined;
    this.kubernetes = config.kubernetes
      ? createKubernetesRuntime(
          this.security.runCredentials ? { ...config.kubernetes, workloads: { ...config.kubernetes.workloads, runCredentials: true } } : config.kubernetes,
          {
            runs: () => this.runs,
            syncs: this.syncs,
            store,
            keyPrefix: config.keyPrefix,
            metrics: this.metrics,
            clock,
            log: deps.log,
            ...(deps.kubeApi ? { api: deps.kubeApi } : {}),
            ...(this.security.runCredentials ? { credentials: (runId: string) => this.security.issue(runId) } : {}),
          },
        )
      : undefined;
    const runtime: RunRuntime | undefined = this.local ?? this.kubernetes;
    this.runs = new RunManager({
      store,
      metrics: this.metrics,
      endedRunMetricsRetentionMs: config.endedRunMetricsRetentionMs,
      clock,
      log: deps.log,
      keyPrefix: config.keyPrefix,
      datasetFiles: { dirsRequired: config.security.authEnabled, ...(config.security.datasetDirs ? { dirs: config.security.datasetDirs } : {}) },
      ...(runtime ? { runtime } : {}),
      ...(this.kubernetes ? { declarations: this.kubernetes.declarations, fixedNamespace: this.kubernetes.namespace } : {}),
      onWorkloadsStopped: (runId) => this.security.release(runId),
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
    this.leadership =
      config.leaderElection.mode === 'redis'
        ? new Leadership({
            lock: new RedisLeaderLock(store.redis, config.keyPrefix),
            store,
            keyPrefix: config.keyPrefix,
            clock,
            log: deps.log.child({ component: 'leader-election' }),
            election: { leaseMs: config.leaderElection.leaseMs, renewPeriodMs: config.leaderElection.renewPeriodMs },
            work: {
              resumeSyncs: () => this.syncs.resumeOpenRuns(),
              resumeRuns: () => this.runs.resumeOpenRuns(),
              stopAll: async () => {
                this.sessions.closeAll();
                await Promise.all([this.runs.stop(), this.syncs.stop(), this.local?.stop()]);
              },
            },
            ...(deps.onTakeover ? { onTakeover: deps.onTakeover } : {}),
          })
        : undefined;
    this.elector = this.leadership?.elector;
    this.gate = this.leadership ?? { isLeader: () => true, leader: async () => undefined };
    this.http = createHttpApi({
      runs: this.runs,
      syncs: this.syncs,
      registry: this.metrics.registry,
      ready: async () => {
        await store.redis.ping();
        // A standby is alive (/healthz) but not where clients should go.
        if (!this.gate.isLeader()) throw notLeaderError(await this.gate.leader());
      },
      writable: () => assertLeader(this.gate),
      log: deps.log.child({ component: 'http' }),
      maxRequestBytes: config.maxRequestBytes,
      auth: this.security.api,
      ...(this.security.tls ? { tls: this.security.tls } : {}),
      ...(this.security.runCredentials
        ? {
            runCredentials: async (runId: string) => {
              const issued = await this.security.issue(runId);
              if (!issued) throw new Error('per-run credentials are off');
              return issued;
            },
          }
        : {}),
    });
    // grpc-js refuses a larger message with RESOURCE_EXHAUSTED "Received
    // message larger than max (N vs. limit)" before it is decoded.
    this.grpc = new GrpcServer({ 'grpc.max_receive_message_length': config.maxGrpcMessageBytes });
    // A standby serves reads; everything else answers UNAVAILABLE naming the leader.
    // Requests that do not decode are INVALID_ARGUMENT (withDecodeErrors).
    const runService = withDecodeErrors(RunServiceService, guardService(RunServiceService, runServiceHandlers(this.runs, this.security.api), this.gate, RUN_SERVICE_READS, (call) => this.security.api.principal(authorizationOf(call.metadata))));
    this.grpc.addService(runService.definition, runService.handlers);
    const trainerCheck = trainerCredentialCheck(this.security.runCredentials);
    const trainerService = withDecodeErrors(
      trainerServiceDefinition,
      guardService(
        trainerServiceDefinition,
        trainerServiceHandlers({
          broker: this.broker,
          sessions: this.sessions,
          store,
          keyPrefix: config.keyPrefix,
          log: deps.log.child({ component: 'trainer-service' }),
          ...(this.security.runCredentials ? { runCredentials: this.security.runCredentials } : {}),
        }),
        this.gate,
        new Set(),
        // The run's credential before the leader's address (unary calls name the run in the request).
        (call) => trainerCheck(call.metadata, (call.request as { runId?: string } | undefined)?.runId),
      ),
    );
    this.grpc.addService(trainerService.definition, trainerService.handlers);
  }

  /** The fencing token of this replica's leadership (undefined: election off, writes unfenced). */
  fencingToken(): number | undefined {
    return this.elector?.token();
  }

  /** Connects to Redis and wires every component. */
  static async create(config: ControlPlaneConfig, deps: ControlPlaneDeps): Promise<ControlPlane> {
    const ref: { plane?: ControlPlane } = {};
    const store =
      deps.store ??
      (await RolloutStore.create({
        redisUrl: config.redisUrl,
        keyPrefix: config.keyPrefix,
        log: deps.log.child({ component: 'rollout-store' }),
        ...(deps.clock ? { clock: deps.clock } : {}),
        // Leader-only queue transitions carry this replica's fencing token.
        fencingToken: () => ref.plane?.fencingToken(),
      }));
    const security =
      deps.security ??
      (await Security.create(config.security, {
        redis: store.redis,
        redisUrl: config.redisUrl,
        keyPrefix: config.keyPrefix,
        log: deps.log.child({ component: 'security' }),
        onRedisReady: (listener) => store.redis.on('ready', listener),
        ...(config.kubernetes ? { kubernetes: config.kubernetes } : {}),
        ...(deps.kubeApi ? { kubeApi: deps.kubeApi } : {}),
      }).catch(async (err: unknown) => {
        if (!deps.store) await store.close();
        throw err;
      }));
    const plane = new ControlPlane(config, store, { ...deps, security });
    ref.plane = plane;
    return plane;
  }

  /** Binds HTTP and gRPC and resumes admission of open runs. */
  async start(): Promise<ControlPlaneAddresses> {
    const { host } = this.config;
    await new Promise<void>((resolve, reject) => {
      this.http.once('error', reject);
      this.http.listen(this.config.httpPort, host, () => resolve());
    });
    const grpcPort = await new Promise<number>((resolve, reject) => {
      this.grpc.bindAsync(`${host}:${this.config.grpcPort}`, this.security.grpcCredentials(), (err, port) =>
        err ? reject(err) : resolve(port),
      );
    });
    this.addresses = { httpUrl: `${this.security.httpScheme}://${host}:${boundPort(this.http)}`, grpcAddress: `${host}:${grpcPort}` };
    this.security.logStartup(this.log);
    if (this.leadership) {
      // Leader work starts when (if) this replica wins the lock.
      this.leadership.start({ ...this.addresses, ...this.config.leaderElection.advertise });
      this.log.info({ ...this.addresses, election: 'redis', identity: this.leadership.elector.identity }, 'control plane listening; campaigning for leadership');
      return this.addresses;
    }
    await this.syncs.resumeOpenRuns();
    const resumed = await this.runs.resumeOpenRuns();
    this.kubernetes?.start();
    this.log.info({ ...this.addresses, resumedRuns: resumed }, 'control plane listening');
    return this.addresses;
  }

  /** Stops serving, stops admission, closes connections. */
  async stop(): Promise<void> {
    // Leader work stops first and the lock is released: a standby takes over at its next campaign.
    await this.leadership?.stop({ release: true });
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

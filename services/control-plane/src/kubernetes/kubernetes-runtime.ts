import type { Clock, Logger } from '@tandem/common';
import type { RunRecord } from '@tandem/rollout-queue';
import type { RunRuntime } from '../runtime/run-runtime.js';
import { LABEL_RUN, type WorkloadSettings } from './children.js';
import { EventRecorder } from './event-recorder.js';
import { Informer, type InformerStats } from './informer.js';
import type { KubeApi } from './kube-client.js';
import { LeaderElector } from './leader-election.js';
import { DEPLOYMENT, ENDPOINTSLICE, JOB, POD, RLRUN, STATEFULSET, type KubeObject, type ResourceType } from './resources.js';
import { RLRunDeclarations } from './rlrun-declarations.js';
import { RLRunReconciler, type ControlPlaneHooks } from './rlrun-reconciler.js';
import { WorkQueue } from './work-queue.js';

/** Tunables of the {@link KubernetesRuntime} (defaults suit production; tests shorten them). */
export interface KubernetesRuntimeTuning {
  /** Lease timing (client-go defaults). */
  leaseName?: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  /** Every RLRun is reconciled at least this often, which refreshes its progress. @default 5000 */
  statusIntervalMs?: number;
  /** Informer watchdog and backoff. */
  stallTimeoutMs?: number;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  watchTimeoutSeconds?: number;
  /** Parallel reconciles. @default 4 */
  concurrency?: number;
}

/**
 * Where the leader tells trainers to find it: an EndpointSlice of a
 * selector-less Service (`tandem-control-plane-leader`) holding only the
 * leader's pod IP. Trainer sessions and weight-sync coordinators live in
 * the leader's process, so trainers must reach the leader, not any replica.
 */
export interface LeaderAdvertisement {
  serviceName: string;
  podIp: string;
  grpcPort: number;
}

/** Collaborators of the {@link KubernetesRuntime}. */
export interface KubernetesRuntimeDeps {
  api: KubeApi;
  namespace: string;
  /** This replica's name (the pod name): the Lease holder identity. */
  identity: string;
  settings: WorkloadSettings;
  hooks: ControlPlaneHooks;
  clock: Clock;
  log: Logger;
  tuning?: KubernetesRuntimeTuning;
  /** Publish the leader's address for trainers (omit outside a cluster). */
  advertise?: LeaderAdvertisement;
}

interface Leadership {
  informers: Informer<KubeObject>[];
  queue: WorkQueue;
  reconciler: RLRunReconciler;
  stopped: Promise<void>;
  abort: AbortController;
}

/**
 * The kubernetes runtime: RLRun objects are the runs' declarations (any
 * replica writes them for the API), and the replica holding the Lease runs
 * the informers and the reconciler that turn them into pods. Losing the
 * Lease stops reconciling at once; the next leader relists and carries on
 * (everything it needs is in the RLRun status and Redis).
 */
export class KubernetesRuntime implements RunRuntime {
  readonly name = 'kubernetes';
  readonly declarations: RLRunDeclarations;
  readonly elector: LeaderElector;
  private readonly d: KubernetesRuntimeDeps;

  /** The namespace RLRuns and their workloads live in (every run's namespace). */
  get namespace(): string {
    return this.d.namespace;
  }
  private leadership: Leadership | undefined;
  private transitions: Promise<void> = Promise.resolve();

  constructor(deps: KubernetesRuntimeDeps) {
    this.d = deps;
    const t = deps.tuning ?? {};
    this.declarations = new RLRunDeclarations({ api: deps.api, namespace: deps.namespace });
    this.elector = new LeaderElector({
      api: deps.api,
      namespace: deps.namespace,
      identity: deps.identity,
      clock: deps.clock,
      log: deps.log.child({ component: 'leader-election' }),
      ...(t.leaseName ? { leaseName: t.leaseName } : {}),
      ...(t.leaseDurationMs ? { leaseDurationMs: t.leaseDurationMs } : {}),
      ...(t.renewDeadlineMs ? { renewDeadlineMs: t.renewDeadlineMs } : {}),
      ...(t.retryPeriodMs ? { retryPeriodMs: t.retryPeriodMs } : {}),
      onStartedLeading: (signal) => this.transition(() => this.lead(signal)),
      onStoppedLeading: () => this.transition(() => this.follow()),
    });
  }

  /** Starts campaigning for the Lease. */
  start(): void {
    this.elector.start();
  }

  isLeader(): boolean {
    return this.leadership !== undefined;
  }

  async startRun(record: RunRecord): Promise<void> {
    this.leadership?.queue.add(record.id);
  }

  async scaleGenerators(runId: string, replicas: number): Promise<void> {
    await this.declarations.scale(runId, replicas);
  }

  async stopRun(runId: string): Promise<void> {
    this.leadership?.queue.add(runId);
  }

  /**
   * Stops. A graceful stop hands the Lease back (the other replica takes
   * over at its next retry); `releaseLease: false` stops like a crash would,
   * leaving the Lease to expire (tests).
   */
  async stop(options: { releaseLease?: boolean } = {}): Promise<void> {
    await this.elector.stop({ release: options.releaseLease ?? true });
    await this.transitions;
    await this.follow();
  }

  /** Resolves when the reconcile queue is empty (tests). */
  async idle(): Promise<void> {
    await this.transitions;
    await this.leadership?.queue.idle();
  }

  /** Informer counters by kind (tests, metrics). */
  informerStats(): Record<string, InformerStats> {
    const out: Record<string, InformerStats> = {};
    for (const [i, kind] of [RLRUN, POD, STATEFULSET, DEPLOYMENT, JOB].entries()) {
      const inf = this.leadership?.informers[i];
      if (inf) out[kind.kind] = { ...inf.stats };
    }
    return out;
  }

  private transition(fn: () => Promise<void>): void {
    this.transitions = this.transitions.then(fn).catch((err: unknown) => this.d.log.error({ err }, 'leadership transition failed'));
  }

  private async lead(signal: AbortSignal): Promise<void> {
    if (this.leadership || signal.aborted) return;
    const { api, namespace, clock, log } = this.d;
    const t = this.d.tuning ?? {};
    const queue = new WorkQueue({ clock, log: log.child({ component: 'rlrun-queue' }), concurrency: t.concurrency ?? 4 });
    const enqueueOwner = (o: KubeObject): void => {
      const run = o.metadata.labels?.[LABEL_RUN];
      if (run) queue.add(run);
    };
    const informer = (type: ResourceType, onEvent: (o: KubeObject) => void, labelSelector?: string): Informer<KubeObject> =>
      new Informer<KubeObject>({
        api,
        type,
        namespace,
        clock,
        log: log.child({ component: 'informer', kind: type.kind }),
        onEvent: (_type, o) => onEvent(o),
        ...(labelSelector ? { labelSelector } : {}),
        ...(t.stallTimeoutMs ? { stallTimeoutMs: t.stallTimeoutMs } : {}),
        ...(t.initialBackoffMs ? { initialBackoffMs: t.initialBackoffMs } : {}),
        ...(t.maxBackoffMs ? { maxBackoffMs: t.maxBackoffMs } : {}),
        ...(t.watchTimeoutSeconds ? { watchTimeoutSeconds: t.watchTimeoutSeconds } : {}),
      });
    const children = `${LABEL_RUN}`;
    const informers = [
      informer(RLRUN, (o) => queue.add(o.metadata.name as string)),
      informer(POD, enqueueOwner, children),
      informer(STATEFULSET, enqueueOwner, children),
      informer(DEPLOYMENT, enqueueOwner, children),
      informer(JOB, enqueueOwner, children),
    ];
    const [rlruns, pods, statefulsets, deployments, jobs] = informers as [Informer<KubeObject>, Informer<KubeObject>, Informer<KubeObject>, Informer<KubeObject>, Informer<KubeObject>];
    const reconciler = new RLRunReconciler({
      api,
      namespace,
      settings: this.d.settings,
      hooks: this.d.hooks,
      caches: { rlruns, pods, statefulsets, deployments, jobs },
      events: new EventRecorder({ api, clock, log, instance: this.d.identity }),
      clock,
      log: log.child({ component: 'rlrun-reconciler' }),
    });
    const abort = new AbortController();
    signal.addEventListener('abort', () => abort.abort(signal.reason), { once: true });
    informers.forEach((i) => i.start());
    const stopped = (async () => {
      const aborted = new Promise<void>((resolve) => abort.signal.addEventListener('abort', () => resolve(), { once: true }));
      await Promise.race([Promise.all(informers.map((i) => i.waitForSync())), aborted]);
      if (abort.signal.aborted) return;
      queue.start(async (name) => {
        const result = await reconciler.reconcile(name);
        if (result.requeueAfterMs !== undefined) queue.addAfter(name, result.requeueAfterMs);
      });
      log.info({ namespace, runs: rlruns.list().length }, 'reconciling RLRuns (leader)');
      // Level-triggered resync: progress lives in Redis, not in watched objects.
      let advertised = this.d.advertise === undefined;
      while (!abort.signal.aborted) {
        if (!advertised) advertised = await this.advertise();
        for (const run of rlruns.list()) queue.add(run.metadata.name as string);
        await clock.sleep(t.statusIntervalMs ?? 5000, abort.signal).catch(() => undefined);
      }
    })();
    this.leadership = { informers, queue, reconciler, stopped, abort };
  }

  /** Points the leader Service at this pod; false to retry at the next tick. */
  private async advertise(): Promise<boolean> {
    const a = this.d.advertise;
    if (!a) return true;
    try {
      await this.d.api.apply(
        ENDPOINTSLICE,
        this.d.namespace,
        {
          metadata: {
            name: a.serviceName,
            namespace: this.d.namespace,
            labels: { 'kubernetes.io/service-name': a.serviceName, 'endpointslice.kubernetes.io/managed-by': 'tandem-control-plane' },
          },
          addressType: a.podIp.includes(':') ? 'IPv6' : 'IPv4',
          endpoints: [{ addresses: [a.podIp], conditions: { ready: true }, targetRef: { kind: 'Pod', name: this.d.identity, namespace: this.d.namespace } }],
          ports: [{ name: 'grpc', port: a.grpcPort, protocol: 'TCP' }],
        },
        { fieldManager: 'tandem-control-plane', force: true },
      );
      this.d.log.info({ service: a.serviceName, podIp: a.podIp }, 'leader address published for trainers');
      return true;
    } catch (err) {
      this.d.log.warn({ err, service: a.serviceName }, 'could not publish the leader address; retrying');
      return false;
    }
  }

  private async follow(): Promise<void> {
    const l = this.leadership;
    if (!l) return;
    this.leadership = undefined;
    l.abort.abort(new Error('not leader'));
    await l.queue.stop();
    await Promise.all(l.informers.map((i) => i.stop()));
    await l.stopped.catch(() => undefined);
    this.d.log.info('stopped reconciling (not leader)');
  }
}

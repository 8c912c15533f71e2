import { silentLogger, type Logger } from '@tandem/common';
import { rlrunCrd } from '../crd/rlrun-crd.js';
import type { WorkloadSettings } from '../children.js';
import { HttpKubeApi } from '../kube-client.js';
import { KubernetesRuntime, type KubernetesRuntimeTuning } from '../kubernetes-runtime.js';
import { FakeApiServer } from './fake-apiserver.js';
import { FakeControlPlane } from './fake-control-plane.js';
import { FakeWorkloadControllers } from './fake-workload-controllers.js';
import { ManualClock } from './manual-clock.js';

/** Operator settings used by the tests. */
export const TEST_SETTINGS: WorkloadSettings = {
  images: { generator: 'vllm/vllm-openai:v0.99.0', trainer: 'tandem/trainer:test', rolloutWorker: 'tandem/rollout-worker:test', simulator: 'tandem/control-plane:test' },
  controlPlaneGrpcAddress: 'tandem-control-plane.default.svc:50051',
  redis: { url: 'redis://redis.default.svc:6379' },
  keyPrefix: 'tandem',
  transferPort: 29500,
};

/** Fast timings for tests: the manual clock drives all of them. */
export const TEST_TUNING: KubernetesRuntimeTuning = {
  statusIntervalMs: 5000,
  stallTimeoutMs: 30_000,
  initialBackoffMs: 200,
  maxBackoffMs: 5000,
  watchTimeoutSeconds: 300,
};

/** A fake apiserver with the RLRun CRD, fake workload controllers, and a clock tests move. */
export interface KubeHarness {
  api: FakeApiServer;
  kube: HttpKubeApi;
  clock: ManualClock;
  controllers: FakeWorkloadControllers;
  stop(): Promise<void>;
}

export async function startKubeHarness(options: { historyLimit?: number } = {}): Promise<KubeHarness> {
  const clock = new ManualClock();
  const api = await FakeApiServer.start({
    crds: [rlrunCrd()],
    now: () => clock.now(),
    bookmarkIntervalMs: 50,
    ...(options.historyLimit ? { historyLimit: options.historyLimit } : {}),
  });
  const controllers = new FakeWorkloadControllers(api);
  controllers.start();
  const kube = new HttpKubeApi({ server: api.url, namespace: 'default' }, { requestTimeoutMs: 5000 });
  return {
    api,
    kube,
    clock,
    controllers,
    stop: async () => {
      controllers.stop();
      await api.stop();
    },
  };
}

/** A control plane replica (the kubernetes runtime) on the harness, with an in-memory control plane behind it. */
export function startReplica(
  h: KubeHarness,
  identity: string,
  options: { hooks?: FakeControlPlane; log?: Logger; tuning?: KubernetesRuntimeTuning; podIp?: string } = {},
): { runtime: KubernetesRuntime; hooks: FakeControlPlane } {
  const hooks = options.hooks ?? new FakeControlPlane();
  const runtime = new KubernetesRuntime({
    api: h.kube,
    namespace: 'default',
    identity,
    settings: TEST_SETTINGS,
    hooks,
    clock: h.clock,
    log: options.log ?? silentLogger(),
    tuning: { ...TEST_TUNING, ...(options.tuning ?? {}) },
    ...(options.podIp ? { advertise: { serviceName: 'tandem-control-plane-leader', podIp: options.podIp, grpcPort: 50051 } } : {}),
  });
  runtime.start();
  return { runtime, hooks };
}

/** Polls `check` (real time) until it returns truthy or throws after `timeoutMs`. */
export async function eventually<T>(check: () => T | Promise<T>, options: { timeoutMs?: number; what?: string; clock?: ManualClock; advanceMs?: number } = {}): Promise<NonNullable<T>> {
  const deadline = Date.now() + (options.timeoutMs ?? 5000);
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v) return v as NonNullable<T>;
      last = v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${options.what ?? 'a condition'}; last: ${last instanceof Error ? last.message : JSON.stringify(last)}`);
    if (options.clock && options.advanceMs) await options.clock.advance(options.advanceMs, { stepMs: options.advanceMs });
    await new Promise((r) => setTimeout(r, 10));
  }
}

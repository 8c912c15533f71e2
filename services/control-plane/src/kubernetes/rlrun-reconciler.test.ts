import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { KubernetesRuntime } from './kubernetes-runtime.js';
import { CONFIGMAP, DEPLOYMENT, EVENT, JOB, POD, PVC, RLRUN, SERVICE, STATEFULSET, type KubeObject } from './resources.js';
import { RLRUN_FINALIZER } from './rlrun-reconciler.js';
import type { RLRunStatus } from './rlrun-status.js';
import type { FakeControlPlane } from './testing/fake-control-plane.js';
import { eventually, startKubeHarness, startReplica, type KubeHarness } from './testing/kube-harness.js';

/**
 * The reconciler against the fake apiserver (a contract test of the
 * controller: real HTTP, real watches, real status subresource, garbage
 * collection and validation of what it writes; no real scheduler or GPUs).
 */

const NS = 'default';
let h: KubeHarness;
let runtime: KubernetesRuntime;
let hooks: FakeControlPlane;

function rlrun(name: string, spec: Record<string, unknown> = {}): KubeObject {
  return {
    apiVersion: 'tandem.dev/v1alpha1',
    kind: 'RLRun',
    metadata: { name, namespace: NS },
    spec: {
      model: { name: 'qwen2.5-0.5b-instruct' },
      dataset: { source: 'builtin', name: 'arithmetic', size: 100 },
      reward: { kind: 'numeric' },
      maxSteps: 10,
      generator: { replicas: 2, tensorParallelSize: 2 },
      trainer: { numNodes: 1, procsPerNode: 4 },
      ...spec,
    },
  };
}

const get = (type: Parameters<KubeHarness['kube']['get']>[0], name: string): Promise<KubeObject | undefined> => h.kube.get(type, NS, name);
const status = async (name: string): Promise<RLRunStatus> => ((await get(RLRUN, name))?.status ?? {}) as RLRunStatus;
const condition = async (name: string, type: string): Promise<string | undefined> => (await status(name)).conditions?.find((c) => c.type === type)?.status;

beforeEach(async () => {
  h = await startKubeHarness();
  ({ runtime, hooks } = startReplica(h, 'cp-0'));
  await eventually(() => runtime.isLeader(), { what: 'leadership' });
});

afterEach(async () => {
  await runtime?.stop();
  await h?.stop();
});

describe('RLRun reconciler', () => {
  it('creates the children with owner references, GPU requests and hardened pods', async () => {
    await h.kube.create(RLRUN, NS, rlrun('alpha'));
    const sts = await eventually(() => get(STATEFULSET, 'alpha-gen'), { what: 'generator StatefulSet' });
    const job = await eventually(() => get(JOB, 'alpha-trainer'), { what: 'trainer Job' });
    const deploy = await eventually(() => get(DEPLOYMENT, 'alpha-rollout'), { what: 'rollout Deployment' });
    const svc = await get(SERVICE, 'alpha-gen');
    const tsvc = await get(SERVICE, 'alpha-trainer');
    const cm = await get(CONFIGMAP, 'alpha-run');
    const pvc = await get(PVC, 'alpha-checkpoints');
    const run = (await get(RLRUN, 'alpha')) as KubeObject;
    expect(run.metadata.finalizers).toContain(RLRUN_FINALIZER);
    for (const child of [sts, job, deploy, svc, tsvc, cm, pvc]) {
      expect(child?.metadata.ownerReferences).toEqual([expect.objectContaining({ kind: 'RLRun', name: 'alpha', uid: run.metadata.uid, controller: true })]);
    }
    // Generators: TP=2 → 2 GPUs each (limit = request), stable DNS via the headless Service.
    const gspec = sts.spec as any;
    expect(gspec.replicas).toBe(2);
    expect(gspec.serviceName).toBe('alpha-gen');
    const vllm = gspec.template.spec.containers[0];
    expect(vllm.resources.limits['nvidia.com/gpu']).toBe(2);
    expect(vllm.resources.requests['nvidia.com/gpu']).toBe(2);
    expect(vllm.args).toEqual(expect.arrayContaining(['--weight-transfer-config', '{"backend":"nccl"}', '--tensor-parallel-size', '2', '--logprobs-mode', 'processed_logprobs']));
    expect(vllm.env).toEqual(expect.arrayContaining([{ name: 'VLLM_SERVER_DEV_MODE', value: '1' }]));
    expect((svc?.spec as any).clusterIP).toBe('None');
    // Trainer: Indexed Job, 4 GPUs per node, rank 0 reachable through the trainer Service.
    const jspec = job.spec as any;
    expect(jspec).toMatchObject({ completionMode: 'Indexed', completions: 1, parallelism: 1, backoffLimit: 0 });
    expect(jspec.template.spec).toMatchObject({ restartPolicy: 'Never', subdomain: 'alpha-trainer' });
    const trainer = jspec.template.spec.containers[0];
    expect(trainer.resources.limits['nvidia.com/gpu']).toBe(4);
    expect(trainer.volumeMounts).toEqual(expect.arrayContaining([{ name: 'checkpoints', mountPath: '/checkpoints' }]));
    // Every pod template: non-root, read-only root, no privilege escalation, no API token.
    for (const tmpl of [gspec.template, jspec.template, (deploy.spec as any).template]) {
      expect(tmpl.spec.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1000 });
      expect(tmpl.spec.automountServiceAccountToken).toBe(false);
      for (const c of tmpl.spec.containers) {
        expect(c.securityContext).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, runAsNonRoot: true, capabilities: { drop: ['ALL'] } });
      }
    }
    // Children were written with server-side apply, status and finalizers with merge patch.
    const writes = h.api.requests.filter((r) => r.method === 'PATCH');
    expect(writes.filter((r) => /statefulsets|jobs|deployments|services|configmaps/.test(r.path)).every((r) => r.contentType === 'application/apply-patch+yaml' && r.fieldManager === 'tandem-control-plane')).toBe(true);
    expect(writes.filter((r) => r.path.includes('/rlruns/')).every((r) => r.contentType === 'application/merge-patch+json')).toBe(true);
    expect(hooks.count('accept', 'alpha')).toBeGreaterThanOrEqual(1);
  });

  it('advances status and conditions, registers generator pods at their stable URLs', async () => {
    await h.kube.create(RLRUN, NS, rlrun('beta'));
    await eventually(async () => (await status('beta')).replicas?.generators.registered === 2, { what: 'generators registered' });
    expect([...(hooks.generators.get('beta') ?? new Map())]).toEqual([
      ['gen-0', 'http://beta-gen-0.beta-gen.default.svc:8000'],
      ['gen-1', 'http://beta-gen-1.beta-gen.default.svc:8000'],
    ]);
    await eventually(async () => (await condition('beta', 'GeneratorsReady')) === 'True' && (await condition('beta', 'TrainerReady')) === 'True', { what: 'ready conditions' });
    hooks.setProgress('beta', { phase: 'Running', trainerStep: 3, policyVersion: 3, minGeneratorVersion: 2, maxGeneratorVersion: 3, queueDepth: 5, meanAgeSteps: 0.75, tokens: 1000 });
    await h.clock.advance(5000, { stepMs: 5000 });
    await eventually(async () => (await status('beta')).progress?.trainerStep === 3, { what: 'progress', clock: h.clock, advanceMs: 1000 });
    const s = await status('beta');
    expect(s).toMatchObject({ phase: 'Running', observedGeneration: 1, runId: 'beta', progress: { policyVersion: 3, minGeneratorVersion: 2, maxGeneratorVersion: 3, queueDepth: 5, meanAgeSteps: 0.75 } });
    expect(s.conditions?.find((c) => c.type === 'Running')).toMatchObject({ status: 'True', reason: 'Running' });
    hooks.setProgress('beta', { phase: 'Succeeded', message: 'trained 10 steps', trainerStep: 10 });
    await eventually(async () => (await condition('beta', 'Complete')) === 'True', { what: 'Complete', clock: h.clock, advanceMs: 5000 });
    expect(await status('beta')).toMatchObject({ phase: 'Succeeded', completionTime: expect.any(String) });
    // Ended: generators and workers scaled to zero, the trainer Job gone.
    await eventually(async () => ((await get(STATEFULSET, 'beta-gen'))?.spec as any).replicas === 0, { what: 'scaled down' });
    const reasons = (await h.kube.list(EVENT, NS)).items.map((e) => e.reason);
    expect(reasons).toEqual(expect.arrayContaining(['Accepted', 'GeneratorRegistered', 'RunRunning', 'RunSucceeded']));
  });

  it('deletes through the finalizer: Redis state cleaned (injected), children garbage-collected', async () => {
    await h.kube.create(RLRUN, NS, rlrun('gamma'));
    await eventually(() => get(JOB, 'gamma-trainer'), { what: 'trainer Job' });
    await eventually(async () => h.controllers.pods(NS, { 'tandem.dev/run': 'gamma' }).length === 4, { what: 'pods' });
    await h.kube.delete(RLRUN, NS, 'gamma');
    await eventually(async () => (await get(RLRUN, 'gamma')) === undefined, { what: 'RLRun gone' });
    expect(hooks.count('cleanup', 'gamma')).toBe(1);
    for (const [type, name] of [[STATEFULSET, 'gamma-gen'], [JOB, 'gamma-trainer'], [DEPLOYMENT, 'gamma-rollout'], [SERVICE, 'gamma-gen'], [CONFIGMAP, 'gamma-run'], [PVC, 'gamma-checkpoints']] as const) {
      expect(await get(type, name)).toBeUndefined();
    }
    expect(h.controllers.pods(NS, { 'tandem.dev/run': 'gamma' })).toEqual([]);
  });

  it('keeps the checkpoint PVC as created when the spec changes what a claim cannot change, and goes on reconciling', async () => {
    await h.kube.create(RLRUN, NS, rlrun('kappa'));
    const pvc = await eventually(() => get(PVC, 'kappa-checkpoints'), { what: 'checkpoint PVC' });
    expect((pvc.spec as any).accessModes).toEqual(['ReadWriteOnce']);
    // Two trainer nodes would ask for ReadWriteMany and a bigger volume: a
    // real apiserver refuses both on an existing claim (the fake does too).
    const run = (await get(RLRUN, 'kappa')) as KubeObject;
    await h.kube.replace(RLRUN, NS, { ...run, spec: { ...(run.spec as object), generator: { replicas: 3, tensorParallelSize: 2 }, trainer: { numNodes: 2, procsPerNode: 4, checkpoint: { storage: { size: '200Gi' } } } } });
    await eventually(async () => ((await get(STATEFULSET, 'kappa-gen'))?.spec as any)?.replicas === 3, { what: 'the StatefulSet follows the spec' });
    expect((await get(PVC, 'kappa-checkpoints'))?.spec).toEqual(pvc.spec);
    expect(await condition('kappa', 'Failed')).not.toBe('True');
  });

  it('suspends (pods go, checkpoint PVC and run state stay) and resumes', async () => {
    await h.kube.create(RLRUN, NS, rlrun('delta'));
    await eventually(async () => (await status('delta')).replicas?.generators.registered === 2, { what: 'registered' });
    await h.kube.mergePatch(RLRUN, NS, 'delta', { spec: { suspend: true } });
    await eventually(async () => (await status('delta')).phase === 'Suspended', { what: 'Suspended' });
    await eventually(async () => h.controllers.pods(NS, { 'tandem.dev/run': 'delta' }).length === 0, { what: 'pods gone' });
    expect(await get(JOB, 'delta-trainer')).toBeUndefined();
    expect(await get(PVC, 'delta-checkpoints')).toBeDefined();
    expect(await condition('delta', 'Suspended')).toBe('True');
    expect(hooks.runs.has('delta')).toBe(true);
    expect(hooks.generators.get('delta')?.size ?? 0).toBe(0);
    await h.kube.mergePatch(RLRUN, NS, 'delta', { spec: { suspend: false } });
    await eventually(async () => (await status('delta')).replicas?.generators.registered === 2 && (await get(JOB, 'delta-trainer')) !== undefined, { what: 'resumed' });
    expect(await condition('delta', 'Suspended')).toBe('False');
    expect(((await get(JOB, 'delta-trainer'))?.spec as any).template.spec.volumes).toEqual(
      expect.arrayContaining([{ name: 'checkpoints', persistentVolumeClaim: { claimName: 'delta-checkpoints' } }]),
    );
  });

  it('a generator pod deleted mid-run is recreated and rejoins instead of failing the run', async () => {
    await h.kube.create(RLRUN, NS, rlrun('eps'));
    await eventually(async () => (await status('eps')).replicas?.generators.registered === 2, { what: 'registered' });
    const before = (await get(POD, 'eps-gen-1')) as KubeObject;
    await h.kube.delete(POD, NS, 'eps-gen-1');
    await eventually(async () => {
      const after = await get(POD, 'eps-gen-1');
      return after && after.metadata.uid !== before.metadata.uid;
    }, { what: 'pod recreated' });
    await eventually(async () => (await status('eps')).registeredGenerators?.find((g) => g.id === 'gen-1')?.podUID !== before.metadata.uid, { what: 're-registered' });
    expect(hooks.calls.filter((c) => c.op === 'register' && (c.args as string[])[0] === 'gen-1')).toHaveLength(2);
    expect(hooks.count('fail')).toBe(0);
    expect((await status('eps')).phase).not.toBe('Failed');
    expect((await h.kube.list(EVENT, NS)).items.map((e) => e.reason)).toContain('GeneratorRejoined');
  });

  it('applies the failure policy: container crashes count against maxRestarts, then fail the run', async () => {
    await h.kube.create(RLRUN, NS, rlrun('zeta', { failurePolicy: { maxRestarts: 1 } }));
    await eventually(async () => (await status('zeta')).replicas?.generators.registered === 2, { what: 'registered' });
    h.controllers.crashContainer(NS, 'zeta-gen-0');
    await eventually(async () => (await status('zeta')).restarts?.generator === 1, { what: 'first restart counted' });
    expect(hooks.count('fail', 'zeta')).toBe(0);
    // The restarted vLLM lost its weights: it registers again (joins at the next sync).
    await eventually(async () => hooks.calls.filter((c) => c.op === 'register' && (c.args as string[])[0] === 'gen-0').length === 2, { what: 're-register' });
    h.controllers.crashContainer(NS, 'zeta-gen-0');
    await eventually(async () => (await status('zeta')).phase === 'Failed', { what: 'failed' });
    const failed = (await status('zeta')).conditions?.find((c) => c.type === 'Failed');
    expect(failed).toMatchObject({ status: 'True', reason: 'RestartsExhausted' });
    expect(failed?.message).toMatch(/maxRestarts = 1/);
  });

  it('restarts a failed trainer (RestartRole), and RestartRun recreates every workload', async () => {
    await h.kube.create(RLRUN, NS, rlrun('eta', { failurePolicy: { maxRestarts: 3, rules: [{ role: 'trainer', action: 'RestartRole' }] } }));
    const job1 = (await eventually(() => get(JOB, 'eta-trainer'), { what: 'job' })) as KubeObject;
    const pod = await eventually(() => h.controllers.pods(NS, { 'tandem.dev/run': 'eta', 'tandem.dev/role': 'trainer' })[0], { what: 'trainer pod' });
    h.controllers.failPod(NS, pod.metadata.name as string);
    await eventually(async () => {
      const j = await get(JOB, 'eta-trainer');
      return j && j.metadata.uid !== job1.metadata.uid;
    }, { what: 'new trainer Job', clock: h.clock, advanceMs: 1000 });
    expect((await status('eta')).restarts).toMatchObject({ trainer: 1, run: 0 });
    expect((await status('eta')).handledTrainerFailure).toBe(job1.metadata.uid);

    await h.kube.mergePatch(RLRUN, NS, 'eta', { spec: { failurePolicy: { rules: [{ role: 'trainer', action: 'RestartRun' }] } } });
    const sts1 = (await get(STATEFULSET, 'eta-gen')) as KubeObject;
    const pod2 = await eventually(() => h.controllers.pods(NS, { 'tandem.dev/run': 'eta', 'tandem.dev/role': 'trainer' }).find((p) => (p.status as any)?.phase === 'Running'), { what: 'trainer pod 2' });
    h.controllers.failPod(NS, pod2.metadata.name as string);
    await eventually(async () => {
      const s = await get(STATEFULSET, 'eta-gen');
      return s && s.metadata.uid !== sts1.metadata.uid && (await status('eta')).replicas?.generators.registered === 2;
    }, { what: 'run restarted', clock: h.clock, advanceMs: 1000 });
    expect((await status('eta')).restarts).toMatchObject({ trainer: 1, run: 1 });
    expect((await h.kube.list(EVENT, NS)).items.map((e) => e.reason)).toEqual(expect.arrayContaining(['RoleRestarted', 'RestartingRun']));
  });

  it('reports an invalid spec on the status instead of creating anything', async () => {
    // Passes the CRD schema (structural), fails the zod rules (a cross-field check).
    await h.kube.create(RLRUN, NS, rlrun('theta', { algorithm: { batchGroups: 8 }, async: { queueCapacityGroups: 4 } }));
    await eventually(async () => (await status('theta')).phase === 'Failed', { what: 'Failed' });
    expect((await status('theta')).conditions?.find((c) => c.type === 'Failed')).toMatchObject({ reason: 'InvalidSpec', message: expect.stringContaining('spec.async.queueCapacityGroups') });
    expect(await get(STATEFULSET, 'theta-gen')).toBeUndefined();
    expect(hooks.count('accept', 'theta')).toBe(0);
  });

  it('survives dropped watches, 5xx and 410 Gone: relists and keeps reconciling', async () => {
    await h.kube.create(RLRUN, NS, rlrun('kappa'));
    await eventually(() => get(STATEFULSET, 'kappa-gen'), { what: 'reconciled' });
    await eventually(() => h.api.openWatches >= 5, { what: 'informers watching' });
    h.api.failNext({ status: 503, count: 10, match: (r) => r.query.includes('watch=1') });
    expect(h.api.dropWatches()).toBeGreaterThanOrEqual(5);
    await h.kube.mergePatch(RLRUN, NS, 'kappa', { spec: { generator: { replicas: 3 } } });
    h.api.store.compact(); // every informer's resourceVersion is now too old
    await eventually(async () => ((await get(STATEFULSET, 'kappa-gen'))?.spec as any)?.replicas === 3, { what: 'change reconciled after the faults', clock: h.clock, advanceMs: 500, timeoutMs: 10_000 });
    await eventually(() => Object.values(runtime.informerStats()).every((st) => st.relistsAfterGone >= 1), { what: 'every informer relisted', clock: h.clock, advanceMs: 500, timeoutMs: 10_000 });
    expect(Object.values(runtime.informerStats()).reduce((n, st) => n + st.errors, 0)).toBeGreaterThanOrEqual(5);
    // A run created after the faults is seen and reconciled.
    await h.kube.create(RLRUN, NS, rlrun('lambda'));
    await eventually(() => get(STATEFULSET, 'lambda-gen'), { what: 'new run reconciled' });
  });

  it('is idempotent: resyncs with nothing changed write nothing', async () => {
    await h.kube.create(RLRUN, NS, rlrun('iota'));
    await eventually(async () => (await condition('iota', 'GeneratorsReady')) === 'True', { what: 'ready' });
    // The first resync after tokens/s has two samples writes it once; after that, steady state.
    await h.clock.advance(10_000, { stepMs: 5000, realWaitMs: 20 });
    await runtime.idle();
    const writes = (): string[] => h.api.requests.filter((r) => r.method !== 'GET' && !r.path.includes('/leases/')).map((r) => `${r.method} ${r.path}`);
    const before = writes().length;
    await h.clock.advance(20_000, { stepMs: 5000, realWaitMs: 20 });
    await runtime.idle();
    expect(writes().slice(before)).toEqual([]);
  });
});

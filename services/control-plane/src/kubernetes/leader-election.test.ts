import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { KubernetesRuntime } from './kubernetes-runtime.js';
import { ENDPOINTSLICE, LEASE, RLRUN, STATEFULSET, type KubeObject } from './resources.js';
import type { FakeControlPlane } from './testing/fake-control-plane.js';
import { eventually, startKubeHarness, startReplica, type KubeHarness } from './testing/kube-harness.js';

/**
 * Two control-plane replicas over one Lease (15 s lease, 10 s renew
 * deadline, 2 s retry) on an injected clock: only the leader reconciles,
 * and when it dies the other takes over within 20 s of the lease expiring
 * — without any real waiting.
 */

const NS = 'default';
let h: KubeHarness;
let a: KubernetesRuntime;
let b: KubernetesRuntime;
let hooksB: FakeControlPlane;

function rlrun(name: string): KubeObject {
  return {
    metadata: { name, namespace: NS },
    spec: { model: { name: 'm' }, dataset: { source: 'builtin', name: 'arithmetic' }, reward: { kind: 'numeric' }, maxSteps: 5, generator: { replicas: 1 } },
  };
}

const holder = async (): Promise<string | undefined> => ((await h.kube.get(LEASE, NS, 'tandem-control-plane'))?.spec as { holderIdentity?: string } | undefined)?.holderIdentity;
const renewTime = async (): Promise<number> => Date.parse(((await h.kube.get(LEASE, NS, 'tandem-control-plane'))?.spec as { renewTime: string }).renewTime);

beforeEach(async () => {
  h = await startKubeHarness();
  a = startReplica(h, 'cp-a', { podIp: '10.0.0.1' }).runtime;
  await eventually(() => a.isLeader(), { what: 'cp-a leads' });
  ({ runtime: b, hooks: hooksB } = startReplica(h, 'cp-b', { podIp: '10.0.0.2' }));
  // cp-b has looked at the lease (and found it held) at least once.
  await h.clock.advance(2000, { stepMs: 500, realWaitMs: 5 });
});

afterEach(async () => {
  await a?.stop();
  await b?.stop();
  await h?.stop();
});

/** Advances in small steps until `done`, asserting at every step that there is never more than one leader. */
async function advanceUntil(done: () => boolean | Promise<boolean>, limitMs: number): Promise<number> {
  const start = h.clock.now();
  while (!(await done())) {
    expect(a.isLeader() && b.isLeader()).toBe(false);
    if (h.clock.now() - start > limitMs) throw new Error(`not done after ${limitMs} ms of clock time`);
    await h.clock.advance(250, { stepMs: 250, realWaitMs: 3 });
  }
  return h.clock.now() - start;
}

const leaderIp = async (): Promise<string | undefined> => ((await h.kube.get(ENDPOINTSLICE, NS, 'tandem-control-plane-leader')) as any)?.endpoints?.[0]?.addresses?.[0];

describe('leader election', () => {
  it('only the leader reconciles, and publishes its address for trainers', async () => {
    const slice = (await eventually(() => h.kube.get(ENDPOINTSLICE, NS, 'tandem-control-plane-leader'), { what: 'leader EndpointSlice' })) as any;
    expect(slice).toMatchObject({ metadata: { labels: { 'kubernetes.io/service-name': 'tandem-control-plane-leader' } }, addressType: 'IPv4', endpoints: [{ addresses: ['10.0.0.1'] }], ports: [{ name: 'grpc', port: 50051 }] });
    expect(b.isLeader()).toBe(false);
    expect(await holder()).toBe('cp-a');
    await h.kube.create(RLRUN, NS, rlrun('one'));
    await eventually(() => h.kube.get(STATEFULSET, NS, 'one-gen'), { what: 'reconciled' });
    const applies = h.api.requests.filter((r) => r.method === 'PATCH' && r.fieldManager === 'tandem-control-plane');
    expect(applies.length).toBeGreaterThan(0);
    // cp-b never opened a watch or wrote anything but lease reads: it is not leading.
    expect(b.informerStats()).toEqual({});
  });

  it('fails over within 20 s of lease expiry when the leader dies', async () => {
    await h.kube.create(RLRUN, NS, rlrun('one'));
    await eventually(() => h.kube.get(STATEFULSET, NS, 'one-gen'), { what: 'reconciled by cp-a' });
    const lastRenew = await renewTime();
    await a.stop({ releaseLease: false }); // a crash: the lease is left to expire
    const expiry = lastRenew + 15_000;
    await advanceUntil(() => b.isLeader(), 40_000);
    expect(h.clock.now()).toBeLessThanOrEqual(expiry + 20_000);
    expect(h.clock.now()).toBeGreaterThanOrEqual(expiry); // not before it expired
    expect(await holder()).toBe('cp-b');
    expect((await h.kube.get(LEASE, NS, 'tandem-control-plane'))?.spec).toMatchObject({ leaseTransitions: 1, leaseDurationSeconds: 15 });
    // The new leader reconciles: an existing run's change and a new run.
    await h.kube.mergePatch(RLRUN, NS, 'one', { spec: { generator: { replicas: 3 } } });
    await h.kube.create(RLRUN, NS, rlrun('two'));
    await eventually(async () => ((await h.kube.get(STATEFULSET, NS, 'one-gen'))?.spec as any)?.replicas === 3 && (await h.kube.get(STATEFULSET, NS, 'two-gen')) !== undefined, { what: 'cp-b reconciles' });
    // cp-b registers every generator again: the transfer group forms in its process.
    await eventually(() => hooksB.generators.get('one')?.size === 3, { what: 'generators registered with cp-b' });
    // Trainers now reach cp-b through the leader Service.
    await eventually(async () => (await leaderIp()) === '10.0.0.2', { what: 'leader address moves to cp-b', clock: h.clock, advanceMs: 5000 });
  });

  it('a leader that cannot renew steps down within the renew deadline, before anyone else may lead', async () => {
    const lastRenew = await renewTime();
    h.api.failNext({ status: 500, count: 1_000_000, match: (r) => r.path.includes('/leases/') && r.method === 'PUT' && r.body?.includes('"cp-a"') === true });
    const took = await advanceUntil(() => !a.isLeader(), 20_000);
    expect(took).toBeLessThanOrEqual(10_000 + 2_000);
    expect(b.isLeader()).toBe(false);
    await advanceUntil(() => b.isLeader(), 40_000);
    expect(h.clock.now()).toBeGreaterThanOrEqual(lastRenew + 15_000);
    expect(h.clock.now()).toBeLessThanOrEqual(lastRenew + 15_000 + 20_000);
  });

  it('a graceful stop hands the lease over at the next retry', async () => {
    await a.stop();
    const took = await advanceUntil(() => b.isLeader(), 10_000);
    expect(took).toBeLessThanOrEqual(2_500);
  });
});

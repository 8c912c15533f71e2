import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { rlrunCrd } from '../crd/rlrun-crd.js';
import { HttpKubeApi, KubeApiError } from '../kube-client.js';
import { CONFIGMAP, LEASE, POD, RLRUN, type KubeObject, type WatchEvent } from '../resources.js';
import { FakeApiServer } from './fake-apiserver.js';

/**
 * The fake apiserver's own contract: the apiserver behaviours the
 * controller relies on. If one of these is wrong, the controller tests
 * prove nothing.
 */

const NS = 'default';
let api: FakeApiServer;
let kube: HttpKubeApi;

beforeEach(async () => {
  api = await FakeApiServer.start({ crds: [rlrunCrd()], historyLimit: 50 });
  kube = new HttpKubeApi({ server: api.url, namespace: NS });
});
afterEach(async () => {
  await api?.stop();
});

const spec = { model: { name: 'm' }, dataset: { source: 'builtin', name: 'arithmetic' }, reward: { kind: 'numeric' }, maxSteps: 3 };
const rlrun = (name: string, extra: Record<string, unknown> = {}): KubeObject => ({ metadata: { name, namespace: NS }, spec: { ...spec, ...extra } });
const cm = (name: string, data: Record<string, string> = { a: '1' }, meta: Partial<KubeObject['metadata']> = {}): KubeObject => ({ metadata: { name, namespace: NS, ...meta }, data });

async function raw(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: any; headers: Headers }> {
  const res = await fetch(`${api.url}${path}`, {
    method,
    headers: { 'content-type': 'application/json', ...headers },
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined, headers: res.headers };
}

async function expectStatus(p: Promise<unknown>, code: number, reason?: string): Promise<KubeApiError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(KubeApiError);
  expect((err as KubeApiError).code).toBe(code);
  if (reason) expect((err as KubeApiError).reason).toBe(reason);
  return err as KubeApiError;
}

describe('fake apiserver: objects', () => {
  it('serves discovery for kubectl', async () => {
    expect((await raw('GET', '/apis')).json.groups.map((g: any) => g.name)).toEqual(expect.arrayContaining(['apps', 'batch', 'coordination.k8s.io', 'tandem.dev']));
    const rl = (await raw('GET', '/apis/tandem.dev/v1alpha1')).json;
    expect(rl.resources.map((r: any) => r.name)).toEqual(['rlruns', 'rlruns/status']);
    expect(rl.resources[0]).toMatchObject({ kind: 'RLRun', namespaced: true, shortNames: ['rlr'] });
    expect((await raw('GET', '/api/v1')).json.resources.map((r: any) => r.name)).toEqual(expect.arrayContaining(['pods', 'pods/status', 'services', 'configmaps', 'events']));
  });

  it('increases resourceVersion monotonically and answers 409 to a stale update', async () => {
    const a = await kube.create(CONFIGMAP, NS, cm('a'));
    const b = await kube.create(RLRUN, NS, rlrun('b'));
    expect(Number(b.metadata.resourceVersion)).toBeGreaterThan(Number(a.metadata.resourceVersion));
    const updated = await kube.replace(CONFIGMAP, NS, { ...a, data: { a: '2' } });
    expect(Number(updated.metadata.resourceVersion)).toBeGreaterThan(Number(b.metadata.resourceVersion));
    const err = await expectStatus(kube.replace(CONFIGMAP, NS, { ...a, data: { a: '3' } }), 409, 'Conflict');
    expect(err.message).toMatch(/the object has been modified/);
    // A merge patch naming a stale resourceVersion is conditional too.
    await expectStatus(kube.mergePatch(CONFIGMAP, NS, 'a', { metadata: { resourceVersion: a.metadata.resourceVersion }, data: { a: '4' } }), 409);
    await expectStatus(kube.create(CONFIGMAP, NS, cm('a')), 409, 'AlreadyExists');
    await expectStatus(kube.replace(CONFIGMAP, NS, cm('missing')), 404, 'NotFound');
  });

  it('bumps metadata.generation on spec changes only; the status subresource owns status', async () => {
    const o = await kube.create(RLRUN, NS, { ...rlrun('g'), status: { phase: 'Running' } });
    expect(o.metadata.generation).toBe(1);
    expect(o.status).toBeUndefined(); // status on create is dropped
    const labelled = await kube.mergePatch(RLRUN, NS, 'g', { metadata: { labels: { x: 'y' } } });
    expect(labelled.metadata.generation).toBe(1);
    const withStatus = await kube.mergePatch(RLRUN, NS, 'g', { status: { phase: 'Running' } }, { subresource: 'status' });
    expect(withStatus.metadata.generation).toBe(1);
    expect(withStatus.status).toEqual({ phase: 'Running' });
    const ignored = await kube.mergePatch(RLRUN, NS, 'g', { status: { phase: 'Failed' } });
    expect(ignored.status).toEqual({ phase: 'Running' }); // the main resource ignores status
    const specChanged = await kube.mergePatch(RLRUN, NS, 'g', { spec: { maxSteps: 4 } });
    expect(specChanged.metadata.generation).toBe(2);
    const statusIgnoresSpec = await kube.mergePatch(RLRUN, NS, 'g', { spec: { maxSteps: 9 }, status: { phase: 'Pending' } }, { subresource: 'status' });
    expect(statusIgnoresSpec).toMatchObject({ spec: { maxSteps: 4 }, status: { phase: 'Pending' }, metadata: { generation: 2 } });
  });

  it('applies JSON merge patch and JSON patch, refuses strategic merge patch for custom resources (415)', async () => {
    await kube.create(RLRUN, NS, rlrun('p'));
    await kube.create(CONFIGMAP, NS, cm('p', { a: '1', b: '2' }));
    expect((await kube.mergePatch(CONFIGMAP, NS, 'p', { data: { a: null, c: '3' } })).data).toEqual({ b: '2', c: '3' });
    const jp = await raw('PATCH', `/api/v1/namespaces/${NS}/configmaps/p`, [{ op: 'replace', path: '/data/b', value: '9' }], { 'content-type': 'application/json-patch+json' });
    expect(jp.json.data).toEqual({ b: '9', c: '3' });
    const smp = await raw('PATCH', `/apis/tandem.dev/v1alpha1/namespaces/${NS}/rlruns/p`, { spec: { maxSteps: 5 } }, { 'content-type': 'application/strategic-merge-patch+json' });
    expect(smp.status).toBe(415);
    expect(smp.json).toMatchObject({ kind: 'Status', reason: 'UnsupportedMediaType', code: 415 });
    const smpBuiltin = await raw('PATCH', `/api/v1/namespaces/${NS}/configmaps/p`, { data: { d: '4' } }, { 'content-type': 'application/strategic-merge-patch+json' });
    expect(smpBuiltin.status).toBe(200);
  });

  it('server-side apply: creates, is a no-op when unchanged, removes dropped fields, detects conflicts, force takes over', async () => {
    const first = await kube.apply(CONFIGMAP, NS, cm('s', { a: '1', b: '2' }), { fieldManager: 'ctrl' });
    const again = await kube.apply(CONFIGMAP, NS, cm('s', { a: '1', b: '2' }), { fieldManager: 'ctrl' });
    expect(again.metadata.resourceVersion).toBe(first.metadata.resourceVersion);
    const dropped = await kube.apply(CONFIGMAP, NS, cm('s', { a: '1' }), { fieldManager: 'ctrl' });
    expect(dropped.data).toEqual({ a: '1' });
    const conflict = await expectStatus(kube.apply(CONFIGMAP, NS, cm('s', { a: 'other' }), { fieldManager: 'someone-else' }), 409, 'Conflict');
    expect(conflict.status?.details?.causes?.[0]).toMatchObject({ reason: 'FieldManagerConflict', field: '.data.a' });
    const forced = await kube.apply(CONFIGMAP, NS, cm('s', { a: 'other' }), { fieldManager: 'someone-else', force: true });
    expect(forced.data).toEqual({ a: 'other' });
    const noManager = await raw('PATCH', `/api/v1/namespaces/${NS}/configmaps/s`, JSON.stringify(cm('s')), { 'content-type': 'application/apply-patch+yaml' });
    expect(noManager.status).toBe(400);
  });

  it('filters lists and watches by label selector', async () => {
    await kube.create(CONFIGMAP, NS, cm('x1', {}, { labels: { run: 'x', role: 'a' } }));
    await kube.create(CONFIGMAP, NS, cm('x2', {}, { labels: { run: 'x', role: 'b' } }));
    await kube.create(CONFIGMAP, NS, cm('y1', {}, { labels: { run: 'y' } }));
    const names = async (sel: string): Promise<string[]> => (await kube.list(CONFIGMAP, NS, { labelSelector: sel })).items.map((o) => o.metadata.name as string);
    expect(await names('run=x')).toEqual(['x1', 'x2']);
    expect(await names('run=x,role!=a')).toEqual(['x2']);
    expect(await names('run in (x,y),!role')).toEqual(['y1']);
    expect(await names('role')).toEqual(['x1', 'x2']);
    const events: string[] = [];
    const ctrl = new AbortController();
    const watching = kube.watch(CONFIGMAP, NS, { labelSelector: 'run=y' }, (e) => events.push(`${e.type} ${e.object.metadata.name}`), ctrl.signal).catch(() => undefined);
    await kube.create(CONFIGMAP, NS, cm('x3', {}, { labels: { run: 'x' } }));
    await kube.create(CONFIGMAP, NS, cm('y2', {}, { labels: { run: 'y' } }));
    await until(() => events.includes('ADDED y2'));
    ctrl.abort();
    await watching;
    expect(events).toEqual(['ADDED y1', 'ADDED y2']);
  });
});

describe('fake apiserver: watches', () => {
  it('resumes from a resourceVersion, and answers 410 Gone once history has moved past it', async () => {
    const a = await kube.create(CONFIGMAP, NS, cm('a'));
    await kube.create(CONFIGMAP, NS, cm('b'));
    const events: WatchEvent[] = [];
    const ctrl = new AbortController();
    const w = kube.watch(CONFIGMAP, NS, { resourceVersion: a.metadata.resourceVersion as string }, (e) => events.push(e), ctrl.signal).catch(() => undefined);
    await until(() => events.length === 1);
    ctrl.abort();
    await w;
    expect(events.map((e) => `${e.type} ${e.object.metadata.name}`)).toEqual(['ADDED b']);
    // 60 more writes with a history of 50: version `a` is gone.
    for (let i = 0; i < 60; i++) await kube.mergePatch(CONFIGMAP, NS, 'b', { data: { a: String(i) } });
    const err = await expectStatus(kube.watch(CONFIGMAP, NS, { resourceVersion: a.metadata.resourceVersion as string }, () => undefined, new AbortController().signal), 410, 'Expired');
    expect(err.message).toMatch(/too old resource version/);
  });

  it('sends bookmarks when asked, and ends a watch after timeoutSeconds', async () => {
    const bookmarks: string[] = [];
    const slow = await FakeApiServer.start({ bookmarkIntervalMs: 20 });
    try {
      const k = new HttpKubeApi({ server: slow.url, namespace: NS });
      const started = Date.now();
      await k.watch(CONFIGMAP, NS, { allowWatchBookmarks: true, timeoutSeconds: 1 }, (e) => e.type === 'BOOKMARK' && bookmarks.push(e.object.metadata.resourceVersion as string), new AbortController().signal);
      expect(Date.now() - started).toBeGreaterThanOrEqual(900);
      expect(bookmarks.length).toBeGreaterThan(5);
    } finally {
      await slow.stop();
    }
  });

  it('injects faults: 5xx answers, dropped and stalled watches', async () => {
    api.failNext({ status: 503, count: 2, match: (r) => r.method === 'GET' });
    await expectStatus(kube.list(CONFIGMAP, NS), 503, 'ServiceUnavailable');
    await expectStatus(kube.get(CONFIGMAP, NS, 'x'), 503);
    expect((await kube.list(CONFIGMAP, NS)).items).toEqual([]);
    const ctrl = new AbortController();
    const events: string[] = [];
    const ended = kube.watch(CONFIGMAP, NS, {}, (e) => events.push(e.object.metadata.name as string), ctrl.signal).then(() => 'ended', (e: unknown) => `failed: ${(e as Error).message}`);
    await until(() => api.openWatches === 1);
    api.stallWatches();
    await kube.create(CONFIGMAP, NS, cm('unseen'));
    await new Promise((r) => setTimeout(r, 50));
    expect(events).toEqual([]);
    expect(api.dropWatches()).toBe(1);
    expect(await ended).toMatch(/ended|failed/);
  });
});

describe('fake apiserver: deletion', () => {
  it('holds an object with finalizers until they are removed, and refuses new finalizers meanwhile', async () => {
    await kube.create(RLRUN, NS, { ...rlrun('f'), metadata: { name: 'f', namespace: NS, finalizers: ['tandem.dev/cleanup'] } });
    await kube.delete(RLRUN, NS, 'f');
    const deleting = (await kube.get(RLRUN, NS, 'f')) as KubeObject;
    expect(deleting.metadata.deletionTimestamp).toBeDefined();
    const err = await expectStatus(kube.mergePatch(RLRUN, NS, 'f', { metadata: { finalizers: ['tandem.dev/cleanup', 'other'] } }), 422, 'Invalid');
    expect(err.message).toMatch(/no new finalizers/);
    await kube.mergePatch(RLRUN, NS, 'f', { metadata: { finalizers: [] } });
    expect(await kube.get(RLRUN, NS, 'f')).toBeUndefined();
  });

  it('garbage-collects dependents by ownerReference (background), keeps them with Orphan', async () => {
    const owner = await kube.create(RLRUN, NS, rlrun('owner'));
    const ref = { apiVersion: 'tandem.dev/v1alpha1', kind: 'RLRun', name: 'owner', uid: owner.metadata.uid as string, controller: true };
    await kube.create(CONFIGMAP, NS, cm('dep', {}, { ownerReferences: [ref] }));
    const pod = { metadata: { name: 'grandchild', namespace: NS, ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'dep', uid: (await kube.get(CONFIGMAP, NS, 'dep'))?.metadata.uid as string }] }, spec: { containers: [{ name: 'c', image: 'i' }] } };
    await kube.create(POD, NS, pod);
    await kube.delete(RLRUN, NS, 'owner');
    expect(await kube.get(CONFIGMAP, NS, 'dep')).toBeUndefined();
    expect(await kube.get(POD, NS, 'grandchild')).toBeUndefined();

    const owner2 = await kube.create(RLRUN, NS, rlrun('owner2'));
    await kube.create(CONFIGMAP, NS, cm('kept', {}, { ownerReferences: [{ ...ref, name: 'owner2', uid: owner2.metadata.uid as string }] }));
    await kube.delete(RLRUN, NS, 'owner2', { propagationPolicy: 'Orphan' });
    expect((await kube.get(CONFIGMAP, NS, 'kept'))?.metadata.ownerReferences).toBeUndefined();
  });

  it('serves Leases with optimistic concurrency', async () => {
    const lease = await kube.create(LEASE, NS, { metadata: { name: 'l', namespace: NS }, spec: { holderIdentity: 'a', leaseDurationSeconds: 15 } });
    await kube.replace(LEASE, NS, { ...lease, spec: { holderIdentity: 'b', leaseDurationSeconds: 15 } });
    await expectStatus(kube.replace(LEASE, NS, { ...lease, spec: { holderIdentity: 'c', leaseDurationSeconds: 15 } }), 409);
    expect(((await kube.get(LEASE, NS, 'l'))?.spec as any).holderIdentity).toBe('b');
  });
});

describe('fake apiserver: CRD validation', () => {
  it('rejects invalid RLRuns with 422 naming each field, in the apiserver\'s words', async () => {
    const bad = await raw('POST', `/apis/tandem.dev/v1alpha1/namespaces/${NS}/rlruns`, {
      apiVersion: 'tandem.dev/v1alpha1',
      kind: 'RLRun',
      metadata: { name: 'bad' },
      spec: { ...spec, maxSteps: 0, reward: { kind: 'regex' }, generator: { replicas: 'two', resources: { limits: { 'nvidia.com/gpu': 'lots' } } } },
    });
    expect(bad.status).toBe(422);
    expect(bad.json).toMatchObject({ kind: 'Status', reason: 'Invalid', code: 422, details: { name: 'bad', group: 'tandem.dev', kind: 'RLRun' } });
    const fields = bad.json.details.causes.map((c: any) => c.field);
    expect(fields).toEqual(expect.arrayContaining(['spec.maxSteps', 'spec.reward.pattern', 'spec.generator.replicas', 'spec.generator.resources.limits[nvidia.com/gpu]']));
    expect(bad.json.message).toContain('spec.maxSteps: Invalid value: 0: spec.maxSteps in body should be greater than or equal to 1');
    expect(bad.json.message).toContain('spec.reward.pattern: Required value');
    expect(bad.json.message).toContain('spec.generator.replicas: Invalid value: "two": spec.generator.replicas in body must be of type integer: "string"');
    const wrongKind = await raw('POST', `/apis/tandem.dev/v1alpha1/namespaces/${NS}/rlruns`, { metadata: { name: 'bad2' }, spec: { ...spec, dataset: { source: 'csv' } } });
    expect(wrongKind.json.details.causes[0]).toMatchObject({ field: 'spec.dataset.source', reason: 'FieldValueNotSupported' });
    const longName = await raw('POST', `/apis/tandem.dev/v1alpha1/namespaces/${NS}/rlruns`, { metadata: { name: 'x'.repeat(41) }, spec });
    expect(longName.json.details.causes[0]).toMatchObject({ field: 'metadata.name', reason: 'FieldValueTooLong' });
    // The run's Services are named after it: a name must start with a letter (DNS-1035).
    const digitFirst = await raw('POST', `/apis/tandem.dev/v1alpha1/namespaces/${NS}/rlruns`, { metadata: { name: '42-exp' }, spec });
    expect(digitFirst.json.details.causes[0]).toMatchObject({ field: 'metadata.name', reason: 'FieldValueInvalid' });
    expect(await kube.list(RLRUN, NS)).toMatchObject({ items: [] });
  });

  it('handles unknown fields as fieldValidation asks: Strict refuses, Warn prunes with a warning', async () => {
    const body = { metadata: { name: 'u' }, spec: { ...spec, maxStep: 3 } };
    const strict = await raw('POST', `/apis/tandem.dev/v1alpha1/namespaces/${NS}/rlruns?fieldValidation=Strict`, body);
    expect(strict.status).toBe(400);
    expect(strict.json.message).toMatch(/strict decoding error: unknown field "spec.maxStep"/);
    const warn = await raw('POST', `/apis/tandem.dev/v1alpha1/namespaces/${NS}/rlruns`, body);
    expect(warn.status).toBe(201);
    expect(warn.headers.get('warning')).toContain('unknown field \\"spec.maxStep\\"');
    expect(warn.json.spec.maxStep).toBeUndefined();
  });
});

async function until(check: () => boolean, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 5));
  }
}

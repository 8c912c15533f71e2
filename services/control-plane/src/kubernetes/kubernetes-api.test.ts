import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { credentials, type ServiceError } from '@grpc/grpc-js';
import { Redis } from 'ioredis';
import { RunServiceClient, type Run } from '@tandem/protocol';
import type { ControlPlane } from '../control-plane.js';
import { TINY_RUN_SPEC, startTestControlPlane, type TestControlPlane } from '../testing/test-control-plane.js';
import { rlrunCrd } from './crd/rlrun-crd.js';
import { HttpKubeApi } from './kube-client.js';
import { RLRUN, STATEFULSET, type KubeObject } from './resources.js';
import { CANCEL_ANNOTATION } from './rlrun-reconciler.js';
import { FakeApiServer } from './testing/fake-apiserver.js';
import { eventually } from './testing/kube-harness.js';

/**
 * The API façade with TANDEM_RUNTIME=kubernetes: a real control plane
 * (real Redis, HTTP and gRPC on 127.0.0.1:0) against the fake apiserver.
 * `POST /v1/runs` and `SubmitRun` create RLRuns, which the leader's
 * reconciler accepts; RLRuns made with kubectl show up in the API; cancel
 * and scale change the RLRun; deleting it removes the run's Redis state.
 */

const NS = 'default';
let cp: TestControlPlane;
let api: FakeApiServer;
let kube: HttpKubeApi;
let plane: ControlPlane;
let http: string;
let grpc: RunServiceClient;
let r: Redis;

const spec = { ...TINY_RUN_SPEC, generator: { replicas: 1, tensorParallelSize: 2 }, trainer: { numNodes: 1, procsPerNode: 2 } };

beforeAll(async () => {
  api = await FakeApiServer.start({ crds: [rlrunCrd()] });
  kube = new HttpKubeApi({ server: api.url, namespace: NS });
  cp = await startTestControlPlane(
    { TANDEM_RUNTIME: 'kubernetes', TANDEM_KUBERNETES_NAMESPACE: NS, TANDEM_POD_NAME: 'cp-test-0', TANDEM_STATUS_INTERVAL_MS: '200' },
    { kubeApi: kube },
  );
  ({ plane, httpUrl: http } = cp);
  r = new Redis(cp.redis.url);
  grpc = new RunServiceClient(cp.grpcAddress, credentials.createInsecure());
  await eventually(() => plane.kubernetes?.isLeader(), { what: 'leadership' });
});

afterAll(async () => {
  grpc?.close();
  r?.disconnect();
  await cp?.stop();
  await api?.stop();
});

async function httpJson(method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(`${http}${path}`, { method, headers: { 'content-type': 'application/json' }, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
  return { status: res.status, json: await res.json() };
}

function unary<Res>(invoke: (cb: (err: ServiceError | null, res: Res) => void) => unknown): Promise<Res> {
  return new Promise((resolve, reject) => invoke((err, res) => (err ? reject(err) : resolve(res))));
}

const accepted = async (id: string): Promise<boolean> => (await r.exists(`tandem:{${id}}:record`)) === 1;

describe('API façade over RLRuns', () => {
  it('POST /v1/runs creates an RLRun; the leader accepts it and reconciles it', async () => {
    const res = await httpJson('POST', '/v1/runs', { spec, runId: 'via-http' });
    expect(res.status).toBe(201);
    expect(res.json).toMatchObject({ id: 'via-http', status: { phase: 'Pending' } });
    const o = (await kube.get(RLRUN, NS, 'via-http')) as KubeObject;
    expect(o.metadata.labels).toMatchObject({ 'tandem.dev/submitted-through': 'api' });
    expect(o.spec).toMatchObject({ maxSteps: 3, trainer: { numNodes: 1, procsPerNode: 2 }, generator: { tensorParallelSize: 2 } });
    await eventually(() => accepted('via-http'), { what: 'accepted into Redis' });
    await eventually(() => kube.get(STATEFULSET, NS, 'via-http-gen'), { what: 'children' });
    await eventually(async () => ((await kube.get(RLRUN, NS, 'via-http'))?.status as any)?.runId === 'via-http', { what: 'status' });
    const got = await httpJson('GET', '/v1/runs/via-http');
    expect(got.json.spec.trainer).toMatchObject({ numNodes: 1, procsPerNode: 2 });
  });

  it('SubmitRun (gRPC) does the same', async () => {
    const run = await unary<Run>((cb) => grpc.submitRun({ spec, runId: 'via-grpc', namespace: '' }, cb));
    expect(run.id).toBe('via-grpc');
    expect(await kube.get(RLRUN, NS, 'via-grpc')).toBeDefined();
    await eventually(() => accepted('via-grpc'), { what: 'accepted' });
  });

  it('an RLRun made with kubectl shows up in GET /v1/runs', async () => {
    await kube.create(RLRUN, NS, { metadata: { name: 'via-kubectl', namespace: NS }, spec });
    await eventually(() => accepted('via-kubectl'), { what: 'accepted' });
    const list = await httpJson('GET', '/v1/runs');
    expect(list.json.runs.map((x: any) => x.id)).toEqual(expect.arrayContaining(['via-http', 'via-grpc', 'via-kubectl']));
  });

  it('refuses bad submissions with the field named, creating nothing', async () => {
    const long = await httpJson('POST', '/v1/runs', { spec, runId: 'x'.repeat(41) });
    expect(long.status).toBe(400);
    expect(long.json.error.fieldViolations[0]).toMatchObject({ path: 'runId' });
    const typo = await httpJson('POST', '/v1/runs', { spec: { ...spec, trainer: { numNode: 2 } } });
    expect(typo.status).toBe(400);
    expect(typo.json.error.message).toContain('numNode');
    const dup = await httpJson('POST', '/v1/runs', { spec, runId: 'via-http' });
    expect(dup.status).toBe(409);
    expect(dup.json.error.code).toBe('ALREADY_EXISTS');
  });

  it('scale and cancel change the RLRun', async () => {
    const scaled = await httpJson('POST', '/v1/runs/via-http:scale', { generators: 3 });
    expect(scaled.status).toBe(200);
    expect(((await kube.get(RLRUN, NS, 'via-http'))?.spec as any).generator.replicas).toBe(3);
    await eventually(async () => ((await kube.get(STATEFULSET, NS, 'via-http-gen'))?.spec as any)?.replicas === 3, { what: 'StatefulSet scaled' });
    const cancelled = await httpJson('POST', '/v1/runs/via-http:cancel', { reason: 'enough' });
    expect(cancelled.json.status.phase).toBe('Cancelled');
    expect((await kube.get(RLRUN, NS, 'via-http'))?.metadata.annotations?.[CANCEL_ANNOTATION]).toBe('enough');
    await eventually(async () => ((await kube.get(RLRUN, NS, 'via-http'))?.status as any)?.phase === 'Cancelled', { what: 'RLRun Cancelled' });
    await eventually(async () => ((await kube.get(STATEFULSET, NS, 'via-http-gen'))?.spec as any)?.replicas === 0, { what: 'scaled to zero' });
  });

  it('deleting the RLRun removes the run from Redis (finalizer) and from the API', async () => {
    expect(await accepted('via-grpc')).toBe(true);
    await kube.delete(RLRUN, NS, 'via-grpc');
    await eventually(async () => (await kube.get(RLRUN, NS, 'via-grpc')) === undefined, { what: 'RLRun gone', timeoutMs: 15_000 });
    expect(await r.keys('tandem:{via-grpc}:*')).toEqual([]);
    expect(await r.zscore('tandem:runs', 'via-grpc')).toBeNull();
    expect((await httpJson('GET', '/v1/runs/via-grpc')).status).toBe(404);
  });
});

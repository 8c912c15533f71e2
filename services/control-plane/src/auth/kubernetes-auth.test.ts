import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import type { ControlPlane } from '../control-plane.js';
import { TINY_RUN_SPEC, startTestControlPlane, type TestControlPlane } from '../testing/test-control-plane.js';
import { rlrunCrd } from '../kubernetes/crd/rlrun-crd.js';
import { HttpKubeApi } from '../kubernetes/kube-client.js';
import { DEPLOYMENT, JOB, SECRET, type KubeObject } from '../kubernetes/resources.js';
import { FakeApiServer } from '../kubernetes/testing/fake-apiserver.js';
import { eventually } from '../kubernetes/testing/kube-harness.js';

/**
 * The kubernetes runtime with TANDEM_AUTH_TOKEN_REVIEW=true against the
 * fake apiserver (which serves TokenReview): service-account tokens act in
 * their own namespace, `tandem:<role>:<ns>` groups grant roles, anything
 * else is refused; accepted runs get a credentials Secret that the trainer
 * and the rollout workers read, and no pod spec holds a secret value.
 */

const NS = 'team-k';
let cp: TestControlPlane;
let admin: Redis;
let api: FakeApiServer;
let plane: ControlPlane;
let http: string;

const spec = { ...TINY_RUN_SPEC, generator: { replicas: 1, tensorParallelSize: 2 }, trainer: { numNodes: 1, procsPerNode: 2 } };

const TOKENS = { sa: 'sa-token-of-team-k', otherSa: 'sa-token-of-team-z', viewer: 'oidc-token-viewer', nobody: 'oidc-token-no-groups' };

beforeAll(async () => {
  api = await FakeApiServer.start({ crds: [rlrunCrd()] });
  api.tokenReviewUsers.set(TOKENS.sa, { username: `system:serviceaccount:${NS}:runner`, groups: ['system:serviceaccounts'] });
  api.tokenReviewUsers.set(TOKENS.otherSa, { username: 'system:serviceaccount:team-z:runner' });
  api.tokenReviewUsers.set(TOKENS.viewer, { username: 'vera', groups: [`tandem:viewer:${NS}`] });
  api.tokenReviewUsers.set(TOKENS.nobody, { username: 'nora', groups: ['developers'] });
  cp = await startTestControlPlane(
    { TANDEM_RUNTIME: 'kubernetes', TANDEM_KUBERNETES_NAMESPACE: NS, TANDEM_POD_NAME: 'cp-auth-0', TANDEM_STATUS_INTERVAL_MS: '200', TANDEM_AUTH_TOKEN_REVIEW: 'true' },
    { kubeApi: new HttpKubeApi({ server: api.url, namespace: NS }) },
  );
  ({ plane, httpUrl: http } = cp);
  admin = new Redis(cp.redis.url);
  await eventually(() => plane.kubernetes?.isLeader(), { what: 'leadership' });
}, 60_000);

afterAll(async () => {
  admin?.disconnect();
  await cp?.stop();
  await api?.stop();
});

async function call(method: string, path: string, token: string | undefined, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(`${http}${path}`, {
    method,
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, json: await res.json() };
}

describe('TokenReview authentication (kubernetes runtime)', () => {
  it('a service account submits runs in its own namespace; the run belongs to it', async () => {
    const res = await call('POST', '/v1/runs', TOKENS.sa, { spec, runId: 'k-run' });
    expect(res.status, JSON.stringify(res.json)).toBe(201);
    expect(res.json.namespace).toBe(NS);
    expect(api.requests.some((r) => r.path === '/apis/authentication.k8s.io/v1/tokenreviews' && r.method === 'POST')).toBe(true);
  });

  it('a service account of another namespace, a user without tandem groups, and unknown tokens are refused', async () => {
    const other = await call('GET', '/v1/runs/k-run', TOKENS.otherSa);
    expect(other.status).toBe(403);
    expect(other.json.error.message).toContain(`namespace ${NS}`);
    expect((await call('POST', '/v1/runs', TOKENS.otherSa, { spec, runId: 'z-run' })).status).toBe(403);
    expect((await call('GET', '/v1/runs/k-run', TOKENS.nobody)).status).toBe(403);
    expect((await call('GET', '/v1/runs', TOKENS.otherSa)).json.runs).toEqual([]);
    expect((await call('GET', '/v1/runs/k-run', 'not-a-token')).status).toBe(401);
    expect((await call('GET', '/v1/runs/k-run', undefined)).status).toBe(401);
  });

  it('a tandem:viewer group reads but cannot cancel', async () => {
    expect((await call('GET', '/v1/runs/k-run', TOKENS.viewer)).status).toBe(200);
    expect((await call('POST', '/v1/runs/k-run:cancel', TOKENS.viewer, {})).status).toBe(403);
  });

  it('the accepted run gets a credentials Secret that its trainer and rollout workers reference by key', async () => {
    const kube = new HttpKubeApi({ server: api.url, namespace: NS });
    const secret = await eventually(() => kube.get(SECRET, NS, 'k-run-credentials'), { what: 'the credentials Secret' });
    const data = (secret as KubeObject & { data: Record<string, string> }).data;
    const token = Buffer.from(data['run-token'] as string, 'base64').toString();
    const redisUrl = Buffer.from(data['redis-url'] as string, 'base64').toString();
    expect(token).toBe(await admin.hget('tandem:auth:run-credentials', 'k-run'));
    expect(new URL(redisUrl).username).toBe('tandem-run-k-run');
    expect(secret.metadata.ownerReferences?.[0]?.kind).toBe('RLRun');

    const job = await eventually(() => kube.get(JOB, NS, 'k-run-trainer'), { what: 'the trainer Job' });
    const deploy = await eventually(() => kube.get(DEPLOYMENT, NS, 'k-run-rollout'), { what: 'the rollout Deployment' });
    const envOf = (o: KubeObject): Array<{ name: string; value?: string; valueFrom?: any }> => (o as any).spec.template.spec.containers[0].env;
    expect(envOf(job).find((e) => e.name === 'TANDEM_RUN_TOKEN')?.valueFrom).toEqual({ secretKeyRef: { name: 'k-run-credentials', key: 'run-token' } });
    expect(envOf(deploy).find((e) => e.name === 'TANDEM_REDIS_URL')?.valueFrom).toEqual({ secretKeyRef: { name: 'k-run-credentials', key: 'redis-url' } });
    // No secret value is written into a pod spec.
    for (const o of [job, deploy]) expect(JSON.stringify(o)).not.toContain(token);
  });
});

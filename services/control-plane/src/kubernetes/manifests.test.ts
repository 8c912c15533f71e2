import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import type { KubernetesRuntime } from './kubernetes-runtime.js';
import { RLRUN, type KubeObject } from './resources.js';
import type { FakeControlPlane } from './testing/fake-control-plane.js';
import { eventually, startKubeHarness, startReplica, type KubeHarness } from './testing/kube-harness.js';
import { validateAgainstKubernetesSchema } from './testing/openapi-validation.js';

/**
 * The shipped manifests: kustomize renders both overlays, `kubectl apply`
 * of the CRD and the examples works against the fake apiserver, `kubectl
 * get rlruns` prints the printer columns, and kubectl shows the field when
 * an RLRun is invalid. Needs kubectl on PATH (skipped, and says so, without).
 */

const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const KUBECTL = ['/usr/bin/kubectl', '/usr/local/bin/kubectl'].find((p) => existsSync(p));

function run(args: string[], options: { input?: string; kubeconfig?: string } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = execFile(
      KUBECTL as string,
      [...(options.kubeconfig ? ['--kubeconfig', options.kubeconfig] : []), ...args],
      { cwd: ROOT, timeout: 30_000, env: { ...process.env, KUBECACHEDIR: join(tmpdir(), 'tandem-kubectl-cache-none') } },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}

function docs(yaml: string): KubeObject[] {
  return parseAllDocuments(yaml).map((d) => d.toJS() as KubeObject);
}

describe.skipIf(!KUBECTL)('kustomize overlays', () => {
  for (const overlay of ['dev', 'production']) {
    it(`deploy/overlays/${overlay} renders a complete, hardened control plane`, async () => {
      const out = await run(['kustomize', `deploy/overlays/${overlay}`]);
      expect(out.stderr).toBe('');
      expect(out.code).toBe(0);
      const objects = docs(out.stdout);
      const kinds = objects.map((o) => `${o.kind}/${o.metadata.name}`);
      expect(kinds).toEqual(
        expect.arrayContaining([
          'CustomResourceDefinition/rlruns.tandem.dev',
          'ServiceAccount/tandem-control-plane',
          'Role/tandem-control-plane',
          'RoleBinding/tandem-control-plane',
          'ClusterRole/tandem-token-review',
          'ClusterRoleBinding/tandem-token-review',
          'Deployment/tandem-control-plane',
          'Service/tandem-control-plane',
          'Service/tandem-control-plane-leader',
          'PodDisruptionBudget/tandem-control-plane',
          'StatefulSet/tandem-redis',
          'Service/tandem-redis',
          'ConfigMap/tandem-redis',
        ]),
      );
      // Every built-in object decodes under Kubernetes' OpenAPI schemas; the CRD is checked as an apiextensions object.
      for (const o of objects) expect(await validateAgainstKubernetesSchema(o), `${o.kind}/${o.metadata.name}`).toEqual([]);
      const ns = overlay === 'dev' ? 'tandem-dev' : 'tandem';
      for (const o of objects) if (!['CustomResourceDefinition', 'Namespace', 'PriorityClass', 'ClusterRole', 'ClusterRoleBinding'].includes(o.kind as string)) expect(o.metadata.namespace, `${o.kind}/${o.metadata.name}`).toBe(ns);
      const deploy = objects.find((o) => o.kind === 'Deployment') as any;
      expect(deploy.spec.replicas).toBe(2);
      const env = Object.fromEntries(deploy.spec.template.spec.containers[0].env.map((e: any) => [e.name, e.value ?? 'from']));
      expect(env).toMatchObject({ TANDEM_RUNTIME: 'kubernetes', TANDEM_POD_NAME: 'from', TANDEM_KUBERNETES_NAMESPACE: 'from' });
      const redisConf = (objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'tandem-redis') as any).data['redis.conf'];
      expect(redisConf).toMatch(/appendonly yes/);
      expect(redisConf).toMatch(/maxmemory-policy noeviction/);
      // The API binds 0.0.0.0: authentication must be on (else the control plane refuses to start).
      expect(env.TANDEM_HOST).toBe('0.0.0.0');
      expect(env.TANDEM_AUTH_TOKEN_REVIEW).toBe('true');
      for (const w of objects.filter((o) => o.kind === 'Deployment' || o.kind === 'StatefulSet') as any[]) {
        const pod = w.spec.template.spec;
        expect(pod.securityContext, w.metadata.name).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
        expect(pod.hostNetwork ?? false, w.metadata.name).toBe(false);
        expect(pod.hostPID ?? false, w.metadata.name).toBe(false);
        for (const c of [...pod.containers, ...(pod.initContainers ?? [])]) {
          expect(c.securityContext, `${w.metadata.name}/${c.name}`).toMatchObject({
            allowPrivilegeEscalation: false,
            readOnlyRootFilesystem: true,
            runAsNonRoot: true,
            privileged: false,
            capabilities: { drop: ['ALL'] },
            seccompProfile: { type: 'RuntimeDefault' },
          });
          expect(c.securityContext.capabilities.add ?? [], `${w.metadata.name}/${c.name}`).toEqual([]);
        }
      }
      // Only the control plane talks to the apiserver.
      const redis = objects.find((o) => o.kind === 'StatefulSet' && o.metadata.name === 'tandem-redis') as any;
      expect(redis.spec.template.spec.automountServiceAccountToken).toBe(false);
      // The Role is namespaced and never grants wildcards; Secrets can be written (run credentials) but never read back.
      const role = objects.find((o) => o.kind === 'Role') as any;
      expect(JSON.stringify(role.rules)).not.toContain('"*"');
      for (const rule of role.rules as Array<{ resources: string[]; verbs: string[] }>) {
        if (rule.resources.includes('secrets')) expect(rule.verbs.sort()).toEqual(['create', 'patch']);
        if (rule.resources.includes('pods')) expect(rule.verbs.sort()).toEqual(['get', 'list', 'watch']);
        expect(rule.verbs, rule.resources.join(',')).not.toContain('escalate');
        expect(rule.verbs, rule.resources.join(',')).not.toContain('bind');
        expect(rule.verbs, rule.resources.join(',')).not.toContain('impersonate');
      }
      // The one cluster-wide grant: creating TokenReviews.
      const clusterRoles = objects.filter((o) => o.kind === 'ClusterRole') as any[];
      expect(clusterRoles.map((c) => [c.metadata.name, c.rules])).toEqual([
        ['tandem-token-review', [{ apiGroups: ['authentication.k8s.io'], resources: ['tokenreviews'], verbs: ['create'] }]],
      ]);
      const crb = objects.find((o) => o.kind === 'ClusterRoleBinding') as any;
      expect(crb.subjects).toEqual([{ kind: 'ServiceAccount', name: 'tandem-control-plane', namespace: ns }]);
      if (overlay === 'production') {
        // Redis requires a password from the Secret, and the control plane
        // uses it: $(REDIS_PASSWORD) expands only from variables listed before it.
        const fromSecret = { secretKeyRef: { name: 'tandem-redis', key: 'password' } };
        const redisC = redis.spec.template.spec.containers[0];
        expect(redisC.args).toEqual(['/etc/redis/redis.conf', '--requirepass', '$(REDIS_PASSWORD)']);
        expect(redisC.env).toEqual(expect.arrayContaining([{ name: 'REDIS_PASSWORD', valueFrom: fromSecret }, { name: 'REDISCLI_AUTH', valueFrom: fromSecret }]));
        const cpEnv = deploy.spec.template.spec.containers[0].env as Array<{ name: string; value?: string; valueFrom?: unknown }>;
        const at = (name: string): number => cpEnv.findIndex((e) => e.name === name);
        expect(cpEnv[at('REDIS_PASSWORD')]?.valueFrom).toEqual(fromSecret);
        expect(cpEnv[at('TANDEM_REDIS_URL')]?.value).toBe('redis://:$(REDIS_PASSWORD)@tandem-redis:6379');
        expect(at('REDIS_PASSWORD')).toBeLessThan(at('TANDEM_REDIS_URL'));
        expect(env.TANDEM_REDIS_RUN_USERS).toBe('required');
      } else {
        expect(env.TANDEM_REDIS_URL).toBe('redis://tandem-redis:6379');
      }
    });
  }
});

describe.skipIf(!KUBECTL)('kubectl against the fake apiserver', () => {
  let h: KubeHarness;
  let dir: string;
  let kubeconfig: string;
  let runtime: KubernetesRuntime;
  let hooks: FakeControlPlane;

  beforeAll(async () => {
    h = await startKubeHarness();
    dir = await mkdtemp(join(tmpdir(), 'tandem-kubectl-'));
    kubeconfig = join(dir, 'kubeconfig');
    await h.api.writeKubeconfig(kubeconfig);
    ({ runtime, hooks } = startReplica(h, 'cp-0'));
  });
  afterAll(async () => {
    await runtime?.stop();
    await h?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('applies the CRD and the examples; `kubectl get rlruns` shows the printer columns', async () => {
    // The harness installed the CRD without kubectl's last-applied annotation: kubectl warns and adds it.
    const crd = await run(['apply', '-f', 'k8s/crd/rlruns.tandem.dev.yaml'], { kubeconfig });
    expect(crd.code).toBe(0);
    expect(crd.stderr).not.toMatch(/error/i);
    expect(crd.stdout).toMatch(/customresourcedefinition.apiextensions.k8s.io\/rlruns.tandem.dev (created|configured|unchanged)/);
    const apply = await run(['apply', '-f', 'k8s/examples/'], { kubeconfig });
    expect(apply.stderr).toBe('');
    expect(apply.stdout).toContain('rlrun.tandem.dev/qwen-small created');
    expect(apply.stdout).toContain('rlrun.tandem.dev/llama-8b-gsm created');
    expect(apply.stdout).toContain('rlrun.tandem.dev/simulated-demo created');
    expect((await run(['apply', '-f', 'k8s/examples/small-rlrun.yaml'], { kubeconfig })).stdout).toContain('rlrun.tandem.dev/qwen-small unchanged');

    await eventually(async () => ((await h.kube.get(RLRUN, 'default', 'qwen-small'))?.status as any)?.phase === 'Pending', { what: 'reconciled' });
    hooks.setProgress('qwen-small', { phase: 'Running', trainerStep: 3, policyVersion: 3, meanAgeSteps: 0.5, queueDepth: 7 });
    await eventually(async () => ((await h.kube.get(RLRUN, 'default', 'qwen-small'))?.status as any)?.progress?.trainerStep === 3, { what: 'progress', clock: h.clock, advanceMs: 5000 });
    const get = await run(['get', 'rlruns'], { kubeconfig });
    expect(get.code).toBe(0);
    const lines = get.stdout.trim().split('\n').map((l) => l.trim().split(/\s+/));
    expect(lines[0]).toEqual(['NAME', 'PHASE', 'STEP', 'POLICY', 'MEAN-AGE', 'QUEUE', 'AGE']);
    expect(lines.find((l) => l[0] === 'qwen-small')?.slice(0, 6)).toEqual(['qwen-small', 'Running', '3', '3', '0.5', '7']);
    expect(lines.map((l) => l[0])).toEqual(expect.arrayContaining(['llama-8b-gsm', 'simulated-demo']));
    const wide = await run(['get', 'rlr', 'qwen-small', '-o', 'wide'], { kubeconfig });
    expect(wide.stdout.split('\n')[0]).toMatch(/GENERATORS/);
  });

  it('rejects an invalid RLRun and names the field', async () => {
    const bad = `apiVersion: tandem.dev/v1alpha1
kind: RLRun
metadata: {name: bad-run}
spec:
  model: {name: m}
  dataset: {source: builtin, name: arithmetic}
  reward: {kind: regex}
  maxSteps: 0
  generator: {replicas: 1, tensorParallelSize: 0}
`;
    const out = await run(['apply', '-f', '-'], { kubeconfig, input: bad });
    expect(out.code).not.toBe(0);
    expect(out.stderr).toContain('The RLRun "bad-run" is invalid');
    expect(out.stderr).toContain('spec.maxSteps: Invalid value: 0: spec.maxSteps in body should be greater than or equal to 1');
    expect(out.stderr).toContain('spec.reward.pattern: Required value');
    expect(out.stderr).toContain('spec.generator.tensorParallelSize');
    const typo = await run(['apply', '-f', '-'], { kubeconfig, input: bad.replace('maxSteps: 0', 'maxStep: 3').replace('{kind: regex}', '{kind: numeric}').replace('tensorParallelSize: 0', 'tensorParallelSize: 1') });
    expect(typo.code).not.toBe(0);
    expect(typo.stderr).toContain('unknown field "spec.maxStep"');
    expect(await h.kube.get(RLRUN, 'default', 'bad-run')).toBeUndefined();
  });
});

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { parseRLRunSpec } from '@tandem/run-spec';
import { generatorStatefulSet, rolloutWorkerDeployment, runCredentialsSecret, trainerJob, type RunIdentity } from '../kubernetes/children.js';
import type { KubeObject } from '../kubernetes/resources.js';
import { TEST_SETTINGS } from '../kubernetes/testing/kube-harness.js';

/**
 * Every pod the reconciler makes (generators, trainer, rollout workers; real
 * and simulated) runs hardened: non-root, read-only root filesystem, no
 * privilege escalation, every capability dropped, seccomp RuntimeDefault,
 * no service-account token; with per-run credentials, secrets reach the
 * pods only as Secret references.
 */

const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const example = (file: string): ReturnType<typeof parseRLRunSpec> => parseRLRunSpec(parse(readFileSync(`${ROOT}k8s/examples/${file}`, 'utf8')).spec);
const id: RunIdentity = { name: 'r', namespace: 'ml', uid: 'uid-1' };

function workloads(spec: ReturnType<typeof parseRLRunSpec>, runCredentials: boolean): KubeObject[] {
  const settings = { ...TEST_SETTINGS, runCredentials };
  return [generatorStatefulSet(id, spec, settings, true), trainerJob(id, spec, settings), rolloutWorkerDeployment(id, spec, settings, true)];
}

describe('pods the reconciler creates', () => {
  for (const file of ['small-rlrun.yaml', 'multi-node-rlrun.yaml', 'simulated-rlrun.yaml']) {
    it(`are hardened (${file})`, () => {
      for (const w of workloads(example(file), true) as any[]) {
        const pod = w.spec.template.spec;
        const what = `${w.kind}/${w.metadata.name}`;
        expect(pod.securityContext, what).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
        expect(pod.automountServiceAccountToken, what).toBe(false);
        expect(pod.hostNetwork ?? false, what).toBe(false);
        expect(pod.hostIPC ?? false, what).toBe(false);
        expect(pod.hostPID ?? false, what).toBe(false);
        for (const c of [...pod.containers, ...(pod.initContainers ?? [])]) {
          expect(c.securityContext, `${what}/${c.name}`).toEqual({
            allowPrivilegeEscalation: false,
            readOnlyRootFilesystem: true,
            runAsNonRoot: true,
            privileged: false,
            capabilities: { drop: ['ALL'] },
            seccompProfile: { type: 'RuntimeDefault' },
          });
        }
      }
    });
  }

  it('get the run token and the run Redis URL from the run Secret, by reference only', () => {
    const [gen, job, deploy] = workloads(example('simulated-rlrun.yaml'), true) as any[];
    const env = (o: any): Array<{ name: string; value?: string; valueFrom?: unknown }> => o.spec.template.spec.containers[0].env;
    expect(env(job).find((e) => e.name === 'TANDEM_RUN_TOKEN')).toEqual({ name: 'TANDEM_RUN_TOKEN', valueFrom: { secretKeyRef: { name: 'r-credentials', key: 'run-token' } } });
    expect(env(deploy).find((e) => e.name === 'TANDEM_REDIS_URL')).toEqual({ name: 'TANDEM_REDIS_URL', valueFrom: { secretKeyRef: { name: 'r-credentials', key: 'redis-url' } } });
    // Generators need no credential: they are driven by the control plane.
    expect(env(gen).some((e) => e.name === 'TANDEM_RUN_TOKEN' || e.name === 'TANDEM_REDIS_URL')).toBe(false);
    // Without per-run credentials, the trainer has no token and the workers use the shared Redis setting.
    const [, job0, deploy0] = workloads(example('simulated-rlrun.yaml'), false) as any[];
    expect(env(job0).some((e) => e.name === 'TANDEM_RUN_TOKEN')).toBe(false);
    expect(env(deploy0).find((e) => e.name === 'TANDEM_REDIS_URL')?.valueFrom).toBeUndefined();
  });

  it('the credentials Secret is owned by the RLRun and holds the values base64-encoded', () => {
    const s = runCredentialsSecret(id, { token: 'tok', redisUrl: 'redis://u:p@h:6379' }) as any;
    expect(s.metadata.ownerReferences[0]).toMatchObject({ kind: 'RLRun', name: 'r', uid: 'uid-1' });
    expect(Buffer.from(s.data['run-token'], 'base64').toString()).toBe('tok');
    expect(Buffer.from(s.data['redis-url'], 'base64').toString()).toBe('redis://u:p@h:6379');
  });
});

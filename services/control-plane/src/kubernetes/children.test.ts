import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { parseRLRunSpec } from '@tandem/run-spec';
import {
  checkpointPvc,
  generatorService,
  generatorStatefulSet,
  generatorUrl,
  resourcesWithGpus,
  rolloutWorkerDeployment,
  runConfigMap,
  trainerJob,
  trainerService,
  type RunIdentity,
} from './children.js';
import { MAX_RLRUN_NAME_LENGTH } from './crd/rlrun-crd.js';
import type { KubeObject } from './resources.js';
import { validateBuiltin } from './testing/builtin-validation.js';
import { validateAgainstKubernetesSchema } from './testing/openapi-validation.js';
import { TEST_SETTINGS } from './testing/kube-harness.js';

/**
 * The child objects, field by field. Every object is also checked with the
 * fake apiserver's hand-written subset of Kubernetes' validation (names,
 * labels, selectors matching templates, containers with name and image,
 * quantities, GPU limit = request, Job restart policy, Service ports).
 */

const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const example = (file: string): ReturnType<typeof parseRLRunSpec> => parseRLRunSpec(parse(readFileSync(`${ROOT}k8s/examples/${file}`, 'utf8')).spec);
const id: RunIdentity = { name: 'r', namespace: 'ml', uid: 'uid-1' };

function all(run: RunIdentity, spec: ReturnType<typeof parseRLRunSpec>): KubeObject[] {
  return [
    runConfigMap(run, spec),
    generatorService(run),
    generatorStatefulSet(run, spec, TEST_SETTINGS, true),
    trainerService(run, TEST_SETTINGS),
    trainerJob(run, spec, TEST_SETTINGS),
    rolloutWorkerDeployment(run, spec, TEST_SETTINGS, true),
    ...[checkpointPvc(run, spec, TEST_SETTINGS)].filter((x): x is KubeObject => x !== undefined),
  ];
}

const env = (container: any): Record<string, string> => Object.fromEntries(container.env.map((e: any) => [e.name, e.value ?? `<${Object.keys(e.valueFrom)[0]}>`]));

describe('child objects', () => {
  it('pass the hand-checked Kubernetes validation, for every example and the longest run name', () => {
    for (const file of ['small-rlrun.yaml', 'multi-node-rlrun.yaml', 'simulated-rlrun.yaml']) {
      for (const name of ['r', 'a'.repeat(MAX_RLRUN_NAME_LENGTH)]) {
        for (const o of all({ ...id, name }, example(file))) {
          expect(validateBuiltin(o.kind as string, o, undefined), `${file} ${o.kind}/${o.metadata.name}`).toEqual([]);
          expect(o.metadata.ownerReferences).toEqual([{ apiVersion: 'tandem.dev/v1alpha1', kind: 'RLRun', name, uid: 'uid-1', controller: true, blockOwnerDeletion: true }]);
          expect(Object.values(o.metadata.labels ?? {}).every((v) => v.length <= 63)).toBe(true);
        }
        // StatefulSet pod names leave room for the controller-revision-hash label; pod hostnames stay DNS labels.
        expect(`${name}-gen`.length).toBeLessThanOrEqual(52);
        expect(`${name}-trainer-1023`.length).toBeLessThanOrEqual(63);
      }
    }
  });

  it('match Kubernetes\' OpenAPI schemas (kubernetes-models), for every example, active and scaled to zero', async () => {
    let checked = 0;
    for (const file of ['small-rlrun.yaml', 'multi-node-rlrun.yaml', 'simulated-rlrun.yaml']) {
      const spec = example(file);
      const objects = [
        ...all(id, spec),
        generatorStatefulSet(id, spec, TEST_SETTINGS, false),
        rolloutWorkerDeployment(id, spec, TEST_SETTINGS, false),
      ];
      for (const o of objects) {
        expect(await validateAgainstKubernetesSchema(o), `${file} ${o.kind}/${o.metadata.name}`).toEqual([]);
        checked++;
      }
    }
    expect(checked).toBeGreaterThanOrEqual(24);
  });

  it('the schema check itself refuses what a real apiserver would not decode', async () => {
    const sts = generatorStatefulSet(id, example('small-rlrun.yaml'), TEST_SETTINGS, true) as any;
    sts.spec.replicas = 'two';
    sts.spec.template.spec.containers[0].ports = [{ containerPort: '8000' }];
    const errors = await validateAgainstKubernetesSchema(sts);
    expect(errors).toEqual([
      'StatefulSet/r-gen: spec.replicas: must be integer',
      'StatefulSet/r-gen: spec.template.spec.containers[0].ports[0].containerPort: must be integer',
    ]);
    expect(await validateAgainstKubernetesSchema({ apiVersion: 'apps/v1', kind: 'StatefulSett', metadata: { name: 'x' } })).toEqual(['apps/v1 StatefulSett: not a built-in Kubernetes kind']);
  });

  it('the run ConfigMap holds the spec as compact JSON, without inline prompts', () => {
    const prompts = Array.from({ length: 2000 }, (_, i) => ({ prompt: `p${i}`, promptTokenIds: Array.from({ length: 200 }, (_, j) => j) }));
    const spec = parseRLRunSpec({ ...(parse(readFileSync(`${ROOT}k8s/examples/small-rlrun.yaml`, 'utf8')).spec as object), dataset: { source: 'inline', prompts } });
    const cm = runConfigMap(id, spec) as any;
    const stored = JSON.parse(cm.data['run-spec.json']);
    expect(stored.dataset).toEqual({ source: 'inline', prompts: '2000 prompts (see the RLRun)' });
    expect(stored.maxSteps).toBe(spec.maxSteps);
    expect(cm.data['run-spec.json']).not.toContain('\n');
    expect(Buffer.byteLength(JSON.stringify(cm.data))).toBeLessThan(64 * 1024);
  });

  it('a multi-node trainer: one Indexed Job over all nodes, GPUs per node, rendezvous at rank 0, Kueue label', () => {
    const spec = example('multi-node-rlrun.yaml');
    const job = trainerJob(id, spec, TEST_SETTINGS) as any;
    expect(job.metadata.labels['kueue.x-k8s.io/queue-name']).toBe('gpu-training');
    expect(job.spec).toMatchObject({ completionMode: 'Indexed', completions: 2, parallelism: 2, backoffLimit: 0 });
    const pod = job.spec.template.spec;
    expect(pod).toMatchObject({ subdomain: 'r-trainer', restartPolicy: 'Never', priorityClassName: 'training-high', nodeSelector: { 'nvidia.com/gpu.product': 'NVIDIA-H100-80GB-HBM3' } });
    const c = pod.containers[0];
    expect(c.resources).toEqual({ requests: { cpu: '64', memory: '900Gi', 'nvidia.com/gpu': 8 }, limits: { memory: '1000Gi', 'nvidia.com/gpu': 8 } });
    expect(env(c)).toMatchObject({
      TANDEM_SERVER: TEST_SETTINGS.controlPlaneGrpcAddress,
      TANDEM_RUN_ID: 'r',
      TANDEM_TRANSFER_PORT: '29500',
      NUM_PROCESSES: '16',
      NNODES: '2',
      NODE_RANK: '<fieldRef>',
      MASTER_ADDR: 'r-trainer-0.r-trainer.ml.svc',
      ACCELERATE_ARGS: '--num_machines 2 --machine_rank $(NODE_RANK) --main_process_ip r-trainer-0.r-trainer.ml.svc',
      TANDEM_TRL_SCRIPT: '/workspace/train_grpo.py',
    });
    expect(checkpointPvc(id, spec, TEST_SETTINGS)?.spec).toEqual({ accessModes: ['ReadWriteMany'], resources: { requests: { storage: '500Gi' } }, storageClassName: 'shared-rwx' });
    const gens = generatorStatefulSet(id, spec, TEST_SETTINGS, true) as any;
    expect(gens.spec.replicas).toBe(8);
    expect(gens.spec.template.spec.containers[0].resources.limits['nvidia.com/gpu']).toBe(2);
    expect(gens.spec.template.spec.tolerations).toEqual([{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }]);
    expect(gens.spec.template.spec.containers[0].args.slice(-3)).toEqual(['--max-model-len', '8192', '--enable-prefix-caching']);
  });

  it('the vLLM command turns on the dev routes and NCCL weight transfer', () => {
    const c = (generatorStatefulSet(id, example('small-rlrun.yaml'), TEST_SETTINGS, true) as any).spec.template.spec.containers[0];
    expect(c.image).toBe(TEST_SETTINGS.images.generator);
    expect(c.command).toEqual(['vllm']);
    expect(c.args.slice(0, 2)).toEqual(['serve', 'Qwen/Qwen2.5-0.5B-Instruct']);
    expect(c.args).toEqual(expect.arrayContaining(['--port', '8000', '--served-model-name', 'Qwen/Qwen2.5-0.5B-Instruct', '--logprobs-mode', 'processed_logprobs', '--weight-transfer-config', '{"backend":"nccl"}']));
    expect(env(c)).toMatchObject({ VLLM_SERVER_DEV_MODE: '1', HOME: '/home/tandem' });
    expect(c.readinessProbe.httpGet).toEqual({ path: '/health', port: 'http' });
    expect(generatorUrl(id, 3)).toBe('http://r-gen-3.r-gen.ml.svc:8000');
  });

  it('a simulated run uses the simulator image, no GPUs, and the simulated trainer', () => {
    const spec = example('simulated-rlrun.yaml');
    const gen = (generatorStatefulSet(id, spec, TEST_SETTINGS, true) as any).spec.template.spec.containers[0];
    expect(gen.image).toBe(TEST_SETTINGS.images.simulator);
    expect(gen.command).toEqual(['node']);
    expect(gen.args).toEqual(expect.arrayContaining(['services/simulator/dist/generator-main.js', '--seed', '$(POD_INDEX)', '--time-scale', '0.1']));
    expect(JSON.stringify(gen.resources)).not.toContain('nvidia.com/gpu');
    const trainer = (trainerJob(id, spec, TEST_SETTINGS) as any).spec.template.spec.containers[0];
    expect(trainer.args.slice(0, 5)).toEqual(['services/simulator/dist/trainer-main.js', '--server', TEST_SETTINGS.controlPlaneGrpcAddress, '--run-id', 'r']);
    expect(trainer.args).toEqual(expect.arrayContaining(['--checkpoint', '/checkpoints/trainer-checkpoint.json']));
    expect(checkpointPvc(id, spec, TEST_SETTINGS)?.spec).toMatchObject({ accessModes: ['ReadWriteOnce'], resources: { requests: { storage: '1Gi' } } });
  });

  it('scales workloads to zero when the run is not active, and uses an existing claim when named', () => {
    const spec = parseRLRunSpec({ ...parse(readFileSync(`${ROOT}k8s/examples/small-rlrun.yaml`, 'utf8')).spec, trainer: { checkpoint: { volumeClaimName: 'shared-ckpt', mountPath: '/ckpt' } } });
    expect((generatorStatefulSet(id, spec, TEST_SETTINGS, false) as any).spec.replicas).toBe(0);
    expect((rolloutWorkerDeployment(id, spec, TEST_SETTINGS, false) as any).spec.replicas).toBe(0);
    expect(checkpointPvc(id, spec, TEST_SETTINGS)).toBeUndefined();
    const pod = (trainerJob(id, spec, TEST_SETTINGS) as any).spec.template.spec;
    expect(pod.volumes).toEqual(expect.arrayContaining([{ name: 'checkpoints', persistentVolumeClaim: { claimName: 'shared-ckpt' } }]));
    expect(pod.containers[0].volumeMounts).toEqual(expect.arrayContaining([{ name: 'checkpoints', mountPath: '/ckpt' }]));
  });

  it('GPU resources: limit = request, from the spec or from the parallelism', () => {
    expect(resourcesWithGpus(undefined, 4)).toEqual({ requests: { 'nvidia.com/gpu': 4 }, limits: { 'nvidia.com/gpu': 4 } });
    expect(resourcesWithGpus({ requests: { 'nvidia.com/gpu': 2 } }, 4)).toEqual({ requests: { 'nvidia.com/gpu': 2 }, limits: { 'nvidia.com/gpu': 2 } });
    expect(resourcesWithGpus({ limits: { memory: '1Gi' } }, 0)).toEqual({ limits: { memory: '1Gi' } });
  });

  it('rollout workers get Redis from a Secret when configured', () => {
    const d = rolloutWorkerDeployment(id, example('small-rlrun.yaml'), { ...TEST_SETTINGS, redis: { secretName: 'redis', secretKey: 'url' } }, true) as any;
    expect(d.spec.template.spec.containers[0].env).toEqual(expect.arrayContaining([{ name: 'TANDEM_REDIS_URL', valueFrom: { secretKeyRef: { name: 'redis', key: 'url' } } }]));
  });
});

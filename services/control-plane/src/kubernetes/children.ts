import { createHash } from 'node:crypto';
import type { RLRunSpec } from '@tandem/run-spec';
import { apiVersionOf, RLRUN, type KubeObject, type OwnerReference } from './resources.js';

/**
 * The objects an RLRun becomes. Pure functions of the RLRun and the
 * operator's settings, so a reconcile can build the desired state and apply
 * it whole (server-side apply), and tests can check every field.
 *
 * Workload choices:
 * - generators: a StatefulSet with a headless Service. Pods get stable
 *   names (`<run>-gen-0..N-1`) and DNS (`<pod>.<run>-gen.<ns>.svc`), so the
 *   control plane's HTTP calls and the NCCL group see a replaced pod under
 *   the same address; `podManagementPolicy: Parallel` because replicas are
 *   independent vLLM servers. Kueue admits StatefulSets (pod groups) and
 *   gang schedulers see ordinary pods.
 * - trainer: an Indexed Job (completions = parallelism = numNodes,
 *   backoffLimit 0) with its own headless Service. It runs to completion,
 *   which is what a trainer does; it is the workload Kueue admits as one
 *   unit (all pods or none) and the building block of JobSet and Kubeflow's
 *   TrainJob; each pod knows its rank from the completion index and finds
 *   rank 0 at `<run>-trainer-0.<run>-trainer`. backoffLimit 0 hands every
 *   failure to Tandem's failure policy instead of the Job controller's.
 * - rollout workers: a Deployment (stateless).
 * - the checkpoint PVC is owned by the RLRun, not by the Job, so that
 *   suspending (which deletes the Job) keeps it.
 */

/** Labels on everything Tandem creates for a run. */
export const LABEL_RUN = 'tandem.dev/run';
export const LABEL_ROLE = 'tandem.dev/role';
export const ANNOTATION_SPEC_HASH = 'tandem.dev/spec-hash';
export const KUEUE_QUEUE_LABEL = 'kueue.x-k8s.io/queue-name';
/** vLLM's port (HTTP API and admin routes). */
export const GENERATOR_PORT = 8000;
/**
 * The training job's own rendezvous on trainer rank 0 (accelerate's main
 * process port, MAIN_PROCESS_PORT of services/trainer-agent/launch/trainer-pod.sh;
 * it must differ from the weight-transfer port).
 */
export const TRAINER_RENDEZVOUS_PORT = 29600;
/** UID and GID the pods run as (non-root). */
export const POD_UID = 1000;

/** Workload roles as they appear in labels. */
export type ChildRole = 'generator' | 'trainer' | 'rollout-worker' | 'config' | 'credentials';

/** What the operator decides for every run. */
export interface WorkloadSettings {
  images: { generator: string; trainer: string; rolloutWorker: string; simulator: string };
  imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  /** gRPC address trainers use to reach the control plane. */
  controlPlaneGrpcAddress: string;
  /** Redis for rollout workers: a URL, or a Secret key holding it (URLs with passwords). */
  redis: { url: string } | { secretName: string; secretKey: string };
  keyPrefix: string;
  /** Rendezvous port of the weight-transfer group on the trainer (rank 0). */
  transferPort: number;
  /** Default checkpoint volume size when the spec names none. @default 50Gi (1Gi for simulated runs) */
  defaultCheckpointSize?: string;
  /**
   * Per-run credentials are on (API authentication on): the trainer reads
   * TANDEM_RUN_TOKEN and the rollout workers TANDEM_REDIS_URL (the run's own
   * Redis user) from the run's Secret, {@link runCredentialsSecret}.
   */
  runCredentials?: boolean;
}

/** The RLRun an object set is built for. */
export interface RunIdentity {
  name: string;
  namespace: string;
  uid: string;
}

/** Names of a run's children. */
export function childNames(run: string): {
  config: string;
  generators: string;
  trainer: string;
  rolloutWorkers: string;
  checkpoints: string;
  credentials: string;
} {
  return {
    config: `${run}-run`,
    generators: `${run}-gen`,
    trainer: `${run}-trainer`,
    rolloutWorkers: `${run}-rollout`,
    checkpoints: `${run}-checkpoints`,
    credentials: `${run}-credentials`,
  };
}

/** The generator id the weight-sync registry uses for a StatefulSet ordinal. */
export function generatorId(ordinal: number): string {
  return `gen-${ordinal}`;
}

/** A generator pod's stable URL. */
export function generatorUrl(run: RunIdentity, ordinal: number): string {
  const n = childNames(run.name);
  return `http://${n.generators}-${ordinal}.${n.generators}.${run.namespace}.svc:${GENERATOR_PORT}`;
}

/** `<run>-gen-3` → 3 (undefined for other names). */
export function generatorOrdinal(run: string, podName: string): number | undefined {
  const prefix = `${childNames(run).generators}-`;
  if (!podName.startsWith(prefix)) return undefined;
  const rest = podName.slice(prefix.length);
  return /^\d+$/.test(rest) ? Number(rest) : undefined;
}

/** Stable short hash of an object (annotation that lets a reconcile skip unchanged children). */
export function specHash(o: unknown): string {
  return createHash('sha256').update(JSON.stringify(o)).digest('hex').slice(0, 16);
}

function ownerRef(run: RunIdentity): OwnerReference {
  return { apiVersion: apiVersionOf(RLRUN), kind: RLRUN.kind, name: run.name, uid: run.uid, controller: true, blockOwnerDeletion: true };
}

function labels(run: RunIdentity, role: ChildRole): Record<string, string> {
  return {
    'app.kubernetes.io/name': 'tandem',
    'app.kubernetes.io/part-of': 'tandem',
    'app.kubernetes.io/managed-by': 'tandem-control-plane',
    'app.kubernetes.io/component': role,
    [LABEL_RUN]: run.name,
    [LABEL_ROLE]: role,
  };
}

function selector(run: RunIdentity, role: ChildRole): Record<string, string> {
  return { [LABEL_RUN]: run.name, [LABEL_ROLE]: role };
}

function meta(run: RunIdentity, name: string, role: ChildRole, extraLabels: Record<string, string> = {}): KubeObject['metadata'] {
  return { name, namespace: run.namespace, labels: { ...labels(run, role), ...extraLabels }, ownerReferences: [ownerRef(run)] };
}

/** Adds the spec-hash annotation (over everything else in the object). */
function hashed<T extends KubeObject>(o: T): T {
  const h = specHash(o);
  return { ...o, metadata: { ...o.metadata, annotations: { ...(o.metadata.annotations ?? {}), [ANNOTATION_SPEC_HASH]: h } } };
}

function queueLabel(spec: RLRunSpec): Record<string, string> {
  return spec.scheduling?.queueName ? { [KUEUE_QUEUE_LABEL]: spec.scheduling.queueName } : {};
}

type Resources = { requests?: Record<string, string | number>; limits?: Record<string, string | number> };

/**
 * Container resources with `gpus` whole GPUs unless the spec names
 * nvidia.com/gpu itself. Extended resources cannot be overcommitted: the
 * limit is required and a request must equal it, so both are set.
 */
export function resourcesWithGpus(given: Resources | undefined, gpus: number, fallback: Resources = {}): Resources {
  const out: Resources = {
    requests: { ...(fallback.requests ?? {}), ...(given?.requests ?? {}) },
    limits: { ...(fallback.limits ?? {}), ...(given?.limits ?? {}) },
  };
  const GPU = 'nvidia.com/gpu';
  const named = out.requests?.[GPU] ?? out.limits?.[GPU];
  const count = named ?? (gpus > 0 ? gpus : undefined);
  if (count !== undefined) {
    (out.requests as Record<string, string | number>)[GPU] = count;
    (out.limits as Record<string, string | number>)[GPU] = count;
  }
  if (Object.keys(out.requests ?? {}).length === 0) delete out.requests;
  if (Object.keys(out.limits ?? {}).length === 0) delete out.limits;
  return out;
}

const containerSecurity = {
  allowPrivilegeEscalation: false,
  readOnlyRootFilesystem: true,
  runAsNonRoot: true,
  privileged: false,
  capabilities: { drop: ['ALL'] },
  seccompProfile: { type: 'RuntimeDefault' },
};

function podSecurity(): Record<string, unknown> {
  return { runAsNonRoot: true, runAsUser: POD_UID, runAsGroup: POD_UID, fsGroup: POD_UID, seccompProfile: { type: 'RuntimeDefault' } };
}

/** Writable scratch for a read-only root filesystem: /tmp, $HOME (caches), /dev/shm (NCCL, torch). */
function scratchVolumes(shm: boolean): { volumes: unknown[]; mounts: unknown[] } {
  const volumes: unknown[] = [
    { name: 'tmp', emptyDir: {} },
    { name: 'home', emptyDir: {} },
  ];
  const mounts: unknown[] = [
    { name: 'tmp', mountPath: '/tmp' },
    { name: 'home', mountPath: '/home/tandem' },
  ];
  if (shm) {
    volumes.push({ name: 'dshm', emptyDir: { medium: 'Memory' } });
    mounts.push({ name: 'dshm', mountPath: '/dev/shm' });
  }
  return { volumes, mounts };
}

const HOME_ENV = [
  { name: 'HOME', value: '/home/tandem' },
  { name: 'XDG_CACHE_HOME', value: '/home/tandem/.cache' },
];

function placement(spec: RLRunSpec, p: { nodeSelector?: Record<string, string> | undefined; tolerations?: unknown[] | undefined }): Record<string, unknown> {
  return {
    ...(p.nodeSelector ? { nodeSelector: p.nodeSelector } : {}),
    ...(p.tolerations ? { tolerations: p.tolerations } : {}),
    ...(spec.scheduling?.schedulerName ? { schedulerName: spec.scheduling.schedulerName } : {}),
    ...(spec.scheduling?.priorityClassName ? { priorityClassName: spec.scheduling.priorityClassName } : {}),
  };
}

/**
 * The run's ConfigMap: the full spec (defaults applied), for people and for
 * pods that want it. Compact JSON, and inline prompts left out (the run's
 * prompts are in Redis; the RLRun has them): an RLRun may hold up to etcd's
 * ~1.5 MiB, a ConfigMap at most 1 MiB, and indented token ids would grow it
 * several times over.
 */
export function runConfigMap(run: RunIdentity, spec: RLRunSpec): KubeObject {
  const dataset = spec.dataset.source === 'inline' ? { source: 'inline', prompts: `${spec.dataset.prompts.length} prompts (see the RLRun)` } : spec.dataset;
  return hashed({
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: meta(run, childNames(run.name).config, 'config'),
    data: { 'run-id': run.name, 'run-spec.json': JSON.stringify({ ...spec, dataset }) },
  });
}

/** Keys of the per-run credentials Secret. */
export const CREDENTIALS_KEYS = { token: 'run-token', redisUrl: 'redis-url' } as const;

/**
 * The run's credentials as a Secret owned by the RLRun (deleted with it):
 * its trainer's TrainerService token and its rollout workers' Redis URL
 * (the run's own ACL user). Pods reference it by key; the values never
 * appear in a pod spec, the RLRun or its status.
 */
export function runCredentialsSecret(run: RunIdentity, credentials: { token: string; redisUrl: string }): KubeObject {
  return hashed({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: meta(run, childNames(run.name).credentials, 'credentials'),
    type: 'Opaque',
    data: {
      [CREDENTIALS_KEYS.token]: Buffer.from(credentials.token).toString('base64'),
      [CREDENTIALS_KEYS.redisUrl]: Buffer.from(credentials.redisUrl).toString('base64'),
    },
  });
}

function fromCredentials(run: RunIdentity, env: string, key: string): Record<string, unknown> {
  return { name: env, valueFrom: { secretKeyRef: { name: childNames(run.name).credentials, key } } };
}

/** Headless Service that gives generator pods stable DNS names (before they are ready, too). */
export function generatorService(run: RunIdentity): KubeObject {
  const name = childNames(run.name).generators;
  return hashed({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta(run, name, 'generator'),
    spec: {
      clusterIP: 'None',
      publishNotReadyAddresses: true,
      selector: selector(run, 'generator'),
      ports: [{ name: 'http', port: GENERATOR_PORT, targetPort: GENERATOR_PORT, protocol: 'TCP' }],
    },
  });
}

/**
 * The vLLM command line: OpenAI server plus the dev routes and NCCL weight
 * transfer Tandem drives (docs/vllm-routes.md), then the user's extra args.
 */
export function vllmArgs(spec: RLRunSpec): string[] {
  const g = spec.generator;
  return [
    'serve',
    spec.model.name,
    '--host', '0.0.0.0',
    '--port', String(GENERATOR_PORT),
    '--served-model-name', spec.model.name,
    ...(spec.model.revision ? ['--revision', spec.model.revision] : []),
    '--tensor-parallel-size', String(g.tensorParallelSize),
    '--logprobs-mode', 'processed_logprobs',
    '--weight-transfer-config', '{"backend":"nccl"}',
    ...(g.vllmArgs ?? []),
  ];
}

function simulatorGeneratorArgs(spec: RLRunSpec): string[] {
  const sim = spec.simulation;
  if (!sim) return [];
  const args = ['services/simulator/dist/generator-main.js', '--host', '0.0.0.0', '--port', String(GENERATOR_PORT), '--model', spec.model.name, '--time-scale', String(sim.timeScale), '--seed', '$(POD_INDEX)'];
  const add = (flag: string, v: number | undefined): void => {
    if (v !== undefined) args.push(flag, String(v));
  };
  add('--peak-tokens-per-second', sim.generator.peakTokensPerSecondPerSequence);
  add('--concurrency-knee', sim.generator.concurrencyKnee);
  add('--median-output-tokens', sim.generator.medianOutputTokens);
  add('--model-bytes', sim.generator.modelBytes);
  add('--bandwidth-bytes-per-second', sim.generator.bandwidthBytesPerSecond);
  return args;
}

/** The generator StatefulSet; `replicas` is 0 while the run is suspended or ended. */
export function generatorStatefulSet(run: RunIdentity, spec: RLRunSpec, settings: WorkloadSettings, active: boolean): KubeObject {
  const name = childNames(run.name).generators;
  const simulated = spec.simulation !== undefined;
  const g = spec.generator;
  const scratch = scratchVolumes(true);
  const podLabels = { ...labels(run, 'generator'), ...queueLabel(spec) };
  const container = {
    name: simulated ? 'simulator' : 'vllm',
    image: g.image ?? (simulated ? settings.images.simulator : settings.images.generator),
    ...(settings.imagePullPolicy ? { imagePullPolicy: settings.imagePullPolicy } : {}),
    ...(simulated ? { command: ['node'], args: simulatorGeneratorArgs(spec) } : { command: ['vllm'], args: vllmArgs(spec) }),
    env: [
      ...HOME_ENV,
      { name: 'POD_INDEX', valueFrom: { fieldRef: { fieldPath: "metadata.labels['apps.kubernetes.io/pod-index']" } } },
      { name: 'TANDEM_RUN_ID', value: run.name },
      ...(simulated ? [] : [{ name: 'VLLM_SERVER_DEV_MODE', value: '1' }, { name: 'HF_HOME', value: '/home/tandem/.cache/huggingface' }]),
      ...(g.env ?? []),
    ],
    ports: [{ name: 'http', containerPort: GENERATOR_PORT, protocol: 'TCP' }],
    resources: resourcesWithGpus(g.resources, simulated ? 0 : g.tensorParallelSize, simulated ? { requests: { cpu: '250m', memory: '256Mi' }, limits: { memory: '512Mi' } } : {}),
    // Loading a model can take many minutes; readiness is what gates registration.
    startupProbe: { httpGet: { path: '/health', port: 'http' }, periodSeconds: 10, failureThreshold: 180 },
    readinessProbe: { httpGet: { path: '/health', port: 'http' }, periodSeconds: 5, failureThreshold: 3 },
    livenessProbe: { httpGet: { path: '/health', port: 'http' }, periodSeconds: 10, failureThreshold: 6, timeoutSeconds: 5 },
    securityContext: containerSecurity,
    volumeMounts: scratch.mounts,
  };
  return hashed({
    apiVersion: 'apps/v1',
    kind: 'StatefulSet',
    metadata: meta(run, name, 'generator', queueLabel(spec)),
    spec: {
      serviceName: name,
      replicas: active ? g.replicas : 0,
      podManagementPolicy: 'Parallel',
      selector: { matchLabels: selector(run, 'generator') },
      template: {
        metadata: { labels: podLabels },
        spec: {
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          securityContext: podSecurity(),
          terminationGracePeriodSeconds: 30,
          ...placement(spec, g),
          containers: [container],
          volumes: scratch.volumes,
        },
      },
    },
  });
}

/** Headless Service for the trainer pods: rank 0's address for torchrun and the weight-transfer group. */
export function trainerService(run: RunIdentity, settings: WorkloadSettings): KubeObject {
  const name = childNames(run.name).trainer;
  return hashed({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta(run, name, 'trainer'),
    spec: {
      clusterIP: 'None',
      publishNotReadyAddresses: true,
      selector: selector(run, 'trainer'),
      ports: [
        { name: 'rendezvous', port: TRAINER_RENDEZVOUS_PORT, targetPort: TRAINER_RENDEZVOUS_PORT, protocol: 'TCP' },
        { name: 'transfer', port: settings.transferPort, targetPort: settings.transferPort, protocol: 'TCP' },
      ],
    },
  });
}

/** Where the checkpoint lives: an existing claim, or one Tandem creates. */
function checkpointClaim(run: RunIdentity, spec: RLRunSpec): { claimName: string; created: boolean } | undefined {
  const c = spec.trainer.checkpoint;
  if (c?.volumeClaimName) return { claimName: c.volumeClaimName, created: false };
  if (c?.uri && !c.storage) return undefined;
  return { claimName: childNames(run.name).checkpoints, created: true };
}

/** The checkpoint PVC Tandem creates (owned by the RLRun: kept across suspend, deleted with the run). */
export function checkpointPvc(run: RunIdentity, spec: RLRunSpec, settings: WorkloadSettings): KubeObject | undefined {
  const claim = checkpointClaim(run, spec);
  if (!claim?.created) return undefined;
  const storage = spec.trainer.checkpoint?.storage;
  const accessMode = storage?.accessMode ?? (spec.trainer.numNodes > 1 ? 'ReadWriteMany' : 'ReadWriteOnce');
  const size = storage?.size ?? (spec.simulation ? '1Gi' : (settings.defaultCheckpointSize ?? '50Gi'));
  return hashed({
    apiVersion: 'v1',
    kind: 'PersistentVolumeClaim',
    metadata: meta(run, claim.claimName, 'trainer'),
    spec: {
      accessModes: [accessMode],
      resources: { requests: { storage: String(size) } },
      ...(storage?.storageClassName ? { storageClassName: storage.storageClassName } : {}),
    },
  });
}

/** The trainer Indexed Job (absent while suspended or ended: deleting it is what stops the trainer). */
export function trainerJob(run: RunIdentity, spec: RLRunSpec, settings: WorkloadSettings): KubeObject {
  const name = childNames(run.name).trainer;
  const t = spec.trainer;
  const simulated = spec.simulation !== undefined;
  const scratch = scratchVolumes(true);
  const mountPath = t.checkpoint?.mountPath ?? '/checkpoints';
  const claim = checkpointClaim(run, spec);
  const volumes = [...scratch.volumes, ...(claim ? [{ name: 'checkpoints', persistentVolumeClaim: { claimName: claim.claimName } }] : [])];
  const mounts = [...scratch.mounts, ...(claim ? [{ name: 'checkpoints', mountPath }] : [])];
  const rank0 = `${name}-0.${name}.${run.namespace}.svc`;
  // The trainer agent's variables (services/trainer-agent/README.md), plus
  // the torchrun/accelerate ones a multi-node job needs.
  const env = [
    ...HOME_ENV,
    { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
    { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
    { name: 'NODE_RANK', valueFrom: { fieldRef: { fieldPath: "metadata.annotations['batch.kubernetes.io/job-completion-index']" } } },
    { name: 'TANDEM_RUN_ID', value: run.name },
    { name: 'TANDEM_SERVER', value: settings.controlPlaneGrpcAddress },
    ...(settings.runCredentials ? [fromCredentials(run, 'TANDEM_RUN_TOKEN', CREDENTIALS_KEYS.token)] : []),
    { name: 'TANDEM_TRANSFER_PORT', value: String(settings.transferPort) },
    { name: 'TANDEM_CHECKPOINT_DIR', value: mountPath },
    ...(t.checkpoint?.uri ? [{ name: 'TANDEM_CHECKPOINT_URI', value: t.checkpoint.uri }] : []),
    { name: 'TANDEM_MODEL', value: spec.model.name },
    ...(spec.model.revision ? [{ name: 'TANDEM_MODEL_REVISION', value: spec.model.revision }] : []),
    { name: 'NUM_PROCESSES', value: String(t.procsPerNode * t.numNodes) },
    { name: 'NNODES', value: String(t.numNodes) },
    { name: 'NPROC_PER_NODE', value: String(t.procsPerNode) },
    { name: 'MASTER_ADDR', value: rank0 },
    { name: 'MASTER_PORT', value: String(TRAINER_RENDEZVOUS_PORT) },
    { name: 'MAIN_PROCESS_PORT', value: String(TRAINER_RENDEZVOUS_PORT) },
    ...(t.numNodes > 1
      ? [{ name: 'ACCELERATE_ARGS', value: `--num_machines ${t.numNodes} --machine_rank $(NODE_RANK) --main_process_ip ${rank0}` }]
      : []),
    ...(t.env ?? []),
  ];
  const sim = spec.simulation;
  const args = sim
    ? [
        'services/simulator/dist/trainer-main.js',
        '--server', settings.controlPlaneGrpcAddress,
        '--run-id', run.name,
        '--time-scale', String(sim.timeScale),
        '--checkpoint', `${claim ? mountPath : '/tmp'}/trainer-checkpoint.json`,
        ...(sim.trainer.stepOverheadMs !== undefined ? ['--step-overhead-ms', String(sim.trainer.stepOverheadMs)] : []),
        ...(sim.trainer.msPerKiloToken !== undefined ? ['--ms-per-kilo-token', String(sim.trainer.msPerKiloToken)] : []),
      ]
    : (t.args ?? []);
  const container = {
    name: 'trainer',
    image: t.image ?? (simulated ? settings.images.simulator : settings.images.trainer),
    ...(settings.imagePullPolicy ? { imagePullPolicy: settings.imagePullPolicy } : {}),
    ...(simulated ? { command: ['node'] } : {}),
    ...(args.length > 0 ? { args } : {}),
    env,
    ports: [
      { name: 'rendezvous', containerPort: TRAINER_RENDEZVOUS_PORT, protocol: 'TCP' },
      { name: 'transfer', containerPort: settings.transferPort, protocol: 'TCP' },
    ],
    resources: resourcesWithGpus(t.resources, simulated ? 0 : t.procsPerNode, simulated ? { requests: { cpu: '250m', memory: '256Mi' }, limits: { memory: '512Mi' } } : {}),
    securityContext: containerSecurity,
    volumeMounts: mounts,
  };
  return hashed({
    apiVersion: 'batch/v1',
    kind: 'Job',
    metadata: meta(run, name, 'trainer', queueLabel(spec)),
    spec: {
      completionMode: 'Indexed',
      completions: t.numNodes,
      parallelism: t.numNodes,
      backoffLimit: 0,
      template: {
        metadata: { labels: { ...labels(run, 'trainer'), ...queueLabel(spec) } },
        spec: {
          restartPolicy: 'Never',
          subdomain: name,
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          securityContext: podSecurity(),
          terminationGracePeriodSeconds: 60,
          ...placement(spec, t),
          containers: [container],
          volumes,
        },
      },
    },
  });
}

/** The rollout-worker Deployment; 0 replicas while suspended or ended. */
export function rolloutWorkerDeployment(run: RunIdentity, spec: RLRunSpec, settings: WorkloadSettings, active: boolean): KubeObject {
  const name = childNames(run.name).rolloutWorkers;
  const w = spec.rolloutWorkers;
  const redis = settings.runCredentials
    ? fromCredentials(run, 'TANDEM_REDIS_URL', CREDENTIALS_KEYS.redisUrl)
    : 'url' in settings.redis
      ? { name: 'TANDEM_REDIS_URL', value: settings.redis.url }
      : { name: 'TANDEM_REDIS_URL', valueFrom: { secretKeyRef: { name: settings.redis.secretName, key: settings.redis.secretKey } } };
  const scratch = scratchVolumes(false);
  return hashed({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: meta(run, name, 'rollout-worker', queueLabel(spec)),
    spec: {
      replicas: active ? w.replicas : 0,
      selector: { matchLabels: selector(run, 'rollout-worker') },
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: 0, maxSurge: 1 } },
      template: {
        metadata: { labels: { ...labels(run, 'rollout-worker'), ...queueLabel(spec) } },
        spec: {
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          securityContext: podSecurity(),
          ...placement(spec, w),
          containers: [
            {
              name: 'rollout-worker',
              image: w.image ?? settings.images.rolloutWorker,
              ...(settings.imagePullPolicy ? { imagePullPolicy: settings.imagePullPolicy } : {}),
              env: [
                ...HOME_ENV,
                redis,
                { name: 'TANDEM_RUN_ID', value: run.name },
                { name: 'TANDEM_KEY_PREFIX', value: settings.keyPrefix },
                { name: 'TANDEM_WORKER_CONCURRENCY', value: String(w.concurrency) },
              ],
              // A remote reward's headersFromEnv values: the user's Secret <run>-reward, keys named as the variables.
              ...(spec.reward.kind === 'remote' && spec.reward.headersFromEnv ? { envFrom: [{ secretRef: { name: `${run.name}-reward`, optional: true } }] } : {}),
              resources: resourcesWithGpus(w.resources, 0, { requests: { cpu: '250m', memory: '256Mi' }, limits: { memory: '1Gi' } }),
              securityContext: containerSecurity,
              volumeMounts: scratch.mounts,
            },
          ],
          volumes: scratch.volumes,
        },
      },
    },
  });
}

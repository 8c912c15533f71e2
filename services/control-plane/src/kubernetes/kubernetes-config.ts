import { hostname } from 'node:os';
import { z } from 'zod';
import { parseOrThrow } from '@tandem/common';
import { redisUrlIssue } from '@tandem/rollout-queue';
import type { WorkloadSettings } from './children.js';

/**
 * Environment of the kubernetes runtime (TANDEM_RUNTIME=kubernetes), parsed
 * once by the control plane's loadConfig. Documented in docs/kubernetes.md.
 */
export const KubernetesEnv = z.object({
  /** Namespace the operator watches and creates workloads in. @default the pod's namespace */
  TANDEM_KUBERNETES_NAMESPACE: z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/).optional(),
  /** A kubeconfig to use instead of the in-cluster service account (development). */
  TANDEM_KUBECONFIG: z.string().min(1).optional(),
  /** This replica's identity in the Lease. @default hostname (the pod name) */
  TANDEM_POD_NAME: z.string().min(1).optional(),
  /** @default tandem-control-plane */
  TANDEM_LEASE_NAME: z.string().min(1).default('tandem-control-plane'),
  /** This pod's IP (downward API status.podIP): the leader publishes it for trainers. */
  TANDEM_POD_IP: z.string().min(1).optional(),
  /** Selector-less Service whose EndpointSlice the leader points at itself; empty turns it off. @default tandem-control-plane-leader */
  TANDEM_LEADER_SERVICE: z.string().regex(/^([a-z0-9]([-a-z0-9]*[a-z0-9])?)?$/).default('tandem-control-plane-leader'),
  /** vLLM image for generators. Pin a version that has the NCCL weight-transfer routes (docs/vllm-routes.md). */
  TANDEM_GENERATOR_IMAGE: z.string().min(1).default('vllm/vllm-openai:latest'),
  /** Trainer image (TRL + the tandem trainer agent). */
  TANDEM_TRAINER_IMAGE: z.string().min(1).default('ghcr.io/tandem-dev/tandem-trainer:0.1.0'),
  /** Rollout worker image. */
  TANDEM_ROLLOUT_WORKER_IMAGE: z.string().min(1).default('ghcr.io/tandem-dev/tandem-rollout-worker:0.1.0'),
  /** Image holding services/simulator (the control-plane image does), for simulated runs. */
  TANDEM_SIMULATOR_IMAGE: z.string().min(1).default('ghcr.io/tandem-dev/tandem-control-plane:0.1.0'),
  TANDEM_IMAGE_PULL_POLICY: z.enum(['Always', 'IfNotPresent', 'Never']).optional(),
  /** gRPC address trainers dial. @default <TANDEM_LEADER_SERVICE>.<namespace>.svc:<TANDEM_GRPC_PORT> */
  TANDEM_CONTROL_PLANE_GRPC_ADDRESS: z.string().min(1).optional(),
  /** Redis URL given to rollout workers. @default TANDEM_REDIS_URL */
  TANDEM_WORKER_REDIS_URL: z
    .string()
    .superRefine((value, ctx) => {
      const issue = redisUrlIssue(value);
      if (issue !== undefined) ctx.addIssue({ code: 'custom', message: issue });
    })
    .optional(),
  /** `secret/key` holding the Redis URL for rollout workers (when it has a password); wins over TANDEM_WORKER_REDIS_URL. */
  TANDEM_WORKER_REDIS_SECRET: z.string().regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?\/[-._a-zA-Z0-9]+$/).optional(),
  /** Every RLRun's status is refreshed at least this often. @default 5000 */
  TANDEM_STATUS_INTERVAL_MS: z.coerce.number().int().positive().max(600_000).default(5000),
  /** Checkpoint PVC size when a spec names none. @default 50Gi */
  TANDEM_DEFAULT_CHECKPOINT_SIZE: z.string().min(1).default('50Gi'),
});

/** Resolved kubernetes runtime configuration. */
export interface KubernetesConfig {
  /** Undefined: the pod's namespace (read from the service account) or the kubeconfig context's. */
  namespace: string | undefined;
  kubeconfig: string | undefined;
  identity: string;
  leaseName: string;
  statusIntervalMs: number;
  /** Leader address publication (needs TANDEM_POD_IP and a leader Service name). */
  advertise: { serviceName: string; podIp: string } | undefined;
  /** Everything but the gRPC address default, which needs the namespace. */
  workloads: Omit<WorkloadSettings, 'controlPlaneGrpcAddress'> & { controlPlaneGrpcAddress: string | undefined };
  grpcPort: number;
}

/** Parses the kubernetes runtime's variables; throws INVALID_ARGUMENT naming each bad one. */
export function loadKubernetesConfig(env: Record<string, string | undefined>, common: { redisUrl: string; keyPrefix: string; transferPort: number; grpcPort: number }): KubernetesConfig {
  const e = parseOrThrow(KubernetesEnv, env, 'kubernetes runtime environment');
  const secret = e.TANDEM_WORKER_REDIS_SECRET?.split('/');
  return {
    namespace: e.TANDEM_KUBERNETES_NAMESPACE,
    kubeconfig: e.TANDEM_KUBECONFIG,
    identity: e.TANDEM_POD_NAME ?? hostname(),
    leaseName: e.TANDEM_LEASE_NAME,
    statusIntervalMs: e.TANDEM_STATUS_INTERVAL_MS,
    advertise: e.TANDEM_POD_IP && e.TANDEM_LEADER_SERVICE ? { serviceName: e.TANDEM_LEADER_SERVICE, podIp: e.TANDEM_POD_IP } : undefined,
    grpcPort: common.grpcPort,
    workloads: {
      images: {
        generator: e.TANDEM_GENERATOR_IMAGE,
        trainer: e.TANDEM_TRAINER_IMAGE,
        rolloutWorker: e.TANDEM_ROLLOUT_WORKER_IMAGE,
        simulator: e.TANDEM_SIMULATOR_IMAGE,
      },
      ...(e.TANDEM_IMAGE_PULL_POLICY ? { imagePullPolicy: e.TANDEM_IMAGE_PULL_POLICY } : {}),
      controlPlaneGrpcAddress: e.TANDEM_CONTROL_PLANE_GRPC_ADDRESS,

      redis: secret ? { secretName: secret[0] as string, secretKey: secret[1] as string } : { url: e.TANDEM_WORKER_REDIS_URL ?? common.redisUrl },
      keyPrefix: common.keyPrefix,
      transferPort: common.transferPort,
      defaultCheckpointSize: e.TANDEM_DEFAULT_CHECKPOINT_SIZE,
    },
  };
}

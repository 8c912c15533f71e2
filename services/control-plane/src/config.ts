import { z } from 'zod';
import { parseOrThrow } from '@tandem/common';
import { redisUrlIssue } from '@tandem/rollout-queue';
import { loadKubernetesConfig, type KubernetesConfig } from './kubernetes/kubernetes-config.js';
import { loadSecurityConfig, type SecurityConfig } from './auth/security-config.js';
import { loadLeaderElectionConfig, type LeaderElectionConfig } from './ha/leader-election-config.js';

const port = z.coerce.number().int().min(0).max(65_535);

/** A Redis URL in any form Tandem accepts (one node, Cluster, Sentinel; see docs/operations.md). */
const redisUrl = z.string().superRefine((value, ctx) => {
  const issue = redisUrlIssue(value);
  if (issue !== undefined) ctx.addIssue({ code: 'custom', message: issue });
});

/**
 * The control plane's environment, parsed once in main.ts. Every variable is
 * documented in docs/operations.md.
 */
export const ControlPlaneEnv = z.object({
  /** Address the HTTP and gRPC servers bind to. @default 127.0.0.1 */
  TANDEM_HOST: z.string().min(1).default('127.0.0.1'),
  /** HTTP/JSON API, /metrics, /healthz, /readyz. 0 picks a free port. @default 8080 */
  TANDEM_HTTP_PORT: port.default(8080),
  /** gRPC RunService and TrainerService. 0 picks a free port. @default 50051 */
  TANDEM_GRPC_PORT: port.default(50051),
  /**
   * Redis holding run state and queues: redis[s]://host:port[/db],
   * redis[s]+cluster://h1:p1,h2:p2 or redis[s]+sentinel://h1:p1,h2:p2/master.
   * @default redis://127.0.0.1:6379
   */
  TANDEM_REDIS_URL: redisUrl.default('redis://127.0.0.1:6379'),
  /** Prefix of every Redis key. @default tandem */
  TANDEM_KEY_PREFIX: z.string().regex(/^[a-z0-9-]+$/).default('tandem'),
  /** pino level. @default info */
  TANDEM_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Longest long poll a trainer may ask for in PullBatch. @default 30000 */
  TANDEM_MAX_PULL_WAIT_MS: z.coerce.number().int().positive().max(600_000).default(30_000),
  /** Port of the weight-transfer group's rendezvous on the trainer (rank 0). @default 29500 */
  TANDEM_TRANSFER_PORT: port.default(29500),
  /** Health-check period of generators. @default 2000 */
  TANDEM_GENERATOR_HEALTH_INTERVAL_MS: z.coerce.number().int().positive().default(2000),
  /**
   * Where run workloads go: `local` starts simulated runs' processes as
   * children (runs without spec.simulation are external either way);
   * `kubernetes` reconciles RLRun objects into pods (docs/kubernetes.md);
   * `none` starts nothing. @default local
   */
  TANDEM_RUNTIME: z.enum(['local', 'kubernetes', 'none']).default('local'),
  /**
   * How long an ended run's metric series stay exported (its final figures)
   * before they are removed, in seconds; at least 300. @default 900
   */
  TANDEM_ENDED_RUN_METRICS_SECONDS: z.coerce.number().int().min(300).max(30 * 86_400).default(900),
  /** Largest HTTP request body accepted. @default 4194304 */
  TANDEM_MAX_REQUEST_BYTES: z.coerce.number().int().positive().default(4 * 1024 * 1024),
  /** Largest gRPC message the control plane receives (a SubmitRun with inline prompts). @default 16777216 */
  TANDEM_MAX_GRPC_MESSAGE_BYTES: z.coerce.number().int().positive().max(2 ** 31 - 1).default(16 * 1024 * 1024),
});

/** Resolved control-plane configuration (units in names). */
export interface ControlPlaneConfig {
  host: string;
  httpPort: number;
  grpcPort: number;
  redisUrl: string;
  keyPrefix: string;
  logLevel: string;
  maxPullWaitMs: number;
  /** TANDEM_ENDED_RUN_METRICS_SECONDS, in ms. */
  endedRunMetricsRetentionMs: number;
  maxRequestBytes: number;
  /** Largest gRPC message received (TANDEM_MAX_GRPC_MESSAGE_BYTES). */
  maxGrpcMessageBytes: number;
  transferPort: number;
  generatorHealthIntervalMs: number;
  runtime: 'local' | 'kubernetes' | 'none';
  /** Settings of the kubernetes runtime (TANDEM_RUNTIME=kubernetes only). */
  kubernetes?: KubernetesConfig;
  /** Authentication, TLS, per-run credentials (TANDEM_AUTH_*, TANDEM_TLS_*, TANDEM_REDIS_RUN_USERS; auth/security-config.ts). */
  security: SecurityConfig;
  /** Leader election of replicas in local/none mode (TANDEM_LEADER_*; ha/leader-election-config.ts). */
  leaderElection: LeaderElectionConfig;
}

/** Parses the environment; throws INVALID_ARGUMENT naming each bad variable. */
export function loadConfig(env: Record<string, string | undefined>): ControlPlaneConfig {
  const e = parseOrThrow(ControlPlaneEnv, env, 'control-plane environment');
  return {
    host: e.TANDEM_HOST,
    httpPort: e.TANDEM_HTTP_PORT,
    grpcPort: e.TANDEM_GRPC_PORT,
    redisUrl: e.TANDEM_REDIS_URL,
    keyPrefix: e.TANDEM_KEY_PREFIX,
    logLevel: e.TANDEM_LOG_LEVEL,
    maxPullWaitMs: e.TANDEM_MAX_PULL_WAIT_MS,
    endedRunMetricsRetentionMs: e.TANDEM_ENDED_RUN_METRICS_SECONDS * 1000,
    maxRequestBytes: e.TANDEM_MAX_REQUEST_BYTES,
    maxGrpcMessageBytes: e.TANDEM_MAX_GRPC_MESSAGE_BYTES,
    transferPort: e.TANDEM_TRANSFER_PORT,
    generatorHealthIntervalMs: e.TANDEM_GENERATOR_HEALTH_INTERVAL_MS,
    runtime: e.TANDEM_RUNTIME,
    security: loadSecurityConfig(env, { host: e.TANDEM_HOST, runtime: e.TANDEM_RUNTIME }),
    leaderElection: loadLeaderElectionConfig(env, { runtime: e.TANDEM_RUNTIME }),
    ...(e.TANDEM_RUNTIME === 'kubernetes'
      ? { kubernetes: loadKubernetesConfig(env, { redisUrl: e.TANDEM_REDIS_URL, keyPrefix: e.TANDEM_KEY_PREFIX, transferPort: e.TANDEM_TRANSFER_PORT, grpcPort: e.TANDEM_GRPC_PORT }) }
      : {}),
  };
}

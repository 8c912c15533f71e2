import { z } from 'zod';
import { parseOrThrow } from '@tandem/common';
import { MAX_GROUP_PAYLOAD_BYTES } from '@tandem/rollout-queue';
import { redisUrlIssue } from '@tandem/rollout-queue';

const ms = z.coerce.number().int().positive();

/** A Redis URL in any form Tandem accepts (one node, Cluster, Sentinel; see docs/operations.md). */
const redisUrl = z.string().superRefine((value, ctx) => {
  const issue = redisUrlIssue(value);
  if (issue !== undefined) ctx.addIssue({ code: 'custom', message: issue });
});

/** The rollout worker's environment (see docs/operations.md). */
export const RolloutWorkerEnv = z.object({
  /** Redis holding the run's queues (any form the control plane accepts; passed on unchanged). */
  TANDEM_REDIS_URL: redisUrl.default('redis://127.0.0.1:6379'),
  /** The run this worker serves. */
  TANDEM_RUN_ID: z.string().min(1),
  /** @default tandem */
  TANDEM_KEY_PREFIX: z.string().regex(/^[a-z0-9-]+$/).default('tandem'),
  TANDEM_LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** Prompt groups processed at once. @default 64 */
  TANDEM_WORKER_CONCURRENCY: z.coerce.number().int().positive().max(10_000).default(64),
  /** Requests in flight to one generator from this worker. @default 64 */
  TANDEM_MAX_IN_FLIGHT_PER_GENERATOR: z.coerce.number().int().positive().max(10_000).default(64),
  /** Timeout of one completions request. @default 300000 */
  TANDEM_REQUEST_TIMEOUT_MS: ms.default(300_000),
  /** Attempts per completion before its group fails. @default 5 */
  TANDEM_MAX_ATTEMPTS: z.coerce.number().int().positive().max(100).default(5),
  /** @default 200 */
  TANDEM_BACKOFF_BASE_MS: ms.default(200),
  /** @default 10000 */
  TANDEM_BACKOFF_CAP_MS: ms.default(10_000),
  /** Consecutive failures that bench a generator until its health probe passes. @default 3 */
  TANDEM_UNHEALTHY_AFTER_FAILURES: z.coerce.number().int().positive().default(3),
  /** @default 2000 */
  TANDEM_PROBE_AFTER_MS: ms.default(2000),
  /** BullMQ lock on a job; a dead worker's jobs return after it lapses. @default 30000 */
  TANDEM_LOCK_DURATION_MS: ms.default(30_000),
  /** BullMQ stalled-job check interval. @default 30000 */
  TANDEM_STALLED_INTERVAL_MS: ms.default(30_000),
  /** Largest encoded finished group; a larger one ends `failed`, naming the limit. @default 268435456 */
  TANDEM_MAX_GROUP_BYTES: z.coerce.number().int().positive().max(512 * 1024 * 1024).default(MAX_GROUP_PAYLOAD_BYTES),
});

/** Resolved worker configuration. */
export interface RolloutWorkerConfig {
  redisUrl: string;
  runId: string;
  keyPrefix: string;
  logLevel: string;
  concurrency: number;
  maxInFlightPerGenerator: number;
  requestTimeoutMs: number;
  maxAttempts: number;
  backoffBaseMs: number;
  backoffCapMs: number;
  unhealthyAfterFailures: number;
  probeAfterMs: number;
  lockDurationMs: number;
  stalledIntervalMs: number;
  maxGroupBytes: number;
}

/** Parses the environment; throws INVALID_ARGUMENT naming each bad variable. */
export function loadConfig(env: Record<string, string | undefined>): RolloutWorkerConfig {
  const e = parseOrThrow(RolloutWorkerEnv, env, 'rollout-worker environment');
  return {
    redisUrl: e.TANDEM_REDIS_URL,
    runId: e.TANDEM_RUN_ID,
    keyPrefix: e.TANDEM_KEY_PREFIX,
    logLevel: e.TANDEM_LOG_LEVEL,
    concurrency: e.TANDEM_WORKER_CONCURRENCY,
    maxInFlightPerGenerator: e.TANDEM_MAX_IN_FLIGHT_PER_GENERATOR,
    requestTimeoutMs: e.TANDEM_REQUEST_TIMEOUT_MS,
    maxAttempts: e.TANDEM_MAX_ATTEMPTS,
    backoffBaseMs: e.TANDEM_BACKOFF_BASE_MS,
    backoffCapMs: e.TANDEM_BACKOFF_CAP_MS,
    unhealthyAfterFailures: e.TANDEM_UNHEALTHY_AFTER_FAILURES,
    probeAfterMs: e.TANDEM_PROBE_AFTER_MS,
    lockDurationMs: e.TANDEM_LOCK_DURATION_MS,
    stalledIntervalMs: e.TANDEM_STALLED_INTERVAL_MS,
    maxGroupBytes: e.TANDEM_MAX_GROUP_BYTES,
  };
}

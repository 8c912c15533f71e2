import { z } from 'zod';
import { ErrorCode, TandemError, parseOrThrow } from '@tandem/common';
import type { RunRedisUsersMode } from './redis-run-users.js';

const flag = z.enum(['true', 'false']).default('false').transform((v) => v === 'true');
const file = z.string().min(1).optional();

/**
 * The control plane's security settings from the environment (documented
 * in docs/operations.md, Security). Parsed by loadConfig in config.ts.
 */
export const SecurityEnv = z.object({
  /** Bearer tokens (YAML/JSON, see tokens-file.ts); authentication is on when set. */
  TANDEM_AUTH_TOKENS_FILE: file,
  /** Also accept Kubernetes tokens through TokenReview (kubernetes runtime only). @default false */
  TANDEM_AUTH_TOKEN_REVIEW: flag,
  /** Audiences a TokenReview'd token must carry, comma-separated; none checks the apiserver's default. */
  TANDEM_AUTH_TOKEN_AUDIENCES: z.string().optional(),
  /** Serve without authentication on a non-loopback address (never in production). @default false */
  TANDEM_AUTH_ALLOW_UNAUTHENTICATED: flag,
  /** GET /metrics needs a valid token of any role. @default false */
  TANDEM_METRICS_REQUIRE_AUTH: flag,
  /** Server certificate (PEM) for HTTPS and gRPC over TLS. */
  TANDEM_TLS_CERT_FILE: file,
  /** Its private key (PEM). */
  TANDEM_TLS_KEY_FILE: file,
  /** CA (PEM) the control plane's own children verify it with (local runtime); system roots when unset. */
  TANDEM_TLS_CA_FILE: file,
  /** Per-run Redis ACL users for rollout workers: auto (fall back when Redis refuses ACL), required, off. @default auto */
  TANDEM_REDIS_RUN_USERS: z.enum(['auto', 'required', 'off']).default('auto'),
  /**
   * Directories (absolute, ':'-separated) that `dataset.source: jsonl` runs
   * may read from the control plane's filesystem. Unset: anywhere while
   * authentication is off, nowhere while it is on.
   */
  TANDEM_DATASET_DIRS: z
    .string()
    .optional()
    .transform((v) => v?.split(':').filter((d) => d !== ''))
    .refine((dirs) => dirs === undefined || dirs.every((d) => d.startsWith('/')), 'must be absolute directories separated by ":"'),
});

/** Resolved security settings. */
export interface SecurityConfig {
  /** Authentication is on (a tokens file or TokenReview); per-run credentials are enforced with it. */
  authEnabled: boolean;
  tokensFile?: string;
  tokenReview: boolean;
  tokenAudiences?: string[];
  /** Authentication is off although the servers bind a non-loopback address (explicitly allowed). */
  unauthenticatedOnNetwork: boolean;
  metricsRequireAuth: boolean;
  tls?: { certFile: string; keyFile: string; caFile?: string };
  redisRunUsers: RunRedisUsersMode;
  /** Where jsonl datasets may be read from (undefined: anywhere without auth, nowhere with it). */
  datasetDirs?: string[];
}

/** Whether `host` only accepts connections from this machine. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/**
 * Parses the security variables. Cross-field rules, each naming the
 * variable: certificate and key come together; TokenReview needs the
 * kubernetes runtime; serving without authentication on a non-loopback
 * address must be asked for with TANDEM_AUTH_ALLOW_UNAUTHENTICATED=true.
 */
export function loadSecurityConfig(env: Record<string, string | undefined>, context: { host: string; runtime: string }): SecurityConfig {
  const e = parseOrThrow(SecurityEnv, env, 'control-plane environment');
  const bad = (variable: string, message: string): TandemError =>
    new TandemError(ErrorCode.InvalidArgument, `control-plane environment: ${variable} ${message}`, { fieldViolations: [{ path: variable, message }] });
  if ((e.TANDEM_TLS_CERT_FILE === undefined) !== (e.TANDEM_TLS_KEY_FILE === undefined)) {
    throw bad(e.TANDEM_TLS_CERT_FILE === undefined ? 'TANDEM_TLS_CERT_FILE' : 'TANDEM_TLS_KEY_FILE', 'must be set together with the other of TANDEM_TLS_CERT_FILE and TANDEM_TLS_KEY_FILE');
  }
  if (e.TANDEM_AUTH_TOKEN_REVIEW && context.runtime !== 'kubernetes') throw bad('TANDEM_AUTH_TOKEN_REVIEW', 'needs TANDEM_RUNTIME=kubernetes');
  const authEnabled = e.TANDEM_AUTH_TOKENS_FILE !== undefined || e.TANDEM_AUTH_TOKEN_REVIEW;
  if (!authEnabled && !isLoopback(context.host) && !e.TANDEM_AUTH_ALLOW_UNAUTHENTICATED) {
    throw bad(
      'TANDEM_AUTH_TOKENS_FILE',
      `is required when TANDEM_HOST (${context.host}) is not a loopback address (or set TANDEM_AUTH_TOKEN_REVIEW=true, or TANDEM_AUTH_ALLOW_UNAUTHENTICATED=true to serve without authentication)`,
    );
  }
  const audiences = e.TANDEM_AUTH_TOKEN_AUDIENCES?.split(',').map((s) => s.trim()).filter((s) => s !== '');
  return {
    authEnabled,
    ...(e.TANDEM_AUTH_TOKENS_FILE === undefined ? {} : { tokensFile: e.TANDEM_AUTH_TOKENS_FILE }),
    tokenReview: e.TANDEM_AUTH_TOKEN_REVIEW,
    ...(audiences?.length ? { tokenAudiences: audiences } : {}),
    unauthenticatedOnNetwork: !authEnabled && !isLoopback(context.host),
    metricsRequireAuth: e.TANDEM_METRICS_REQUIRE_AUTH,
    ...(e.TANDEM_TLS_CERT_FILE !== undefined && e.TANDEM_TLS_KEY_FILE !== undefined
      ? { tls: { certFile: e.TANDEM_TLS_CERT_FILE, keyFile: e.TANDEM_TLS_KEY_FILE, ...(e.TANDEM_TLS_CA_FILE === undefined ? {} : { caFile: e.TANDEM_TLS_CA_FILE }) } }
      : {}),
    redisRunUsers: e.TANDEM_REDIS_RUN_USERS,
    ...(e.TANDEM_DATASET_DIRS?.length ? { datasetDirs: e.TANDEM_DATASET_DIRS } : {}),
  };
}

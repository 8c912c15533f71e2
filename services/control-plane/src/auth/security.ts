import type { ServerCredentials } from '@grpc/grpc-js';
import type { Redis } from 'ioredis';
import type { Logger } from '@tandem/common';
import type { KubeApi } from '../kubernetes/kube-client.js';
import { HttpKubeApi } from '../kubernetes/kube-client.js';
import { inCluster, inClusterConnection, kubeconfigConnection } from '../kubernetes/kube-config.js';
import type { KubernetesConfig } from '../kubernetes/kubernetes-config.js';
import { ApiAuth } from './api-auth.js';
import { AuthenticatorChain, type Authenticator } from './authenticator.js';
import { RunRedisUsers } from './redis-run-users.js';
import { RunCredentials } from './run-credentials.js';
import type { SecurityConfig } from './security-config.js';
import { grpcServerCredentials, loadKeyPair, type TlsKeyPair } from './tls.js';
import { TokenReviewAuthenticator } from './token-review.js';
import { TokensFileAuthenticator } from './tokens-file.js';

/** A run's credentials as its processes get them. */
export interface IssuedRunCredentials {
  /** Bearer token the run's trainer presents to TrainerService. */
  token: string;
  /** Redis URL of the run's own ACL user (the shared URL when per-run users are off or refused). */
  redisUrl: string;
}

/** What {@link Security.create} needs. */
export interface SecurityDeps {
  redis: Pick<Redis, 'call' | 'hsetnx' | 'hget' | 'hdel'>;
  redisUrl: string;
  keyPrefix: string;
  log: Logger;
  /** Settings of the kubernetes runtime, for TokenReview's client. */
  kubernetes?: KubernetesConfig;
  /** Kubernetes client for TokenReview (tests inject one for a fake apiserver). */
  kubeApi?: KubeApi;
  /** Registers a listener for the control plane's Redis connection becoming ready again (re-makes run users). */
  onRedisReady?: (listener: () => void) => void;
  env?: Record<string, string | undefined>;
}

/**
 * The control plane's security, wired once from {@link SecurityConfig}: API
 * authentication, TLS for both servers, and (with authentication on)
 * per-run credentials: a token for the run's trainer and a Redis ACL user
 * for its rollout workers.
 */
export class Security {
  readonly api: ApiAuth;
  readonly tls: TlsKeyPair | undefined;
  /** Per-run tokens; undefined when authentication is off (nothing is enforced then). */
  readonly runCredentials: RunCredentials | undefined;
  private readonly redisUsers: RunRedisUsers | undefined;
  private readonly config: SecurityConfig | undefined;

  private constructor(parts: { api: ApiAuth; tls?: TlsKeyPair; runCredentials?: RunCredentials; redisUsers?: RunRedisUsers; config?: SecurityConfig }) {
    this.api = parts.api;
    this.tls = parts.tls;
    this.runCredentials = parts.runCredentials;
    this.redisUsers = parts.redisUsers;
    this.config = parts.config;
  }

  /** No authentication, no TLS, no per-run credentials. */
  static disabled(): Security {
    return new Security({ api: new ApiAuth() });
  }

  /** Loads the tokens file and certificates; throws naming the variable whose file is bad. */
  static async create(config: SecurityConfig, deps: SecurityDeps): Promise<Security> {
    const members: Authenticator[] = [];
    if (config.tokensFile !== undefined) {
      members.push(await TokensFileAuthenticator.create({ path: config.tokensFile, log: deps.log.child({ component: 'tokens-file' }) }));
    }
    if (config.tokenReview) {
      members.push(
        new TokenReviewAuthenticator({
          api: deps.kubeApi ?? kubeApiFor(deps.kubernetes, deps.env ?? process.env),
          log: deps.log,
          ...(config.tokenAudiences ? { audiences: config.tokenAudiences } : {}),
        }),
      );
    }
    const authenticator = members.length === 0 ? undefined : members.length === 1 ? members[0] : new AuthenticatorChain(members);
    const api = new ApiAuth({ ...(authenticator ? { authenticator } : {}), metricsRequireAuth: config.metricsRequireAuth });
    const redisUsers = config.authEnabled
      ? new RunRedisUsers({ redis: deps.redis, redisUrl: deps.redisUrl, keyPrefix: deps.keyPrefix, mode: config.redisRunUsers, log: deps.log.child({ component: 'redis-run-users' }) })
      : undefined;
    if (redisUsers) deps.onRedisReady?.(() => void redisUsers.reapply());
    return new Security({
      api,
      ...(config.tls ? { tls: loadKeyPair(config.tls) } : {}),
      ...(config.authEnabled
        ? {
            runCredentials: new RunCredentials({ redis: deps.redis, keyPrefix: deps.keyPrefix }),
            ...(redisUsers ? { redisUsers } : {}),
          }
        : {}),
      config,
    });
  }

  /** gRPC server credentials (TLS when a certificate is configured). */
  grpcCredentials(): ServerCredentials {
    return grpcServerCredentials(this.tls);
  }

  /** The scheme of the HTTP API. */
  get httpScheme(): 'http' | 'https' {
    return this.tls ? 'https' : 'http';
  }

  /** CA file the control plane's own children verify its certificate with. */
  get caFile(): string | undefined {
    return this.config?.tls?.caFile;
  }

  /**
   * Issues (idempotently) a run's credentials and its Redis user. Undefined
   * when authentication is off: processes then use the shared Redis URL
   * and TrainerService checks nothing.
   */
  async issue(runId: string): Promise<IssuedRunCredentials | undefined> {
    if (!this.runCredentials || !this.redisUsers) return undefined;
    const token = await this.runCredentials.issue(runId);
    const redisUrl = await this.redisUsers.create(runId, token);
    return { token, redisUrl };
  }

  /** Deletes a run's Redis user (after its workloads stopped); the token stays valid for late calls of an ended run. */
  async release(runId: string): Promise<void> {
    await this.redisUsers?.delete(runId);
  }

  /** Says at start-up what is protected and how; never a secret. */
  logStartup(log: Logger): void {
    const c = this.config;
    const fields = {
      authentication: this.api.mode,
      metrics: this.api.metricsRequireAuth ? 'token required' : 'open',
      tls: this.tls ? 'on' : 'off',
      runCredentials: this.runCredentials ? 'enforced' : 'off',
      redisRunUsers: this.runCredentials ? (c?.redisRunUsers ?? 'auto') : 'off',
    };
    if (!this.api.enabled && c?.unauthenticatedOnNetwork) {
      log.warn(fields, 'authentication is OFF on a non-loopback address (TANDEM_AUTH_ALLOW_UNAUTHENTICATED=true): anyone who can reach the API can act on every run');
    } else if (!this.api.enabled) {
      log.info(fields, 'authentication is off: the API binds a loopback address only (set TANDEM_AUTH_TOKENS_FILE to turn it on)');
    } else {
      log.info(fields, 'API authentication on');
    }
  }
}

function kubeApiFor(config: KubernetesConfig | undefined, env: Record<string, string | undefined>): KubeApi {
  const conn = config?.kubeconfig ? kubeconfigConnection(config.kubeconfig) : inCluster(env) ? inClusterConnection(env) : undefined;
  if (!conn) throw new Error('TANDEM_AUTH_TOKEN_REVIEW=true needs a cluster: run in a pod with a service account, or set TANDEM_KUBECONFIG');
  return new HttpKubeApi(conn);
}

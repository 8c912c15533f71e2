import { systemClock, TandemError, ErrorCode, type Clock, type Logger } from '@tandem/common';
import type { KubeApi } from '../kubernetes/kube-client.js';
import type { KubeObject, ResourceType } from '../kubernetes/resources.js';
import type { Authenticator } from './authenticator.js';
import { ROLES, type Principal, type Role } from './principal.js';
import { tokenDigest } from './tokens-file.js';

/** authentication.k8s.io/v1 TokenReview (cluster-scoped, create only). */
export const TOKENREVIEW: ResourceType = { group: 'authentication.k8s.io', version: 'v1', kind: 'TokenReview', plural: 'tokenreviews', namespaced: false };

interface TokenReviewStatus {
  authenticated?: boolean;
  user?: { username?: string; groups?: string[] };
  error?: string;
}

/** Options of {@link TokenReviewAuthenticator}. */
export interface TokenReviewOptions {
  api: KubeApi;
  log: Logger;
  clock?: Clock;
  /** How long an answer is reused for the same token. @default 10000 */
  cacheMs?: number;
  /** Audiences the token must be valid for (TokenReview spec.audiences); none checks the apiserver's default. */
  audiences?: string[];
}

const GROUP = /^tandem:(viewer|editor|admin):(\*|[a-z0-9]([-a-z0-9]*[a-z0-9])?)$/;
const SERVICE_ACCOUNT = /^system:serviceaccount:([^:]+):([^:]+)$/;
const MAX_CACHE = 10_000;

/**
 * Kubernetes TokenReview: the apiserver says who a token belongs to, and
 * the caller's namespaces come from what it says:
 *
 * - a service account `system:serviceaccount:<ns>:<name>` is an `editor` in
 *   its own namespace `<ns>`;
 * - each group `tandem:<role>:<namespace>` (or `tandem:<role>:*`) grants
 *   that role there; the strongest role granted applies to every namespace
 *   granted (keep roles per subject uniform, or use the tokens file).
 *
 * An authenticated user with neither gets no namespace (403 on everything).
 * Answers are cached for `cacheMs` by token digest.
 */
export class TokenReviewAuthenticator implements Authenticator {
  readonly name = 'token-review';
  private readonly options: TokenReviewOptions;
  private readonly clock: Clock;
  private readonly cache = new Map<string, { at: number; principal: Principal | undefined }>();

  constructor(options: TokenReviewOptions) {
    this.options = options;
    this.clock = options.clock ?? systemClock;
  }

  async authenticate(token: string): Promise<Principal | undefined> {
    const key = tokenDigest(token).toString('hex');
    const now = this.clock.now();
    const hit = this.cache.get(key);
    if (hit && now - hit.at < (this.options.cacheMs ?? 10_000)) return hit.principal;
    let review: KubeObject & { status?: TokenReviewStatus };
    try {
      review = await this.options.api.create(TOKENREVIEW, '', {
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'TokenReview',
        metadata: {},
        spec: { token, ...(this.options.audiences ? { audiences: this.options.audiences } : {}) },
      });
    } catch (err) {
      throw new TandemError(ErrorCode.Unavailable, `token review failed: ${TandemError.from(err).message}`, { cause: err });
    }
    const principal = principalOf(review.status ?? {});
    if (this.cache.size >= MAX_CACHE) this.cache.clear();
    this.cache.set(key, { at: now, principal });
    return principal;
  }
}

/** The principal a TokenReview status describes (undefined when not authenticated). */
export function principalOf(status: TokenReviewStatus): Principal | undefined {
  if (!status.authenticated || !status.user?.username) return undefined;
  const username = status.user.username;
  const namespaces = new Set<string>();
  let all = false;
  let role: Role | undefined;
  const grant = (r: Role, ns: string): void => {
    if (ns === '*') all = true;
    else namespaces.add(ns);
    if (role === undefined || ROLES.indexOf(r) > ROLES.indexOf(role)) role = r;
  };
  const sa = SERVICE_ACCOUNT.exec(username);
  if (sa) grant('editor', sa[1] as string);
  for (const g of status.user.groups ?? []) {
    const m = GROUP.exec(g);
    if (m) grant(m[1] as Role, m[2] as string);
  }
  return { subject: username, role: role ?? 'viewer', namespaces: all ? '*' : namespaces };
}

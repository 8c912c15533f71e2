import { type Authenticator, bearerToken, unauthenticated } from './authenticator.js';
import { ANONYMOUS_ADMIN, type Principal } from './principal.js';

/** How the API authenticates callers. */
export interface ApiAuthOptions {
  /** Knows the tokens; none means authentication is off (every caller is an admin of every namespace). */
  authenticator?: Authenticator;
  /** Whether GET /metrics needs a valid token too. @default false */
  metricsRequireAuth?: boolean;
}

/**
 * The API's authentication: both surfaces (HTTP and gRPC RunService) ask
 * it for the caller's {@link Principal} from the `authorization` header or
 * metadata, then authorize through run-access.ts.
 */
export class ApiAuth {
  readonly enabled: boolean;
  readonly metricsRequireAuth: boolean;
  private readonly authenticator: Authenticator | undefined;

  constructor(options: ApiAuthOptions = {}) {
    this.authenticator = options.authenticator;
    this.enabled = options.authenticator !== undefined;
    this.metricsRequireAuth = this.enabled && (options.metricsRequireAuth ?? false);
  }

  /** Name of the authenticator(s) for the start-up log, or `off`. */
  get mode(): string {
    return this.authenticator?.name ?? 'off';
  }

  /** The caller of a request with this `authorization` value; UNAUTHENTICATED when missing or unknown. */
  async principal(authorization: string | undefined): Promise<Principal> {
    if (!this.authenticator) return ANONYMOUS_ADMIN;
    const token = bearerToken(authorization);
    const p = await this.authenticator.authenticate(token);
    if (!p) throw unauthenticated('invalid or expired token');
    return p;
  }
}

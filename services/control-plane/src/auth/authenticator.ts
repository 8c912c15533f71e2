import { ErrorCode, TandemError } from '@tandem/common';
import type { Principal } from './principal.js';

/** Turns a bearer token into a {@link Principal}, or throws UNAUTHENTICATED. */
export interface Authenticator {
  /** Short name for the start-up log (`tokens-file`, `token-review`). */
  readonly name: string;
  /** The principal of `token`; undefined when this authenticator does not know it. */
  authenticate(token: string): Promise<Principal | undefined>;
}

/** Error of a request without credentials or with unknown ones. */
export function unauthenticated(message: string): TandemError {
  return new TandemError(ErrorCode.Unauthenticated, message, { reason: 'UNAUTHENTICATED' });
}

/**
 * The token of an `Authorization: Bearer <token>` header value. A missing
 * header or another scheme is UNAUTHENTICATED with a message saying which.
 */
export function bearerToken(header: string | undefined): string {
  if (header === undefined || header === '') throw unauthenticated('missing credentials: send "authorization: Bearer <token>"');
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
  if (!m) throw unauthenticated('malformed authorization header: expected "Bearer <token>"');
  return m[1] as string;
}

/**
 * Tries each authenticator in order; the first that knows the token wins.
 * An authenticator that fails (the apiserver is down) is skipped, and when
 * none knew the token its failure is what the caller sees (UNAVAILABLE),
 * so an outage is not reported as a bad token.
 */
export class AuthenticatorChain implements Authenticator {
  readonly name: string;
  private readonly members: Authenticator[];

  constructor(members: Authenticator[]) {
    this.members = members;
    this.name = members.map((m) => m.name).join('+');
  }

  async authenticate(token: string): Promise<Principal | undefined> {
    let failure: unknown;
    for (const m of this.members) {
      try {
        const p = await m.authenticate(token);
        if (p) return p;
      } catch (err) {
        failure ??= err;
      }
    }
    if (failure !== undefined) throw failure;
    return undefined;
  }
}

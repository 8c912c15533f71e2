import { ErrorCode, TandemError } from '@tandem/common';

/**
 * What a caller may do in the namespaces it is allowed:
 * `viewer` reads (get, list, watch, stats, the status page);
 * `editor` also writes (submit, cancel, scale, register/remove generators);
 * `admin` is an editor that may also read /metrics when it is protected.
 */
export type Role = 'viewer' | 'editor' | 'admin';

/** The kind of access an operation needs. */
export type Access = 'read' | 'write';

/** Every role, weakest first. */
export const ROLES: readonly Role[] = ['viewer', 'editor', 'admin'];

/** An authenticated caller. */
export interface Principal {
  /** Who it is, for logs (never the token). */
  subject: string;
  role: Role;
  /** Namespaces it may act in; `'*'` is every namespace. */
  namespaces: ReadonlySet<string> | '*';
}

/** The caller when authentication is off: every namespace, every operation. */
export const ANONYMOUS_ADMIN: Principal = { subject: 'anonymous (authentication off)', role: 'admin', namespaces: '*' };

/** Whether `principal` may do `access` in `namespace`. */
export function allows(principal: Principal, namespace: string, access: Access): boolean {
  if (access === 'write' && principal.role === 'viewer') return false;
  return principal.namespaces === '*' || principal.namespaces.has(namespace);
}

/**
 * Throws PERMISSION_DENIED unless `principal` may do `access` in `namespace`.
 * The message names the subject, the namespace and what was refused, never
 * whether the run exists beyond what the caller named.
 */
export function authorize(principal: Principal, namespace: string, access: Access, what: string): void {
  if (allows(principal, namespace, access)) return;
  const why =
    access === 'write' && principal.role === 'viewer' && (principal.namespaces === '*' || principal.namespaces.has(namespace))
      ? `role viewer may not ${what}`
      : `not allowed in namespace ${namespace}`;
  throw new TandemError(ErrorCode.PermissionDenied, `${principal.subject} may not ${what} in namespace ${namespace}: ${why}`, {
    reason: 'NAMESPACE_FORBIDDEN',
  });
}

/** The namespaces `principal` may read, of `namespaces`. */
export function readableNamespaces(principal: Principal): ReadonlySet<string> | '*' {
  return principal.namespaces;
}

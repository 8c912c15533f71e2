/**
 * One error type with a closed code enum (the connect-es model). Domain code
 * throws `TandemError`; each API surface maps codes to its own status in
 * exactly one place (HTTP: services/control-plane/src/api/http-errors.ts,
 * gRPC: services/control-plane/src/api/grpc-errors.ts).
 */

/** Closed set of error codes, named after gRPC status codes. */
export const ErrorCode = {
  InvalidArgument: 'INVALID_ARGUMENT',
  NotFound: 'NOT_FOUND',
  AlreadyExists: 'ALREADY_EXISTS',
  FailedPrecondition: 'FAILED_PRECONDITION',
  Aborted: 'ABORTED',
  ResourceExhausted: 'RESOURCE_EXHAUSTED',
  DeadlineExceeded: 'DEADLINE_EXCEEDED',
  Unavailable: 'UNAVAILABLE',
  Cancelled: 'CANCELLED',
  Unauthenticated: 'UNAUTHENTICATED',
  PermissionDenied: 'PERMISSION_DENIED',
  Internal: 'INTERNAL',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/**
 * Codes a caller may retry unchanged. UNAVAILABLE and DEADLINE_EXCEEDED are
 * transient by definition; RESOURCE_EXHAUSTED is retryable after backoff
 * (queue full, rate limit); ABORTED means a concurrent change won a race.
 * Everything else would fail again with the same input.
 */
export const RETRYABLE_CODES: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  ErrorCode.Unavailable,
  ErrorCode.DeadlineExceeded,
  ErrorCode.ResourceExhausted,
  ErrorCode.Aborted,
]);

/** One invalid field: a dotted path (`async.maxTrajectoryAgeSteps`) and why. */
export interface FieldViolation {
  path: string;
  message: string;
}

/** Options for {@link TandemError}. */
export interface TandemErrorOptions {
  cause?: unknown;
  /** The fields that were wrong, for INVALID_ARGUMENT. */
  fieldViolations?: FieldViolation[];
  /**
   * A stable, machine-readable reason within the code (e.g.
   * `STEP_ALREADY_TRAINED`), so callers need not match message text.
   */
  reason?: string;
}

/** The one error type of Tandem. */
export class TandemError extends Error {
  override readonly name = 'TandemError';
  readonly code: ErrorCode;
  readonly fieldViolations: FieldViolation[];
  readonly reason: string | undefined;

  constructor(code: ErrorCode, message: string, options: TandemErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.fieldViolations = options.fieldViolations ?? [];
    this.reason = options.reason;
  }

  /** Whether a caller may retry the same request. */
  get retryable(): boolean {
    return RETRYABLE_CODES.has(this.code);
  }

  /**
   * Normalises anything caught into a TandemError: UNAVAILABLE for a lost
   * connection (see {@link isConnectionError}), INTERNAL when unknown.
   */
  static from(err: unknown): TandemError {
    if (err instanceof TandemError) return err;
    if (err instanceof Error && isConnectionError(err)) return new TandemError(ErrorCode.Unavailable, err.message, { cause: err });
    if (err instanceof Error) return new TandemError(ErrorCode.Internal, err.message, { cause: err });
    return new TandemError(ErrorCode.Internal, String(err));
  }

  /** An INVALID_ARGUMENT error whose message lists every field violation. */
  static invalid(what: string, violations: FieldViolation[]): TandemError {
    const detail = violations.map((v) => `${v.path || '(root)'}: ${v.message}`).join('; ');
    return new TandemError(ErrorCode.InvalidArgument, `invalid ${what}: ${detail}`, {
      fieldViolations: violations,
    });
  }
}

const CONNECTION_ERROR_CODES: ReadonlySet<string> = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTCONN']);

/**
 * Whether an error says a backing service (Redis restarting or failing
 * over, a peer gone) could not be reached, rather than that the request was
 * wrong: such errors are UNAVAILABLE, which callers retry. Reporting them as
 * INTERNAL made a trainer give up (exit) on a Redis restart. ioredis fails a
 * command that outlived its reconnect attempts with MaxRetriesPerRequestError
 * and one issued on a closed connection with "Connection is closed."; sockets
 * fail with ECONNREFUSED and friends.
 */
export function isConnectionError(err: Error): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return (
    err.name === 'MaxRetriesPerRequestError' ||
    err.message === 'Connection is closed.' ||
    (typeof code === 'string' && CONNECTION_ERROR_CODES.has(code))
  );
}

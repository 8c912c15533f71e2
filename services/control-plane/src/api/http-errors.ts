import { ErrorCode, TandemError, type FieldViolation } from '@tandem/common';

const HTTP_STATUS: Record<ErrorCode, number> = {
  INVALID_ARGUMENT: 400,
  NOT_FOUND: 404,
  ALREADY_EXISTS: 409,
  FAILED_PRECONDITION: 412,
  ABORTED: 409,
  RESOURCE_EXHAUSTED: 429,
  DEADLINE_EXCEEDED: 504,
  UNAVAILABLE: 503,
  CANCELLED: 499,
  UNAUTHENTICATED: 401,
  PERMISSION_DENIED: 403,
  INTERNAL: 500,
};

/**
 * Reason of the INVALID_ARGUMENT raised for a body over
 * TANDEM_MAX_REQUEST_BYTES; HTTP answers it with 413, not 400.
 */
export const REQUEST_TOO_LARGE = 'REQUEST_TOO_LARGE';

/** The JSON body of every HTTP error. */
export interface HttpErrorBody {
  error: { code: ErrorCode; message: string; fieldViolations: FieldViolation[]; reason?: string };
}

/** The one place domain errors become HTTP statuses and bodies. */
export function toHttpError(err: unknown): { status: number; body: HttpErrorBody } {
  const e = TandemError.from(err);
  return {
    status: e.reason === REQUEST_TOO_LARGE ? 413 : HTTP_STATUS[e.code],
    body: {
      error: {
        code: e.code,
        message: e.code === ErrorCode.Internal ? 'internal error' : e.message,
        fieldViolations: e.fieldViolations,
        ...(e.reason ? { reason: e.reason } : {}),
      },
    },
  };
}

/** A decoded URL path segment; a malformed escape (`%E0%A4%A`) is the caller's error, naming the segment. */
export function pathSegment(raw: string, field: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw TandemError.invalid('request path', [{ path: field, message: `${JSON.stringify(raw)} is not a valid percent-encoded UTF-8 string` }]);
  }
}

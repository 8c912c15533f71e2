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

/** The JSON body of every HTTP error. */
export interface HttpErrorBody {
  error: { code: ErrorCode; message: string; fieldViolations: FieldViolation[]; reason?: string };
}

/** The one place domain errors become HTTP statuses and bodies. */
export function toHttpError(err: unknown): { status: number; body: HttpErrorBody } {
  const e = TandemError.from(err);
  return {
    status: HTTP_STATUS[e.code],
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

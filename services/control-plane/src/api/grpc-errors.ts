import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { ErrorCode, TandemError } from '@tandem/common';

const GRPC_STATUS: Record<ErrorCode, status> = {
  INVALID_ARGUMENT: status.INVALID_ARGUMENT,
  NOT_FOUND: status.NOT_FOUND,
  ALREADY_EXISTS: status.ALREADY_EXISTS,
  FAILED_PRECONDITION: status.FAILED_PRECONDITION,
  ABORTED: status.ABORTED,
  RESOURCE_EXHAUSTED: status.RESOURCE_EXHAUSTED,
  DEADLINE_EXCEEDED: status.DEADLINE_EXCEEDED,
  UNAVAILABLE: status.UNAVAILABLE,
  CANCELLED: status.CANCELLED,
  UNAUTHENTICATED: status.UNAUTHENTICATED,
  PERMISSION_DENIED: status.PERMISSION_DENIED,
  INTERNAL: status.INTERNAL,
};

/**
 * The one place domain errors become gRPC statuses. Field violations travel
 * as JSON in the `tandem-field-violations` trailer, the message names them
 * too; a stable reason, when there is one, in `tandem-error-reason`. INTERNAL errors do not leak their cause to the caller.
 */
export function toGrpcError(err: unknown): Partial<ServiceError> {
  const e = TandemError.from(err);
  const metadata = new Metadata();
  if (e.fieldViolations.length > 0) metadata.set('tandem-field-violations', JSON.stringify(e.fieldViolations));
  metadata.set('tandem-error-code', e.code);
  if (e.reason) metadata.set('tandem-error-reason', e.reason);
  return {
    code: GRPC_STATUS[e.code],
    details: e.code === ErrorCode.Internal ? 'internal error' : e.message,
    metadata,
  };
}

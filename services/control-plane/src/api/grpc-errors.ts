import {
  Metadata,
  status,
  type ServiceDefinition,
  type ServiceError,
  type UntypedHandleCall,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
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
  if (e.fieldViolations.length > 0) metadata.set('tandem-field-violations', asciiJson(e.fieldViolations));
  metadata.set('tandem-error-code', e.code);
  if (e.reason) metadata.set('tandem-error-reason', e.reason);
  return {
    code: GRPC_STATUS[e.code],
    details: e.code === ErrorCode.Internal ? 'internal error' : e.message,
    metadata,
  };
}

/**
 * JSON with every character outside printable ASCII written as `\uXXXX`:
 * the same value to any JSON parser, and a legal gRPC metadata value.
 * grpc-js throws on anything else, and field violations can quote what the
 * caller sent (an unknown key with any characters in it); the call would
 * then never be answered.
 */
function asciiJson(value: unknown): string {
  return JSON.stringify(value).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Marks a request whose bytes did not decode (see {@link withDecodeErrors}). */
const UNDECODABLE = Symbol('undecodable request');
interface Undecodable {
  [UNDECODABLE]: string;
}

function undecodable(message: unknown): string | undefined {
  return typeof message === 'object' && message !== null && UNDECODABLE in message ? (message as Undecodable)[UNDECODABLE] : undefined;
}

function decodeError(method: string, reason: string): TandemError {
  return TandemError.invalid(`${method} request`, [{ path: '', message: `the message does not decode: ${reason}` }]);
}

/**
 * A service whose requests that fail to decode are INVALID_ARGUMENT naming
 * the method and why. grpc-js answers a throwing deserializer with INTERNAL
 * ("Error deserializing request"), which tells a client that sent garbage
 * that the server is broken. The wrapped deserializer returns a marker
 * instead, and each wrapped handler answers the marker with the error:
 * unary calls through the callback, streams by failing the call.
 */
export function withDecodeErrors<D extends ServiceDefinition>(
  definition: D,
  handlers: UntypedServiceImplementation,
): { definition: D; handlers: UntypedServiceImplementation } {
  const defs: Record<string, unknown> = {};
  const wrapped: UntypedServiceImplementation = {};
  for (const [name, method] of Object.entries(definition)) {
    const decode = method.requestDeserialize;
    defs[name] = {
      ...method,
      requestDeserialize: (bytes: Buffer): unknown => {
        try {
          return decode(bytes);
        } catch (err) {
          return { [UNDECODABLE]: err instanceof Error ? err.message : String(err) } satisfies Undecodable;
        }
      },
    };
    const handler = handlers[name];
    if (!handler) continue;
    wrapped[name] = wrapHandler(method.path, method.requestStream, handler);
  }
  return { definition: defs as D, handlers: wrapped };
}

function wrapHandler(path: string, requestStream: boolean, handler: UntypedHandleCall): UntypedHandleCall {
  // The handler kinds differ in arity and call type; each branch calls the
  // original with exactly what grpc-js passed.
  const h = handler as (call: unknown, callback?: unknown) => void;
  if (requestStream) {
    type StreamCall = { on: (e: string, l: (m: unknown) => void) => unknown; emit: (e: 'error', err: unknown) => boolean };
    return ((call: StreamCall, callback?: unknown) => {
      const on = call.on.bind(call);
      on('data', (message) => {
        const reason = undecodable(message);
        if (reason !== undefined) call.emit('error', toGrpcError(decodeError(path, reason)));
      });
      // The handler's own `data` listeners never see the marker.
      call.on = (event, listener) => on(event, event === 'data' ? (m) => undecodable(m) === undefined && listener(m) : listener);
      h(call, callback);
    }) as UntypedHandleCall;
  }
  return ((call: { request: unknown; emit: (e: 'error', err: unknown) => boolean }, callback?: (err: Partial<ServiceError>) => void) => {
    const reason = undecodable(call.request);
    if (reason === undefined) return h(call, callback);
    const err = toGrpcError(decodeError(path, reason));
    if (callback) callback(err);
    else call.emit('error', err);
  }) as UntypedHandleCall;
}

import { readFileSync } from 'node:fs';
import { credentials, InterceptingCall, Metadata, status, type CallOptions, type Interceptor, type ServiceError } from '@grpc/grpc-js';
import { ErrorCode, TandemError } from '@tandem/common';
import {
  TrainerServiceClient,
  type AckBatchRequest,
  type AckBatchResponse,
  type ControlMessage,
  type PullBatchRequest,
  type PullBatchResponse,
  type TrainerMessage,
} from '@tandem/protocol';

/** A call in flight that can be cancelled. */
export interface CancellableCall {
  cancel(): void;
}

/** The client side of the Attach stream, as the trainer uses it. */
export interface AttachCall extends CancellableCall {
  write(message: TrainerMessage): unknown;
  end(): unknown;
  on(event: 'data', listener: (message: ControlMessage) => void): unknown;
  on(event: 'error', listener: (err: ServiceError) => void): unknown;
  on(event: 'end', listener: () => void): unknown;
}

/**
 * The part of `TrainerServiceClient` the simulated trainer uses (the real
 * grpc-js client satisfies it; tests pass a fake).
 */
export interface TrainerRpcClient {
  attach(options: Partial<CallOptions>): AttachCall;
  pullBatch(
    request: PullBatchRequest,
    metadata: Metadata,
    options: Partial<CallOptions>,
    callback: (error: ServiceError | null, response: PullBatchResponse) => void,
  ): CancellableCall;
  ackBatch(
    request: AckBatchRequest,
    metadata: Metadata,
    options: Partial<CallOptions>,
    callback: (error: ServiceError | null, response: AckBatchResponse) => void,
  ): CancellableCall;
}

/** Options of {@link createTrainerClient}. */
export interface TrainerClientOptions {
  server: string;
  maxReceiveMessageBytes: number;
  reconnect: { initialMs: number; maxMs: number };
  /** The run's credential, sent as `authorization: Bearer` on every call. */
  token?: string | undefined;
  /** Dial with TLS. @default false */
  tls?: boolean;
  /** CA (PEM file) to verify the server with; system roots when unset. */
  caFile?: string | undefined;
}

/**
 * The real grpc-js client. The channel's own reconnect backoff is aligned
 * with ours: grpc-js defaults to a 120 s ceiling, which would keep calls
 * failing long after a restarted control plane is back.
 */
export function createTrainerClient(options: TrainerClientOptions): TrainerServiceClient {
  const channel = options.tls || options.caFile !== undefined ? credentials.createSsl(options.caFile === undefined ? null : readFileSync(options.caFile)) : credentials.createInsecure();
  return new TrainerServiceClient(options.server, channel, {
    'grpc.max_receive_message_length': options.maxReceiveMessageBytes,
    'grpc.initial_reconnect_backoff_ms': options.reconnect.initialMs,
    'grpc.max_reconnect_backoff_ms': options.reconnect.maxMs,
    ...(options.token === undefined ? {} : { interceptors: [bearerInterceptor(options.token)] }),
  });
}

/**
 * Adds `authorization: Bearer <token>` to every call, streams included.
 * An interceptor rather than call credentials: grpc-js refuses call
 * credentials on a plain-text channel, and the loopback demo runs without TLS.
 */
export function bearerInterceptor(token: string): Interceptor {
  return (opts, nextCall) =>
    new InterceptingCall(nextCall(opts), {
      start(metadata, listener, next) {
        metadata.set('authorization', `Bearer ${token}`);
        next(metadata, listener);
      },
    });
}

/**
 * Runs one unary call as a promise. When `signal` aborts the call is
 * cancelled and the promise rejects with the signal's reason. The deadline
 * is wall-clock time, not the injected clock: it is gRPC's, and a virtual
 * clock in tests must not expire real calls.
 */
export function unary<Res>(
  start: (metadata: Metadata, options: Partial<CallOptions>, callback: (err: ServiceError | null, res: Res) => void) => CancellableCall,
  options: { deadlineMs: number; signal?: AbortSignal },
): Promise<Res> {
  const { signal } = options;
  return new Promise<Res>((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    let settled = false;
    const onAbort = (): void => {
      if (settled) return;
      settled = true;
      call.cancel();
      reject(signal?.reason);
    };
    const call = start(new Metadata(), { deadline: Date.now() + options.deadlineMs }, (err, res) => {
      signal?.removeEventListener('abort', onAbort);
      if (settled) return;
      settled = true;
      if (err) reject(fromGrpcError(err));
      else resolve(res);
    });
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

const ERROR_CODE_BY_STATUS: ReadonlyMap<number, ErrorCode> = new Map([
  [status.INVALID_ARGUMENT, ErrorCode.InvalidArgument],
  [status.NOT_FOUND, ErrorCode.NotFound],
  [status.ALREADY_EXISTS, ErrorCode.AlreadyExists],
  [status.FAILED_PRECONDITION, ErrorCode.FailedPrecondition],
  [status.ABORTED, ErrorCode.Aborted],
  [status.RESOURCE_EXHAUSTED, ErrorCode.ResourceExhausted],
  [status.DEADLINE_EXCEEDED, ErrorCode.DeadlineExceeded],
  [status.UNAVAILABLE, ErrorCode.Unavailable],
  [status.CANCELLED, ErrorCode.Cancelled],
  [status.UNAUTHENTICATED, ErrorCode.Unauthenticated],
  [status.PERMISSION_DENIED, ErrorCode.PermissionDenied],
]);

/** Whether `err` is a gRPC status error (grpc-js ServiceError). */
export function isServiceError(err: unknown): err is ServiceError {
  return err instanceof Error && typeof (err as Partial<ServiceError>).code === 'number';
}

/** Turns a gRPC status error (or anything caught) into a TandemError. */
export function fromGrpcError(err: unknown): TandemError {
  if (err instanceof TandemError) return err;
  if (isServiceError(err)) {
    const e = err;
    const code = ERROR_CODE_BY_STATUS.get(e.code) ?? ErrorCode.Internal;
    return new TandemError(code, e.details || e.message, { cause: err });
  }
  return TandemError.from(err);
}

/**
 * Whether the trainer reconnects after `err` (with backoff) instead of
 * exiting. UNAVAILABLE and DEADLINE_EXCEEDED are what a restarting or
 * failing-over control plane looks like; ABORTED is a lost race; CANCELLED
 * that we did not ask for is a server shutting down mid-call. Not retried:
 * RESOURCE_EXHAUSTED (on the client it means a batch larger than
 * maxReceiveMessageBytes, which the same request hits again), and
 * INVALID_ARGUMENT / NOT_FOUND / FAILED_PRECONDITION, which the same request
 * fails again (see {@link needsResync} for the one exception).
 */
export function isRetryable(err: TandemError): boolean {
  return (
    err.code === ErrorCode.Unavailable ||
    err.code === ErrorCode.DeadlineExceeded ||
    err.code === ErrorCode.Aborted ||
    err.code === ErrorCode.Cancelled
  );
}

/**
 * FAILED_PRECONDITION because our idea of the next step is out of date
 * ("step s … was already trained", "… is ahead of the trainer"): another
 * trainer process, or the control plane's restored state, moved the run. A
 * fresh `welcome` says which step is next. The control plane only tells
 * these apart from other preconditions by message, so match on it.
 */
export function needsResync(err: TandemError): boolean {
  return err.code === ErrorCode.FailedPrecondition && /already trained|ahead of the trainer/.test(err.message);
}

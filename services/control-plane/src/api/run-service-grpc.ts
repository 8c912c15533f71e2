import type { Metadata, ServerWritableStream } from '@grpc/grpc-js';
import { RunEvent, type RunServiceServer, type WatchRunRequest } from '@tandem/protocol';
import type { RunManager } from '../runs/run-manager.js';
import { ApiAuth } from '../auth/api-auth.js';
import { RunAccess } from '../auth/run-access.js';
import type { Principal } from '../auth/principal.js';
import { toGrpcError } from './grpc-errors.js';
import { runToProto } from './run-proto.js';

/**
 * gRPC handlers of tandem.v1.RunService. Each answers exactly once. Every
 * call authenticates from its `authorization` metadata and is authorized
 * through {@link RunAccess}, as the HTTP surface is.
 */
export function runServiceHandlers(runs: RunManager, auth: ApiAuth = new ApiAuth()): RunServiceServer {
  const access = new RunAccess(runs);
  const caller = (metadata: Metadata): Promise<Principal> => auth.principal(authorizationOf(metadata));
  return {
    submitRun(call, callback) {
      caller(call.metadata)
        .then((p) => access.submit(p, { spec: call.request.spec, runId: call.request.runId, namespace: call.request.namespace }))
        .then((v) => callback(null, runToProto(v)))
        .catch((err: unknown) => callback(toGrpcError(err)));
    },
    getRun(call, callback) {
      caller(call.metadata)
        .then((p) => access.get(p, call.request.runId))
        .then((v) => callback(null, runToProto(v)))
        .catch((err: unknown) => callback(toGrpcError(err)));
    },
    listRuns(call, callback) {
      caller(call.metadata)
        .then((p) => access.list(p, call.request.namespace))
        .then((vs) => callback(null, { runs: vs.map(runToProto) }))
        .catch((err: unknown) => callback(toGrpcError(err)));
    },
    scaleRun(call, callback) {
      caller(call.metadata)
        .then((p) => access.scale(p, call.request.runId, call.request.generators))
        .then((v) => callback(null, runToProto(v)))
        .catch((err: unknown) => callback(toGrpcError(err)));
    },
    cancelRun(call, callback) {
      caller(call.metadata)
        .then((p) => access.cancel(p, call.request.runId, call.request.reason))
        .then((v) => callback(null, runToProto(v)))
        .catch((err: unknown) => callback(toGrpcError(err)));
    },
    watchRun(call: ServerWritableStream<WatchRunRequest, RunEvent>) {
      const abort = new AbortController();
      call.on('cancelled', () => abort.abort());
      (async () => {
        const stream = await access.watch(await caller(call.metadata), call.request.runId, abort.signal);
        for await (const view of stream) {
          const proto = runToProto(view);
          call.write(RunEvent.fromPartial({ runId: view.id, type: 'status', status: proto.status }));
        }
      })()
        .then(() => call.end())
        .catch((err: unknown) => {
          if (abort.signal.aborted) return;
          // Not call.destroy(err): a destroyed stream never runs _final, so
          // grpc-js never sent the status and the client hung until its deadline.
          call.emit('error', toGrpcError(err));
        });
    },
  };
}

/** The `authorization` metadata value of a call (the first, when sent twice). */
export function authorizationOf(metadata: Metadata): string | undefined {
  const v = metadata.get('authorization')[0];
  return typeof v === 'string' ? v : undefined;
}

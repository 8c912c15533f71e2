import { status, type ServerWritableStream } from '@grpc/grpc-js';
import { RunEvent, type RunServiceServer, type WatchRunRequest } from '@tandem/protocol';
import type { RunManager } from '../runs/run-manager.js';
import { toGrpcError } from './grpc-errors.js';
import { runToProto } from './run-proto.js';

/** gRPC handlers of tandem.v1.RunService. Each answers exactly once. */
export function runServiceHandlers(runs: RunManager): RunServiceServer {
  return {
    submitRun(call, callback) {
      runs
        .submit({ spec: call.request.spec, runId: call.request.runId })
        .then((v) => callback(null, runToProto(v)))
        .catch((err: unknown) => callback(toGrpcError(err)));
    },
    getRun(call, callback) {
      runs
        .get(call.request.runId)
        .then((v) => callback(null, runToProto(v)))
        .catch((err: unknown) => callback(toGrpcError(err)));
    },
    listRuns(_call, callback) {
      runs
        .list()
        .then((vs) => callback(null, { runs: vs.map(runToProto) }))
        .catch((err: unknown) => callback(toGrpcError(err)));
    },
    scaleRun(call, callback) {
      runs
        .scale(call.request.runId, call.request.generators)
        .then((v) => callback(null, runToProto(v)))
        .catch((err: unknown) => callback(toGrpcError(err)));
    },
    cancelRun(call, callback) {
      runs
        .cancel(call.request.runId, call.request.reason)
        .then((v) => callback(null, runToProto(v)))
        .catch((err: unknown) => callback(toGrpcError(err)));
    },
    watchRun(call: ServerWritableStream<WatchRunRequest, RunEvent>) {
      const abort = new AbortController();
      call.on('cancelled', () => abort.abort());
      (async () => {
        for await (const view of runs.watch(call.request.runId, abort.signal)) {
          const proto = runToProto(view);
          call.write(RunEvent.fromPartial({ runId: view.id, type: 'status', status: proto.status }));
        }
      })()
        .then(() => call.end())
        .catch((err: unknown) => {
          if (abort.signal.aborted) return;
          call.destroy(Object.assign(new Error(), toGrpcError(err), { code: toGrpcError(err).code ?? status.INTERNAL }));
        });
    },
  };
}

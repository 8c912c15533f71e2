import type { Metadata, ServerDuplexStream } from '@grpc/grpc-js';
import { ErrorCode, TandemError, type Logger } from '@tandem/common';
import {
  BatchState,
  ControlMessage,
  PullBatchResponse,
  TrainerServiceService,
  type TrainerMessage,
  type TrainerServiceServer,
} from '@tandem/protocol';
import { ExactWriter, RunRecordStore, delimitedSize, isPlainVarint, varintSize, type RolloutStore } from '@tandem/rollout-queue';
import type { TrainerBroker } from '../broker/trainer-broker.js';
import type { TrainerSessions } from '../broker/trainer-sessions.js';
import { toGrpcError } from './grpc-errors.js';
import { bearerToken } from '../auth/authenticator.js';
import { authorizationOf } from './run-service-grpc.js';

/** Collaborators of the TrainerService handlers. */
export interface TrainerServiceDeps {
  broker: TrainerBroker;
  sessions: TrainerSessions;
  store: RolloutStore;
  keyPrefix: string;
  log: Logger;
  /**
   * Per-run credentials: when set, every call must carry its run's token
   * (`authorization: Bearer <token>`), so a trainer of one run cannot pull
   * another run's batches or report its weights. Unset: authentication off.
   */
  runCredentials?: { verify(runId: string, token: string): Promise<boolean> };
}

/**
 * The check of a trainer call's credential: resolves when the call carries
 * `runId`'s credential (or per-run credentials are off); UNAUTHENTICATED
 * without one, PERMISSION_DENIED with another run's. Without `runId` (a
 * stream whose first message names the run) it checks only that a bearer
 * token is there.
 */
export function trainerCredentialCheck(runCredentials: TrainerServiceDeps['runCredentials']): (metadata: Metadata, runId?: string) => Promise<void> {
  return async (metadata, runId) => {
    if (!runCredentials) return;
    const token = bearerToken(authorizationOf(metadata));
    if (runId === undefined) return;
    if (!(await runCredentials.verify(runId, token))) {
      throw new TandemError(ErrorCode.PermissionDenied, `the credential presented is not run ${runId}'s: a trainer may act on its own run only`, { reason: 'RUN_CREDENTIAL_MISMATCH' });
    }
  };
}

/** gRPC handlers of tandem.v1.TrainerService. Each answers exactly once. */
export function trainerServiceHandlers(deps: TrainerServiceDeps): TrainerServiceServer {
  const { broker, sessions, store, log } = deps;
  const records = new RunRecordStore(store.redis, deps.keyPrefix);
  const checkRun = trainerCredentialCheck(deps.runCredentials);
  return {
    pullBatch(call, callback) {
      const { runId, step, waitMs } = call.request;
      const abort = new AbortController();
      call.on('cancelled', () => abort.abort());
      checkRun(call.metadata, runId)
        .then(() => broker.pullBatch(runId, step, waitMs, abort.signal))
        .then((result) => {
          if (result.state === 'ready') {
            callback(null, {
              runId,
              step,
              state: BatchState.BATCH_STATE_READY,
              groups: result.batch.payloads,
              droppedStale: result.batch.droppedStale,
              reserved: result.batch.reserved,
            });
            return;
          }
          callback(null, {
            runId,
            step,
            state: result.state === 'run_ended' ? BatchState.BATCH_STATE_RUN_ENDED : BatchState.BATCH_STATE_NOT_READY,
            groups: [],
            droppedStale: result.droppedStale,
            reserved: false,
          });
        })
        .catch((err: unknown) => callback(toGrpcError(err)));
    },

    ackBatch(call, callback) {
      checkRun(call.metadata, call.request.runId)
        .then(() => broker.ackBatch(call.request.runId, call.request.step))
        .then((r) => callback(null, r))
        .catch((err: unknown) => callback(toGrpcError(err)));
    },

    attach(call: ServerDuplexStream<TrainerMessage, ControlMessage>) {
      let runId = '';
      let registered = false;
      // Messages that arrive while hello is still being checked are kept
      // and handled, in order, once the session exists.
      const early: TrainerMessage[] = [];
      const fail = (err: unknown): void => {
        call.emit('error', toGrpcError(err));
      };
      const handle = (msg: TrainerMessage): void => {
        const kind = msg.kind;
        if (kind?.$case === 'weightsReady') {
          sessions.weightsReady(runId, kind.weightsReady.policyVersion, kind.weightsReady.updateInfoJson);
        } else if (kind?.$case === 'weightsSent') sessions.weightsSent(runId, kind.weightsSent);
      };
      call.on('data', (msg: TrainerMessage) => {
        const kind = msg.kind;
        if (!kind) return;
        if (kind.$case !== 'hello') {
          if (!runId) fail(TandemError.invalid('attach stream', [{ path: 'hello', message: 'the first message must be hello' }]));
          else if (!registered) early.push(msg);
          else handle(msg);
          return;
        }
        if (runId) return; // a second hello on the same stream is ignored
        const hello = kind.hello;
        runId = hello.runId;
        checkRun(call.metadata, hello.runId)
          .then(() => Promise.all([store.forRun(hello.runId).snapshot(), records.get(hello.runId)]))
          .then(([snap, record]) => {
            sessions.register({
              runId,
              trainerId: hello.trainerId,
              simulated: hello.simulated,
              weightsReadyVersion: hello.policyVersion,
              address: peerHost(call.getPeer()),
              stream: call,
            });
            registered = true;
            void store.journal.record(runId, 'Normal', 'TrainerAttached', `trainer ${hello.trainerId} attached at step ${snap.trainerStep} (weights at version ${hello.policyVersion})`);
            call.write(
              ControlMessage.fromPartial({
                kind: {
                  $case: 'welcome',
                  welcome: {
                    runId,
                    nextStep: snap.trainerStep,
                    maxSteps: snap.settings.maxSteps,
                    maxTrajectoryAgeSteps: snap.settings.maxTrajectoryAgeSteps,
                    batchGroups: snap.settings.batchGroups,
                    groupSize: record?.spec.algorithm.groupSize ?? 0,
                  },
                },
              }),
            );
            for (const m of early.splice(0)) handle(m);
            if (snap.state !== 'open') sessions.endRun(runId, snap.state === 'complete' ? 'Succeeded' : snap.state, 'the run has ended');
          })
          .catch(fail);
      });
      call.on('end', () => {
        if (registered) {
          sessions.unregister(runId, call);
          void store.journal.record(runId, 'Normal', 'TrainerDetached', 'the trainer closed its attach stream');
        }
        call.end();
      });
      call.on('error', (err) => {
        log.debug({ err, runId }, 'attach stream error');
        if (registered) {
          sessions.unregister(runId, call);
          void store.journal.record(runId, 'Warning', 'TrainerLost', `the trainer's attach stream broke: ${err.message}`);
        }
      });
    },
  };
}

/**
 * The TrainerService definition to serve: the generated one, with PullBatch
 * responses serialized by {@link serializePullBatchResponse}. A batch is
 * batchGroups × ~64 KiB of stored bytes; the generated serializer grows its
 * buffer by doubling, copies the result in `finish()` and again in
 * `Buffer.from`, which made it the control plane's largest CPU cost.
 */
export const trainerServiceDefinition: typeof TrainerServiceService = {
  ...TrainerServiceService,
  pullBatch: { ...TrainerServiceService.pullBatch, responseSerialize: serializePullBatchResponse },
};

/** Largest response whose serialization buffer is kept for the next one. */
const MAX_RETAINED_BYTES = 64 * 1024 * 1024;
let scratch: Buffer | undefined;

/**
 * The PullBatch serializer grpc-js calls. grpc-js copies what a serializer
 * returns into its own framed message before `serialize` returns to it
 * (ServerInterceptingCall.serializeMessage, grpc-js 1.14, pinned), and
 * never looks at the returned buffer again; so the bytes are written into
 * one buffer kept for the next response instead of a fresh 4 MiB each time.
 * Fresh memory is not free: the kernel maps it page by page on first write,
 * and on the VMs we measured (docs/benchmarks.md) a page fault costs ~15 µs,
 * which made these allocations a quarter of the control plane's CPU time.
 * trainer-service-grpc.test.ts checks the copy-before-return behaviour over
 * a real server.
 */
export function serializePullBatchResponse(value: PullBatchResponse): Buffer {
  const size = pullBatchResponseSize(value);
  if (size === undefined) return Buffer.from(PullBatchResponse.encode(value).finish());
  if (size > MAX_RETAINED_BYTES) return writePullBatchResponse(value, new ExactWriter(size));
  if (!scratch || scratch.byteLength < size) scratch = Buffer.allocUnsafeSlow(Math.max(size, scratch?.byteLength ?? 0));
  return writePullBatchResponse(value, new ExactWriter(size, scratch));
}

/**
 * `Buffer.from(PullBatchResponse.encode(value).finish())`, byte for byte,
 * with each group's stored bytes copied once into a buffer of the exact size.
 */
export function encodePullBatchResponse(value: PullBatchResponse): Buffer {
  const size = pullBatchResponseSize(value);
  if (size === undefined) return Buffer.from(PullBatchResponse.encode(value).finish());
  return writePullBatchResponse(value, new ExactWriter(size));
}

/** Encoded size, or undefined for values the exact writer does not handle (the generated encoder does). */
function pullBatchResponseSize(value: PullBatchResponse): number | undefined {
  if (!isPlainVarint(value.step) || !isPlainVarint(value.state) || !isPlainVarint(value.droppedStale) || value.droppedStale > 0xffffffff) {
    return undefined;
  }
  let size = 0;
  if (value.runId !== '') size += delimitedSize(Buffer.byteLength(value.runId, 'utf8'));
  if (value.step !== 0) size += 1 + varintSize(value.step);
  if (value.state !== 0) size += 1 + varintSize(value.state);
  for (const g of value.groups) size += delimitedSize(g.byteLength);
  if (value.droppedStale !== 0) size += 1 + varintSize(value.droppedStale);
  if (value.reserved) size += 2;
  return size;
}

function writePullBatchResponse(value: PullBatchResponse, w: ExactWriter): Buffer {
  if (value.runId !== '') w.tag(10).string(value.runId, Buffer.byteLength(value.runId, 'utf8'));
  if (value.step !== 0) w.tag(16).varint(value.step);
  if (value.state !== 0) w.tag(24).varint(value.state);
  for (const g of value.groups) w.tag(34).bytes(g);
  if (value.droppedStale !== 0) w.tag(40).varint(value.droppedStale);
  if (value.reserved) w.tag(48).varint(1);
  return w.finish();
}

/** Host part of a grpc-js peer string ("ipv4:1.2.3.4:5678", "ipv6:[::1]:5678", "1.2.3.4:5678"). */
export function peerHost(peer: string): string {
  const p = peer.replace(/^ipv[46]:/, '');
  const v6 = /^\[([^\]]+)\]/.exec(p);
  if (v6) return v6[1] as string;
  const i = p.lastIndexOf(':');
  return i > 0 ? p.slice(0, i) : p;
}

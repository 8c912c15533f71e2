import type { ServerDuplexStream } from '@grpc/grpc-js';
import { TandemError, type Logger } from '@tandem/common';
import {
  BatchState,
  ControlMessage,
  type TrainerMessage,
  type TrainerServiceServer,
} from '@tandem/protocol';
import type { RolloutStore } from '@tandem/rollout-queue';
import type { TrainerBroker } from '../broker/trainer-broker.js';
import type { TrainerSessions } from '../broker/trainer-sessions.js';
import { toGrpcError } from './grpc-errors.js';

/** Collaborators of the TrainerService handlers. */
export interface TrainerServiceDeps {
  broker: TrainerBroker;
  sessions: TrainerSessions;
  store: RolloutStore;
  log: Logger;
}

/** gRPC handlers of tandem.v1.TrainerService. Each answers exactly once. */
export function trainerServiceHandlers(deps: TrainerServiceDeps): TrainerServiceServer {
  const { broker, sessions, store, log } = deps;
  return {
    pullBatch(call, callback) {
      const { runId, step, waitMs } = call.request;
      const abort = new AbortController();
      call.on('cancelled', () => abort.abort());
      broker
        .pullBatch(runId, step, waitMs, abort.signal)
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
      broker
        .ackBatch(call.request.runId, call.request.step)
        .then((r) => callback(null, r))
        .catch((err: unknown) => callback(toGrpcError(err)));
    },

    attach(call: ServerDuplexStream<TrainerMessage, ControlMessage>) {
      let runId = '';
      const fail = (err: unknown): void => {
        call.emit('error', toGrpcError(err));
      };
      call.on('data', (msg: TrainerMessage) => {
        const kind = msg.kind;
        if (!kind) return;
        if (kind.$case === 'hello') {
          const hello = kind.hello;
          store
            .forRun(hello.runId)
            .snapshot()
            .then((snap) => {
              runId = hello.runId;
              sessions.register({
                runId,
                trainerId: hello.trainerId,
                simulated: hello.simulated,
                weightsReadyVersion: hello.policyVersion,
                address: peerHost(call.getPeer()),
                stream: call,
              });
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
                      groupSize: 0,
                    },
                  },
                }),
              );
            })
            .catch(fail);
          return;
        }
        if (!runId) {
          fail(TandemError.invalid('attach stream', [{ path: 'hello', message: 'the first message must be hello' }]));
          return;
        }
        if (kind.$case === 'weightsReady') {
          sessions.weightsReady(runId, kind.weightsReady.policyVersion, kind.weightsReady.updateInfoJson);
        }
        else if (kind.$case === 'weightsSent') sessions.weightsSent(runId, kind.weightsSent);
      });
      call.on('end', () => {
        if (runId) sessions.unregister(runId, call);
        call.end();
      });
      call.on('error', (err) => {
        log.debug({ err, runId }, 'attach stream error');
        if (runId) sessions.unregister(runId, call);
      });
    },
  };
}

/** Host part of a grpc-js peer string ("ipv4:1.2.3.4:5678", "ipv6:[::1]:5678", "1.2.3.4:5678"). */
export function peerHost(peer: string): string {
  const p = peer.replace(/^ipv[46]:/, '');
  const v6 = /^\[([^\]]+)\]/.exec(p);
  if (v6) return v6[1] as string;
  const i = p.lastIndexOf(':');
  return i > 0 ? p.slice(0, i) : p;
}

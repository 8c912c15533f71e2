import type { ServerDuplexStream } from '@grpc/grpc-js';
import { TandemError, type Logger } from '@tandem/common';
import {
  BatchState,
  ControlMessage,
  type TrainerMessage,
  type TrainerServiceServer,
} from '@tandem/protocol';
import { RunRecordStore, type RolloutStore } from '@tandem/rollout-queue';
import type { TrainerBroker } from '../broker/trainer-broker.js';
import type { TrainerSessions } from '../broker/trainer-sessions.js';
import { toGrpcError } from './grpc-errors.js';

/** Collaborators of the TrainerService handlers. */
export interface TrainerServiceDeps {
  broker: TrainerBroker;
  sessions: TrainerSessions;
  store: RolloutStore;
  keyPrefix: string;
  log: Logger;
}

/** gRPC handlers of tandem.v1.TrainerService. Each answers exactly once. */
export function trainerServiceHandlers(deps: TrainerServiceDeps): TrainerServiceServer {
  const { broker, sessions, store, log } = deps;
  const records = new RunRecordStore(store.redis, deps.keyPrefix);
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
        Promise.all([store.forRun(hello.runId).snapshot(), records.get(hello.runId)])
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
        if (registered) sessions.unregister(runId, call);
        call.end();
      });
      call.on('error', (err) => {
        log.debug({ err, runId }, 'attach stream error');
        if (registered) sessions.unregister(runId, call);
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

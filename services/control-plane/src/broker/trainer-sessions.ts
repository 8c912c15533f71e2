import { ErrorCode, TandemError, type Logger } from '@tandem/common';
import { ControlMessage, type TrainerMessage } from '@tandem/protocol';
import { toGrpcError } from '../api/grpc-errors.js';

/** The write side of one trainer's Attach stream. */
export interface TrainerStream {
  write(message: ControlMessage): unknown;
  end(): void;
  emit(event: 'error', err: unknown): unknown;
}

/** One attached trainer. */
export interface TrainerSession {
  runId: string;
  trainerId: string;
  simulated: boolean;
  /** The trainer's IP as the control plane sees it: the transfer group's rendezvous host. */
  address: string;
  /** Latest version the trainer said it holds weights for. */
  weightsReadyVersion: number;
  /**
   * The last non-empty weight layout the trainer sent
   * (`WeightsReady.update_info_json`). Kept here because the trainer sends it
   * once after attaching, possibly before the run has a weight-sync
   * coordinator (no generator registered yet); one created later reads it.
   */
  updateInfoJson?: string;
  stream: TrainerStream;
}

/** Listener for messages from attached trainers. */
export interface TrainerSessionListener {
  onAttached?(runId: string): void;
  onWeightsReady?(runId: string, version: number, updateInfoJson: string): void;
  onWeightsSent?(runId: string, result: Extract<TrainerMessage['kind'], { $case: 'weightsSent' }>['weightsSent']): void;
}

/**
 * The trainers attached over TrainerService.Attach, one per run. A trainer
 * that attaches again (restarted) replaces the old session, whose stream is
 * ended: commands must reach the live process only.
 */
export class TrainerSessions {
  private readonly sessions = new Map<string, TrainerSession>();
  private readonly listeners: TrainerSessionListener[] = [];
  private readonly log: Logger;

  constructor(log: Logger) {
    this.log = log.child({ component: 'trainer-sessions' });
  }

  addListener(listener: TrainerSessionListener): void {
    this.listeners.push(listener);
  }

  register(session: TrainerSession): void {
    const previous = this.sessions.get(session.runId);
    if (previous && previous.stream !== session.stream) {
      this.log.warn({ runId: session.runId, old: previous.trainerId, new: session.trainerId }, 'trainer re-attached; old session replaced');
      // ABORTED, not OK: a live trainer that was replaced must not take it
      // for a shutdown and reconnect (which would knock the new one off).
      previous.stream.emit(
        'error',
        toGrpcError(
          new TandemError(ErrorCode.Aborted, `trainer ${session.trainerId} attached to run ${session.runId} and replaced ${previous.trainerId}`, {
            reason: 'TRAINER_REPLACED',
          }),
        ),
      );
    }
    this.sessions.set(session.runId, session);
    for (const l of this.listeners) l.onAttached?.(session.runId);
    this.log.info({ runId: session.runId, trainerId: session.trainerId, simulated: session.simulated }, 'trainer attached');
  }

  unregister(runId: string, stream: TrainerStream): void {
    const current = this.sessions.get(runId);
    if (current?.stream === stream) {
      this.sessions.delete(runId);
      this.log.info({ runId, trainerId: current.trainerId }, 'trainer detached');
    }
  }

  get(runId: string): TrainerSession | undefined {
    return this.sessions.get(runId);
  }

  /** Sends a command to the run's trainer; false when none is attached. */
  send(runId: string, message: ControlMessage): boolean {
    const session = this.sessions.get(runId);
    if (!session) return false;
    session.stream.write(message);
    return true;
  }

  weightsReady(runId: string, version: number, updateInfoJson = ''): void {
    const session = this.sessions.get(runId);
    if (session) {
      session.weightsReadyVersion = Math.max(session.weightsReadyVersion, version);
      if (updateInfoJson) session.updateInfoJson = updateInfoJson;
    }
    for (const l of this.listeners) l.onWeightsReady?.(runId, version, updateInfoJson);
  }

  weightsSent(runId: string, result: Extract<TrainerMessage['kind'], { $case: 'weightsSent' }>['weightsSent']): void {
    for (const l of this.listeners) l.onWeightsSent?.(runId, result);
  }

  /** Tells the run's trainer that the run ended, and closes its stream. */
  endRun(runId: string, phase: string, message: string): void {
    const session = this.sessions.get(runId);
    if (!session) return;
    session.stream.write(ControlMessage.fromPartial({ kind: { $case: 'runEnded', runEnded: { phase, message } } }));
    session.stream.end();
    this.sessions.delete(runId);
  }

  /** Ends every stream (shutdown). */
  closeAll(): void {
    for (const s of this.sessions.values()) s.stream.end();
    this.sessions.clear();
  }
}

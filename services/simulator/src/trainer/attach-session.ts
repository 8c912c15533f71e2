import { ErrorCode, TandemError, type Clock, type Logger } from '@tandem/common';
import {
  TrainerMessage,
  type ControlMessage,
  type RunEnded,
  type SendWeights,
  type TrainerHello,
  type Welcome,
} from '@tandem/protocol';
import { fromGrpcError, type AttachCall, type TrainerRpcClient } from './trainer-rpc.js';

/** Collaborators of an {@link AttachSession}. */
export interface AttachSessionDeps {
  client: TrainerRpcClient;
  clock: Clock;
  log: Logger;
  /** Called for every SendWeights command; answer with {@link AttachSession.send}. */
  onSendWeights: (command: SendWeights, session: AttachSession) => void;
}

/**
 * One Attach stream: `hello` out, `welcome` back, then commands from the
 * control plane. `signal` aborts when the session can no longer carry the
 * trainer on (the stream failed or ended, or the run ended), so the
 * trainer's pending calls are cancelled rather than left to their deadline.
 */
export class AttachSession {
  readonly welcome: Welcome;
  private readonly call: AttachCall;
  private readonly controller: AbortController;
  private endedRun: RunEnded | undefined;
  private failure: TandemError | undefined;

  private constructor(call: AttachCall, welcome: Welcome, controller: AbortController) {
    this.call = call;
    this.welcome = welcome;
    this.controller = controller;
  }

  /**
   * Opens the stream, says hello and waits up to `timeoutMs` for the
   * welcome. Rejects with the stream's error (UNAVAILABLE when the control
   * plane is down, NOT_FOUND for an unknown run) or DEADLINE_EXCEEDED.
   */
  static open(
    deps: AttachSessionDeps,
    hello: TrainerHello,
    options: { timeoutMs: number; signal?: AbortSignal },
  ): Promise<AttachSession> {
    const { client, clock, log } = deps;
    const { timeoutMs, signal } = options;
    const controller = new AbortController();
    const timer = new AbortController();
    const call = client.attach({});
    let session: AttachSession | undefined;
    let early: RunEnded | undefined;
    let settle: { resolve: (s: AttachSession) => void; reject: (e: TandemError) => void } | undefined;

    const closeWith = (failure: TandemError): void => {
      timer.abort();
      if (session) {
        // After close() or runEnded the stream's own errors are expected.
        if (controller.signal.aborted) return;
        session.failure = failure;
        controller.abort(failure);
      } else {
        controller.abort(failure);
        settle?.reject(failure);
        settle = undefined;
      }
    };

    call.on('data', (message: ControlMessage) => {
      const kind = message.kind;
      if (!kind) return;
      switch (kind.$case) {
        case 'welcome': {
          if (session) {
            log.warn({ welcome: kind.welcome }, 'second welcome on one attach stream ignored');
            return;
          }
          timer.abort();
          session = new AttachSession(call, kind.welcome, controller);
          if (early) session.markRunEnded(early);
          settle?.resolve(session);
          settle = undefined;
          return;
        }
        case 'sendWeights':
          if (!session) {
            log.warn({ command: kind.sendWeights }, 'sendWeights before welcome ignored');
            return;
          }
          deps.onSendWeights(kind.sendWeights, session);
          return;
        case 'runEnded':
          log.info({ phase: kind.runEnded.phase, message: kind.runEnded.message }, 'control plane ended the run');
          if (session) session.markRunEnded(kind.runEnded);
          else early = kind.runEnded;
          return;
      }
    });
    call.on('error', (err) => {
      const e = fromGrpcError(err);
      log.debug({ code: e.code, message: e.message }, 'attach stream failed');
      closeWith(e);
    });
    call.on('end', () => {
      // An OK end comes from a control plane shutting down, or replacing
      // this session with a newer attach for the run: either way, attach
      // again (a restarted trainer is then the only one left).
      closeWith(new TandemError(ErrorCode.Unavailable, 'the control plane ended the attach stream'));
    });

    return new Promise<AttachSession>((resolve, reject) => {
      settle = { resolve, reject };
      if (controller.signal.aborted) {
        reject(fromGrpcError(controller.signal.reason));
        return;
      }
      const onStop = (): void => {
        closeWith(new TandemError(ErrorCode.Cancelled, 'attach cancelled'));
        call.cancel();
      };
      signal?.addEventListener('abort', onStop, { once: true });
      // The timer ends with the wait for the welcome, however it ends.
      timer.signal.addEventListener('abort', () => signal?.removeEventListener('abort', onStop), { once: true });
      call.write(TrainerMessage.fromPartial({ kind: { $case: 'hello', hello } }));
      clock.sleep(timeoutMs, timer.signal).then(
        () => {
          if (session) return;
          closeWith(new TandemError(ErrorCode.DeadlineExceeded, `no welcome from the control plane within ${timeoutMs} ms`));
          call.cancel();
        },
        () => undefined, // the timer was aborted: a welcome or a failure came first
      );
    });
  }

  /** Aborts when the session can no longer carry the trainer on. */
  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Set when the control plane said the run ended. */
  get runEnded(): RunEnded | undefined {
    return this.endedRun;
  }

  /** Why the stream stopped, when it failed or ended (not set by runEnded or close). */
  get failed(): TandemError | undefined {
    return this.failure;
  }

  /** Sends a message if the stream is still open; false when it is not. */
  send(message: TrainerMessage): boolean {
    if (this.controller.signal.aborted) return false;
    try {
      this.call.write(message);
      return true;
    } catch {
      return false;
    }
  }

  /** Half-closes and cancels the stream (idempotent). */
  close(): void {
    if (!this.controller.signal.aborted) {
      this.controller.abort(new TandemError(ErrorCode.Cancelled, 'attach session closed'));
    }
    try {
      this.call.end();
    } catch {
      // already ended
    }
    this.call.cancel();
  }

  private markRunEnded(runEnded: RunEnded): void {
    this.endedRun = runEnded;
    this.controller.abort(new TandemError(ErrorCode.FailedPrecondition, `run ended: ${runEnded.phase}`));
  }
}

import { ErrorCode, TandemError, type Clock, type Logger } from '@tandem/common';
import {
  BatchState,
  TrainerMessage,
  type AckBatchResponse,
  type PullBatchResponse,
  type RunEnded,
  type SendWeights,
} from '@tandem/protocol';
import { AttachSession } from './attach-session.js';
import { backoffDelayMs } from './backoff.js';
import { checkBatch } from './batch-validation.js';
import type { CheckpointStore } from './checkpoint-store.js';
import type { TrainedLog } from './trained-log.js';
import type { SimulatedTrainerConfig } from './config.js';
import { broadcastTimeMs, trainTimeMs } from './cost-model.js';
import { buildTrainerReport, type StepStats, type TrainerOutcome, type TrainerReport } from './trainer-report.js';
import { fromGrpcError, isRetryable, isServiceError, needsResync, unary, type TrainerRpcClient } from './trainer-rpc.js';

/** Collaborators of a {@link SimulatedTrainer}; only main.ts makes real ones. */
export interface SimulatedTrainerDeps {
  client: TrainerRpcClient;
  clock: Clock;
  log: Logger;
  config: SimulatedTrainerConfig;
  /** Where the trainer's "weights" (its policy version) persist; none: start at version 0. */
  checkpoints?: CheckpointStore;
  /** Where each trained step's groups are recorded before the ack; none: not recorded. */
  trainedLog?: TrainedLog;
  /**
   * What `crashAtStep` does. @default SIGKILL to this process (no cleanup,
   * no ack, no checkpoint, like an OOM kill). Tests pass a function that throws.
   */
  crash?: (step: number) => void;
  /** Jitter source for reconnect backoff. @default Math.random */
  random?: () => number;
}

/** Consecutive "your step is out of date" answers tolerated before giving up. */
const MAX_RESYNCS = 5;

/**
 * After a commit, how long the trainer waits for the SendWeights that its
 * WeightsReady triggers before it trains on (wall time, as in the trainer
 * agent's `sync_grace_s`).
 */
const SYNC_GRACE_MS = 2000;

/** A batch the control plane served, with what it took to get it. */
interface ServedBatch {
  response: PullBatchResponse;
  waitMs: number;
  pulls: number;
  droppedStale: number;
}

/** A trained step whose ack has not been confirmed yet. */
interface PendingAck {
  stats: StepStats;
}

/**
 * Stands in for the Python trainer agent: attaches to the control plane,
 * pulls the batch of each step, checks it, "trains" for the cost model's
 * time, acks, reports the new weights, and simulates weight broadcasts when
 * told to. It survives control-plane restarts (reconnect with backoff) and
 * its own (checkpoint + the broker re-serving an un-acked batch).
 */
export class SimulatedTrainer {
  private readonly deps: SimulatedTrainerDeps;
  private readonly config: SimulatedTrainerConfig;
  private readonly log: Logger;
  private readonly random: () => number;
  private readonly stopper = new AbortController();
  private readonly stats: StepStats[] = [];
  private policyVersion = 0;
  private firstStep: number | undefined;
  private pendingAck: PendingAck | undefined;
  private sessionsOpened = 0;
  private weightSyncs = 0;
  private weightSyncMs = 0;
  private runEnded: RunEnded | undefined;
  /** The transfer group last initialised (SendWeights.groupId); undefined before the first. */
  private transferGroupId: string | undefined;
  /** Training and broadcasting share the GPU: one at a time. */
  private gpu: Promise<void> = Promise.resolve();
  /** Whether any SendWeights arrived: then generators exist, and a commit waits for the next one. */
  private generatorsSeen = false;
  /** Resolved with the broadcast of the first SendWeights after the last commit. */
  private nextBroadcast: { promise: Promise<Promise<void>>; resolve: (sent: Promise<void>) => void } | undefined;
  private started = false;

  constructor(deps: SimulatedTrainerDeps) {
    this.deps = deps;
    this.config = deps.config;
    this.log = deps.log.child({ component: 'simulated-trainer', runId: deps.config.runId, trainerId: deps.config.trainerId });
    this.random = deps.random ?? Math.random;
  }

  /** Stops at the next opportunity; an un-acked batch is left to be served again. */
  stop(reason = 'stop requested'): void {
    if (!this.stopper.signal.aborted) {
      this.log.info({ reason }, 'stopping');
      this.stopper.abort(new TandemError(ErrorCode.Cancelled, reason));
    }
  }

  /** Per-step measurements of the steps acked so far. */
  stepStats(): readonly StepStats[] {
    return this.stats;
  }

  /**
   * Trains until the run's last step is acked, the run ends, or `stop` is
   * called, and returns the report. Rejects on errors that a retry would not
   * fix (unknown run, invalid batch, control plane unreachable for longer
   * than `reconnect.giveUpAfterMs`).
   */
  async run(): Promise<TrainerReport> {
    if (this.started) throw new TandemError(ErrorCode.FailedPrecondition, 'a SimulatedTrainer runs once');
    this.started = true;
    await this.restore();
    const { clock } = this.deps;
    let outageSince: number | undefined;
    let attempt = 0;
    let resyncs = 0;
    let outcome: TrainerOutcome = 'stopped';
    let progress = 0;
    const onProgress = (): void => {
      progress++;
    };
    while (!this.stopped) {
      let session: AttachSession | undefined;
      const progressBefore = progress;
      try {
        session = await this.attach();
        if (this.sessionsOpened++ > 0) this.log.info({ nextStep: session.welcome.nextStep }, 're-attached');
        outcome = await this.trainSession(session, onProgress, () => (resyncs = 0));
        break;
      } catch (err: unknown) {
        if (this.stopped) break;
        const e = fromGrpcError(err);
        if (needsResync(e) && resyncs < MAX_RESYNCS) {
          resyncs++;
          this.log.warn({ message: e.message }, 'step out of date; attaching again for a fresh welcome');
          continue;
        }
        // Rethrow anything that is not an RPC failure as it was (a checkpoint
        // write error, the crash hook's exception), RPC failures as TandemError.
        if (!isRetryable(e)) throw err instanceof TandemError || isServiceError(err) ? e : err;
        // Progress (a pull or ack answered) ends an outage; a welcome alone
        // does not, or a control plane that accepts Attach but fails every
        // pull would be retried at the shortest delay forever.
        if (progress !== progressBefore) {
          outageSince = undefined;
          attempt = 0;
        }
        outageSince ??= clock.now();
        const down = clock.now() - outageSince;
        if (down >= this.config.reconnect.giveUpAfterMs) {
          throw new TandemError(
            ErrorCode.Unavailable,
            `control plane at ${this.config.server} unusable for ${Math.round(down / 1000)} s: ${e.message}`,
            { cause: e },
          );
        }
        const delayMs = backoffDelayMs(this.config.reconnect, attempt++, this.random);
        this.log.warn({ code: e.code, message: e.message, delayMs: Math.round(delayMs), attempt }, 'control plane unavailable; will reconnect');
        try {
          await clock.sleep(delayMs, this.stopper.signal);
        } catch {
          break;
        }
      } finally {
        session?.close();
      }
    }
    return this.report(outcome);
  }

  /** The report as of now. */
  report(outcome: TrainerOutcome): TrainerReport {
    return buildTrainerReport(this.stats, {
      runId: this.config.runId,
      trainerId: this.config.trainerId,
      outcome,
      ...(this.runEnded ? { runEnded: { phase: this.runEnded.phase, message: this.runEnded.message } } : {}),
      firstStep: this.firstStep ?? this.policyVersion,
      policyVersion: this.policyVersion,
      reconnects: Math.max(0, this.sessionsOpened - 1),
      weightSyncs: this.weightSyncs,
      weightSyncSeconds: this.weightSyncMs / 1000,
      timeScale: this.config.cost.timeScale,
    });
  }

  private get stopped(): boolean {
    return this.stopper.signal.aborted;
  }

  private async restore(): Promise<void> {
    const checkpoint = await this.deps.checkpoints?.load();
    if (!checkpoint) return;
    if (checkpoint.runId !== this.config.runId) {
      throw new TandemError(
        ErrorCode.FailedPrecondition,
        `checkpoint belongs to run ${checkpoint.runId}, not ${this.config.runId}: use another checkpointPath`,
      );
    }
    this.policyVersion = checkpoint.policyVersion;
    this.log.info({ policyVersion: checkpoint.policyVersion, lastAckedStep: checkpoint.lastAckedStep }, 'resumed from checkpoint');
  }

  private attach(): Promise<AttachSession> {
    return AttachSession.open(
      {
        client: this.deps.client,
        clock: this.deps.clock,
        log: this.log,
        onSendWeights: (command, session) => {
          this.generatorsSeen = true;
          const sent = this.broadcast(command, session).catch((err: unknown) =>
            this.log.warn({ err, policyVersion: command.policyVersion }, 'simulated weight broadcast failed'),
          );
          this.nextBroadcast?.resolve(sent);
        },
      },
      { runId: this.config.runId, trainerId: this.config.trainerId, policyVersion: this.policyVersion, simulated: true },
      { timeoutMs: this.config.rpcTimeoutMs, signal: this.stopper.signal },
    );
  }

  /** Trains from the welcome's next step; throws to make `run` reconnect or resync. */
  private async trainSession(session: AttachSession, onProgress: () => void, onAcked: () => void): Promise<TrainerOutcome> {
    const { welcome } = session;
    const { clock } = this.deps;
    let step = welcome.nextStep;
    this.log.info(
      { nextStep: step, maxSteps: welcome.maxSteps, k: welcome.maxTrajectoryAgeSteps, batchGroups: welcome.batchGroups },
      'attached',
    );
    const settled = await this.settlePendingAck(session, step, onProgress);
    if (settled === 'run_ended') return this.ended(session);
    step = settled;
    if (step !== this.policyVersion) {
      // The control plane's ledger is the truth about what was trained
      // (e.g. the checkpoint write was lost in a crash right after an ack).
      this.log.warn({ held: this.policyVersion, nextStep: step }, "adopting the control plane's next step as our policy version");
      this.policyVersion = step;
    }
    while (step < welcome.maxSteps) {
      const served = await this.pullUntilReady(session, step, onProgress);
      if (served === 'run_ended') return this.ended(session);
      this.firstStep ??= step;
      if (this.config.crashAtStep === step) {
        this.log.warn({ step }, 'crashing after the pull and before the ack, as configured (crashAtStep)');
        (this.deps.crash ?? killThisProcess)(step);
      }
      const checked = checkBatch(served.response.groups, {
        step,
        maxTrajectoryAgeSteps: welcome.maxTrajectoryAgeSteps,
        batchGroups: welcome.batchGroups,
        groupSize: welcome.groupSize || this.config.expectedGroupSize || 0,
      });
      const trainStarted = clock.now();
      await this.onGpu(() => clock.sleep(trainTimeMs(this.config.cost, checked.tokens), this.stopper.signal));
      await this.deps.trainedLog?.append({
        runId: this.config.runId,
        step,
        trainerId: this.config.trainerId,
        groups: checked.groups.map((g) => ({
          groupId: g.groupId,
          promptId: g.promptId,
          minPolicyVersion: g.minPolicyVersion,
          maxPolicyVersion: g.maxPolicyVersion,
        })),
      });
      const ages = checked.ages;
      this.pendingAck = {
        stats: {
          step,
          waitMs: served.waitMs,
          trainMs: clock.now() - trainStarted,
          pulls: served.pulls,
          groups: checked.groups.length,
          tokens: checked.tokens,
          ages,
          maxAge: ages.reduce((a, b) => Math.max(a, b), 0),
          meanAge: ages.length > 0 ? ages.reduce((a, b) => a + b, 0) / ages.length : 0,
          reserved: served.response.reserved,
          droppedStale: served.droppedStale,
        },
      };
      if ((await this.ack(session, this.pendingAck, onProgress)) === 'run_ended') return this.ended(session);
      onAcked();
      // After the last step the run is over: nobody asks for those weights.
      if (step + 1 < welcome.maxSteps) await this.syncGrace(session);
      step++;
    }
    return 'finished';
  }

  /**
   * A step trained before the session broke whose ack reply never came:
   * ack it now if the control plane still waits for it (acks are
   * idempotent), count it as acked if the control plane moved past it.
   */
  private async settlePendingAck(
    session: AttachSession,
    nextStep: number,
    onProgress: () => void,
  ): Promise<number | 'run_ended'> {
    const pending = this.pendingAck;
    if (!pending) return nextStep;
    const step = pending.stats.step;
    if (step === nextStep) {
      this.log.info({ step }, 're-sending the ack of a trained step');
      return (await this.ack(session, pending, onProgress)) === 'run_ended' ? 'run_ended' : nextStep + 1;
    }
    if (step < nextStep) {
      await this.commit(session, pending);
      return nextStep;
    }
    this.log.warn({ step, nextStep }, 'control plane is behind the trained step; training it again');
    this.pendingAck = undefined;
    return nextStep;
  }

  private async pullUntilReady(session: AttachSession, step: number, onProgress: () => void): Promise<ServedBatch | 'run_ended'> {
    const { clock, client } = this.deps;
    const started = clock.now();
    let pulls = 0;
    let droppedStale = 0;
    for (;;) {
      if (session.runEnded) return 'run_ended';
      if (session.failed) throw session.failed;
      pulls++;
      let response: PullBatchResponse;
      try {
        response = await unary<PullBatchResponse>(
          (metadata, options, callback) =>
            client.pullBatch({ runId: this.config.runId, step, waitMs: this.config.pullWaitMs }, metadata, options, callback),
          {
            deadlineMs: this.config.pullWaitMs + this.config.rpcTimeoutMs,
            signal: AbortSignal.any([this.stopper.signal, session.signal]),
          },
        );
      } catch (err: unknown) {
        if (session.runEnded) return 'run_ended';
        throw fromGrpcError(err);
      }
      onProgress();
      droppedStale += response.droppedStale;
      switch (response.state) {
        case BatchState.BATCH_STATE_READY:
          if (response.step !== step) {
            throw new TandemError(ErrorCode.Internal, `asked for the batch of step ${step}, got step ${response.step}`);
          }
          this.log.debug({ step, pulls, groups: response.groups.length, reserved: response.reserved }, 'batch ready');
          return { response, waitMs: clock.now() - started, pulls, droppedStale };
        case BatchState.BATCH_STATE_NOT_READY:
          this.log.debug({ step, pulls, droppedStale: response.droppedStale }, 'batch not ready; pulling again');
          continue;
        case BatchState.BATCH_STATE_RUN_ENDED:
          return 'run_ended';
        default:
          throw new TandemError(ErrorCode.Internal, `PullBatch answered unknown state ${response.state} for step ${step}`);
      }
    }
  }

  /** Acks a trained step; 'run_ended' when the run was closed while we trained. */
  private async ack(session: AttachSession, pending: PendingAck, onProgress: () => void): Promise<'acked' | 'run_ended'> {
    const step = pending.stats.step;
    let response: AckBatchResponse;
    try {
      response = await unary<AckBatchResponse>(
        (metadata, options, callback) => this.deps.client.ackBatch({ runId: this.config.runId, step }, metadata, options, callback),
        { deadlineMs: this.config.rpcTimeoutMs, signal: this.stopper.signal },
      );
    } catch (err: unknown) {
      const e = fromGrpcError(err);
      if (this.stopped || isRetryable(e) || needsResync(e)) throw e;
      // A run closed (cancelled, failed) while we trained answers the ack
      // with a precondition error; the run's end is what to report then.
      if (session.runEnded || (await this.runHasEnded(step))) {
        this.pendingAck = undefined;
        this.log.info({ step, message: e.message }, 'ack refused because the run ended');
        return 'run_ended';
      }
      throw e;
    }
    onProgress();
    if (response.policyVersion !== step + 1) {
      this.log.warn({ step, policyVersion: response.policyVersion }, 'ack answered an unexpected policy version');
    }
    if (response.duplicate) this.log.info({ step }, 'step had already been acked (lost reply)');
    await this.commit(session, pending);
    return 'acked';
  }

  /** Records an acked step: new policy version, weightsReady, checkpoint. */
  private async commit(session: AttachSession, pending: PendingAck): Promise<void> {
    const s = pending.stats;
    this.pendingAck = undefined;
    this.policyVersion = s.step + 1;
    this.stats.push(s);
    // Armed before WeightsReady goes out: the SendWeights it triggers may
    // arrive while the checkpoint is written.
    let resolve: (sent: Promise<void>) => void = () => undefined;
    const promise = new Promise<Promise<void>>((r) => (resolve = r));
    this.nextBroadcast = { promise, resolve };
    session.send(TrainerMessage.fromPartial({ kind: { $case: 'weightsReady', weightsReady: { policyVersion: this.policyVersion } } }));
    await this.deps.checkpoints?.save({
      format: 1,
      runId: this.config.runId,
      policyVersion: this.policyVersion,
      lastAckedStep: s.step,
      savedAt: new Date(this.deps.clock.now()).toISOString(),
    });
    this.log.info(
      {
        step: s.step,
        groups: s.groups,
        tokens: s.tokens,
        waitMs: Math.round(s.waitMs),
        trainMs: Math.round(s.trainMs),
        maxAge: s.maxAge,
        reserved: s.reserved,
        simulated: true,
      },
      'step trained',
    );
  }

  /** Asks the broker, without waiting, whether the run is over. */
  private async runHasEnded(step: number): Promise<boolean> {
    try {
      const probe = await unary<PullBatchResponse>(
        (metadata, options, callback) => this.deps.client.pullBatch({ runId: this.config.runId, step, waitMs: 0 }, metadata, options, callback),
        { deadlineMs: this.config.rpcTimeoutMs, signal: this.stopper.signal },
      );
      return probe.state === BatchState.BATCH_STATE_RUN_ENDED;
    } catch {
      return false;
    }
  }

  private ended(session: AttachSession): TrainerOutcome {
    if (session.runEnded) this.runEnded = session.runEnded;
    this.log.info({ phase: this.runEnded?.phase }, 'run ended');
    return 'run_ended';
  }

  /**
   * Simulates the NCCL broadcast of the weights the trainer holds. It can
   * only send what it has: asked for a version it has not reached it
   * refuses; asked for an older one it sends its newer weights and says so
   * in `policyVersion` (generators then serve what they really got). A sync
   * that forms a group (`formsGroup`: membership changed) costs a group
   * initialisation first.
   */
  private async broadcast(command: SendWeights, session: AttachSession): Promise<void> {
    const { clock } = this.deps;
    const started = clock.now();
    const held = this.policyVersion;
    const reply = (ok: boolean, error: string, policyVersion: number): void => {
      const seconds = (clock.now() - started) / 1000;
      const weightsSent = { policyVersion, ok, error, seconds, syncId: command.syncId };
      if (!session.send(TrainerMessage.fromPartial({ kind: { $case: 'weightsSent', weightsSent } }))) {
        this.log.warn({ policyVersion, syncId: command.syncId }, 'attach stream closed before weightsSent could be sent');
      }
    };
    if (command.policyVersion > held) {
      reply(false, `trainer holds policy version ${held}, not ${command.policyVersion}`, held);
      return;
    }
    const { modelBytes, bandwidthBytesPerSecond, groupInitMs } = this.config.weightBroadcast;
    const { timeScale } = this.config.cost;
    // Like the agent: a group is joined only by the sync that forms it; a
    // trainer asked to send on a group it never joined (it restarted) cannot.
    const newGroup = command.formsGroup;
    if (!newGroup && command.groupId !== this.transferGroupId) {
      reply(false, `trainer is not in transfer group ${command.groupId}; it must be re-formed`, held);
      return;
    }
    const needMs = broadcastTimeMs(modelBytes, bandwidthBytesPerSecond, timeScale) + (newGroup ? groupInitMs * timeScale : 0);
    if (command.deadlineMs > 0 && needMs > command.deadlineMs) {
      await clock.sleep(command.deadlineMs, this.stopper.signal);
      reply(false, `simulated broadcast needs ${Math.round(needMs)} ms, over the ${command.deadlineMs} ms deadline`, held);
      return;
    }
    await this.onGpu(() => clock.sleep(needMs, this.stopper.signal));
    this.transferGroupId = command.groupId;
    this.weightSyncs++;
    this.weightSyncMs += clock.now() - started;
    this.log.info(
      { policyVersion: held, requested: command.policyVersion, syncId: command.syncId, groupId: command.groupId, newGroup, ms: Math.round(needMs) },
      'weights sent (simulated)',
    );
    reply(true, '', held);
  }

  /**
   * Like the trainer agent: right after a commit, give the coordinator a
   * moment to ask for the new weights and send them before training the
   * next step. Otherwise the next step takes the GPU first, the broadcast
   * waits a whole step behind it, and the generators, paused for the
   * update, wait with it: generation would stop for every training step.
   */
  private async syncGrace(session: AttachSession): Promise<void> {
    const next = this.nextBroadcast;
    if (!next || !this.generatorsSeen || session.runEnded) return;
    const grace = new AbortController();
    const sent = await Promise.race([
      next.promise,
      this.deps.clock.sleep(SYNC_GRACE_MS, AbortSignal.any([grace.signal, this.stopper.signal])).then(
        () => undefined,
        () => undefined,
      ),
    ]);
    grace.abort();
    if (this.nextBroadcast === next) this.nextBroadcast = undefined;
    await sent;
  }

  private onGpu<T>(work: () => Promise<T>): Promise<T> {
    const run = this.gpu.then(work);
    this.gpu = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }
}

function killThisProcess(): void {
  process.kill(process.pid, 'SIGKILL');
}

import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { ErrorCode, silentLogger, TandemError, type Clock } from '@tandem/common';
import {
  BatchState,
  ControlMessage,
  PromptGroup,
  type AckBatchRequest,
  type AckBatchResponse,
  type PullBatchRequest,
  type PullBatchResponse,
  type TrainerMessage,
} from '@tandem/protocol';
import { syntheticGroup } from '@tandem/rollout-queue';
import { SimulatedTrainer, type SimulatedTrainerDeps } from './simulated-trainer.js';
import { resolveTrainerConfig, type SimulatedTrainerOptions } from './config.js';
import { trainTimeMs, broadcastTimeMs } from './cost-model.js';
import { backoffDelayMs } from './backoff.js';
import type { CheckpointStore, TrainerCheckpoint } from './checkpoint-store.js';
import type { TrainedLog, TrainedStepEntry } from './trained-log.js';
import type { AttachCall, CancellableCall, TrainerRpcClient } from './trainer-rpc.js';

/**
 * The trainer loop against a scripted fake of the control plane's trainer
 * service and a virtual clock: every sleep advances time at once and is
 * recorded, so retries and train times are checked without waiting.
 */

class VirtualClock implements Clock {
  time = 1_000_000;
  readonly sleeps: number[] = [];
  now(): number {
    return this.time;
  }
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    this.sleeps.push(ms);
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason);
      const onAbort = (): void => reject(signal?.reason);
      signal?.addEventListener('abort', onAbort, { once: true });
      setImmediate(() => {
        signal?.removeEventListener('abort', onAbort);
        if (signal?.aborted) return;
        this.time += ms;
        resolve();
      });
    });
  }
}

function grpcError(code: status, details: string): ServiceError {
  return Object.assign(new Error(`${code} ${details}`), { code, details, metadata: new Metadata() });
}

class FakeAttach extends EventEmitter implements AttachCall {
  readonly written: TrainerMessage[] = [];
  closed = false;
  constructor(private readonly onHello: (call: FakeAttach) => void) {
    super();
  }
  write(message: TrainerMessage): boolean {
    this.written.push(message);
    if (message.kind?.$case === 'hello') queueMicrotask(() => this.onHello(this));
    return true;
  }
  end(): void {}
  cancel(): void {
    if (this.closed) return;
    this.closed = true;
    this.emit('error', grpcError(status.CANCELLED, 'Cancelled on client'));
  }
  send(kind: NonNullable<ControlMessage['kind']>): void {
    this.emit('data', ControlMessage.fromPartial({ kind }));
  }
}

/** A scripted answer: a response (merged over READY defaults), an error, no answer, or the normal behaviour. */
type Answer<T> = T | ServiceError | 'hang' | 'default';

/**
 * A one-run broker: step counter, batches of synthetic groups, and queues
 * of scripted answers that take precedence over the normal behaviour.
 */
class FakeControlPlane implements TrainerRpcClient {
  nextStep = 0;
  readonly attaches: FakeAttach[] = [];
  readonly pulls: PullBatchRequest[] = [];
  readonly acks: AckBatchRequest[] = [];
  attachScript: Array<ServiceError | 'ok' | 'silent'> = [];
  pullScript: Array<Answer<Partial<PullBatchResponse>>> = [];
  ackScript: Array<{ apply: boolean; error: ServiceError }> = [];
  served = new Set<number>();

  constructor(readonly opts: { maxSteps: number; k?: number; batchGroups?: number; age?: number }) {}

  attach(): AttachCall {
    const scripted = this.attachScript.shift();
    const call = new FakeAttach((c) => {
      if (scripted === 'silent') return;
      if (scripted && scripted !== 'ok') {
        c.closed = true;
        c.emit('error', scripted);
        return;
      }
      c.send({
        $case: 'welcome',
        welcome: {
          runId: 'r',
          nextStep: this.nextStep,
          maxSteps: this.opts.maxSteps,
          maxTrajectoryAgeSteps: this.opts.k ?? 1,
          batchGroups: this.opts.batchGroups ?? 2,
          groupSize: 2,
        },
      });
    });
    this.attaches.push(call);
    return call;
  }

  pullBatch(
    request: PullBatchRequest,
    _m: Metadata,
    _o: unknown,
    callback: (error: ServiceError | null, response: PullBatchResponse) => void,
  ): CancellableCall {
    this.pulls.push(request);
    const scripted = this.pullScript.shift();
    const respond = (a: Exclude<Answer<Partial<PullBatchResponse>>, 'default'>): void => {
      if (a === 'hang') return;
      if (a instanceof Error) callback(a, undefined as unknown as PullBatchResponse);
      else callback(null, { runId: 'r', step: request.step, state: BatchState.BATCH_STATE_READY, groups: [], droppedStale: 0, reserved: false, ...a });
    };
    let cancelled = false;
    setImmediate(() => {
      if (cancelled) return;
      if (scripted !== undefined && scripted !== 'default') return respond(scripted);
      if (request.step >= this.opts.maxSteps) return respond({ state: BatchState.BATCH_STATE_RUN_ENDED });
      const reserved = this.served.has(request.step);
      this.served.add(request.step);
      const age = this.opts.age ?? 0;
      const groups = Array.from({ length: this.opts.batchGroups ?? 2 }, (_, i) =>
        Buffer.from(
          PromptGroup.encode(
            syntheticGroup(`g${request.step}-${i}`, { groupSize: 2, tokensPerCompletion: 500, minPolicyVersion: Math.max(0, request.step - age) }),
          ).finish(),
        ),
      );
      respond({ groups, reserved });
    });
    return {
      cancel: () => {
        cancelled = true;
        callback(grpcError(status.CANCELLED, 'Cancelled on client'), undefined as unknown as PullBatchResponse);
      },
    };
  }

  ackBatch(
    request: AckBatchRequest,
    _m: Metadata,
    _o: unknown,
    callback: (error: ServiceError | null, response: AckBatchResponse) => void,
  ): CancellableCall {
    this.acks.push(request);
    const scripted = this.ackScript.shift();
    setImmediate(() => {
      const apply = !scripted || scripted.apply;
      let duplicate = false;
      if (apply) {
        if (request.step < this.nextStep) duplicate = true;
        else this.nextStep = request.step + 1;
      }
      if (scripted) callback(scripted.error, undefined as unknown as AckBatchResponse);
      else callback(null, { policyVersion: this.nextStep, groupsTrained: duplicate ? 0 : 2, duplicate });
    });
    return { cancel: () => undefined };
  }

  /** Messages of a kind the trainer wrote on every attach stream. */
  written<K extends NonNullable<TrainerMessage['kind']>['$case']>(kind: K): Array<Extract<NonNullable<TrainerMessage['kind']>, { $case: K }>> {
    return this.attaches.flatMap((a) =>
      a.written.map((m) => m.kind).filter((k): k is Extract<NonNullable<TrainerMessage['kind']>, { $case: K }> => k?.$case === kind),
    );
  }
}

class MemoryCheckpoints implements CheckpointStore {
  saved: TrainerCheckpoint[] = [];
  constructor(private initial?: TrainerCheckpoint) {}
  async load(): Promise<TrainerCheckpoint | undefined> {
    return this.saved.at(-1) ?? this.initial;
  }
  async save(c: TrainerCheckpoint): Promise<void> {
    this.saved.push(c);
  }
}

const COST = { stepOverheadMs: 1000, msPerKiloToken: 100, timeScale: 1 };
const RECONNECT = { initialMs: 100, maxMs: 800, giveUpAfterMs: 5000 };

function setup(
  plane: FakeControlPlane,
  options: Partial<SimulatedTrainerOptions> = {},
  deps: Partial<SimulatedTrainerDeps> = {},
): { trainer: SimulatedTrainer; clock: VirtualClock; checkpoints: MemoryCheckpoints } {
  const clock = new VirtualClock();
  const checkpoints = new MemoryCheckpoints();
  const config = resolveTrainerConfig({ runId: 'r', trainerId: 't', cost: COST, reconnect: RECONNECT, ...options });
  const trainer = new SimulatedTrainer({ client: plane, clock, log: silentLogger(), config, checkpoints, random: () => 0.5, ...deps });
  return { trainer, clock, checkpoints };
}

/** Train time of one fake batch: 2 groups × 2 completions × 500 tokens. */
const STEP_MS = trainTimeMs(COST, 2000);

describe('SimulatedTrainer against a fake control plane', () => {
  it('attaches, pulls again on NOT_READY, trains for the cost-model time, acks, reports weights and checkpoints', async () => {
    const plane = new FakeControlPlane({ maxSteps: 3, age: 1 });
    plane.pullScript = [{ state: BatchState.BATCH_STATE_NOT_READY, droppedStale: 1 }];
    const { trainer, clock, checkpoints } = setup(plane);
    const report = await trainer.run();

    expect(report).toMatchObject({ outcome: 'finished', steps: 3, firstStep: 0, policyVersion: 3, groups: 6, tokens: 6000, droppedStale: 1, simulated: true });
    expect(plane.pulls.map((p) => p.step)).toEqual([0, 0, 1, 2]);
    expect(plane.pulls[0]).toMatchObject({ runId: 'r', waitMs: 10_000 });
    expect(plane.acks.map((a) => a.step)).toEqual([0, 1, 2]);
    expect(trainer.stepStats().map((s) => s.pulls)).toEqual([2, 1, 1]);
    expect(clock.sleeps.filter((ms) => ms === STEP_MS)).toHaveLength(3);
    expect(report.trainSeconds).toBeCloseTo((3 * STEP_MS) / 1000, 9);
    // Step 0's groups are from version 0 (age 0); later steps get age 1.
    expect(report.ages.histogram).toEqual({ '0': 2, '1': 4 });
    expect(plane.attaches[0]?.written[0]?.kind).toEqual({
      $case: 'hello',
      hello: { runId: 'r', trainerId: 't', policyVersion: 0, simulated: true },
    });
    expect(plane.written('weightsReady').map((w) => w.weightsReady.policyVersion)).toEqual([1, 2, 3]);
    expect(checkpoints.saved.map((c) => [c.lastAckedStep, c.policyVersion])).toEqual([[0, 1], [1, 2], [2, 3]]);
  });

  it('resumes from its checkpoint and says so in hello', async () => {
    const plane = new FakeControlPlane({ maxSteps: 3 });
    plane.nextStep = 2;
    const clock = new VirtualClock();
    const checkpoints = new MemoryCheckpoints({ format: 1, runId: 'r', policyVersion: 2, lastAckedStep: 1, savedAt: '' });
    const config = resolveTrainerConfig({ runId: 'r', cost: COST });
    const report = await new SimulatedTrainer({ client: plane, clock, log: silentLogger(), config, checkpoints }).run();
    expect(plane.attaches[0]?.written[0]?.kind).toMatchObject({ hello: { policyVersion: 2 } });
    expect(report).toMatchObject({ firstStep: 2, steps: 1, policyVersion: 3 });
  });

  it("refuses another run's checkpoint", async () => {
    const plane = new FakeControlPlane({ maxSteps: 3 });
    const checkpoints = new MemoryCheckpoints({ format: 1, runId: 'other', policyVersion: 2, lastAckedStep: 1, savedAt: '' });
    const config = resolveTrainerConfig({ runId: 'r' });
    await expect(new SimulatedTrainer({ client: plane, clock: new VirtualClock(), log: silentLogger(), config, checkpoints }).run()).rejects.toThrow(
      /checkpoint belongs to run other, not r/,
    );
  });

  it('reconnects with capped exponential backoff while the control plane is unavailable', async () => {
    const plane = new FakeControlPlane({ maxSteps: 1 });
    plane.attachScript = [
      grpcError(status.UNAVAILABLE, 'connect ECONNREFUSED'),
      grpcError(status.UNAVAILABLE, 'connect ECONNREFUSED'),
      grpcError(status.DEADLINE_EXCEEDED, 'deadline'),
      grpcError(status.UNAVAILABLE, 'connect ECONNREFUSED'),
      grpcError(status.UNAVAILABLE, 'connect ECONNREFUSED'),
    ];
    const { trainer, clock } = setup(plane);
    const report = await trainer.run();
    expect(report).toMatchObject({ outcome: 'finished', steps: 1 });
    const backoffs = [0, 1, 2, 3, 4].map((n) => backoffDelayMs(RECONNECT, n, () => 0.5));
    expect(backoffs).toEqual([75, 150, 300, 600, 600]);
    expect(clock.sleeps.filter((ms) => ms !== STEP_MS && ms !== 30_000)).toEqual(backoffs);
  });

  it('attaches again when no welcome comes within rpcTimeoutMs', async () => {
    const plane = new FakeControlPlane({ maxSteps: 1 });
    plane.attachScript = ['silent'];
    const { trainer, clock } = setup(plane, { rpcTimeoutMs: 1234 });
    expect(await trainer.run()).toMatchObject({ outcome: 'finished', steps: 1 });
    expect(plane.attaches).toHaveLength(2);
    expect(plane.attaches[0]?.closed).toBe(true);
    expect(clock.sleeps.slice(0, 2)).toEqual([1234, backoffDelayMs(RECONNECT, 0, () => 0.5)]);
  });

  it('gives up after giveUpAfterMs of unavailability', async () => {
    const plane = new FakeControlPlane({ maxSteps: 1 });
    plane.attachScript = Array.from({ length: 100 }, () => grpcError(status.UNAVAILABLE, 'connect ECONNREFUSED'));
    const { trainer } = setup(plane);
    await expect(trainer.run()).rejects.toMatchObject({ code: ErrorCode.Unavailable, message: expect.stringMatching(/unusable for 5 s/) });
    expect(plane.attaches.length).toBeLessThan(15);
  });

  it('does not retry NOT_FOUND or INVALID_ARGUMENT', async () => {
    const plane = new FakeControlPlane({ maxSteps: 1 });
    plane.attachScript = [grpcError(status.NOT_FOUND, 'run r has no rollout queue')];
    await expect(setup(plane).trainer.run()).rejects.toMatchObject({ code: ErrorCode.NotFound });
    expect(plane.attaches).toHaveLength(1);

    const plane2 = new FakeControlPlane({ maxSteps: 1 });
    plane2.pullScript = [grpcError(status.INVALID_ARGUMENT, 'invalid request: step: bad')];
    await expect(setup(plane2).trainer.run()).rejects.toMatchObject({ code: ErrorCode.InvalidArgument });
    expect(plane2.attaches).toHaveLength(1);
  });

  it('re-sends a lost ack after reconnecting instead of training the step again', async () => {
    const plane = new FakeControlPlane({ maxSteps: 2 });
    plane.ackScript = [{ apply: false, error: grpcError(status.UNAVAILABLE, 'connection dropped') }];
    const { trainer, clock } = setup(plane);
    const report = await trainer.run();
    expect(report).toMatchObject({ steps: 2, reconnects: 1 });
    expect(plane.pulls.map((p) => p.step)).toEqual([0, 1]);
    expect(plane.acks.map((a) => a.step)).toEqual([0, 0, 1]);
    expect(clock.sleeps.filter((ms) => ms === STEP_MS)).toHaveLength(2);
  });

  it('counts a step whose ack went through but whose reply was lost, without acking twice', async () => {
    const plane = new FakeControlPlane({ maxSteps: 2 });
    plane.ackScript = [{ apply: true, error: grpcError(status.UNAVAILABLE, 'connection dropped') }];
    const { trainer, checkpoints } = setup(plane);
    const report = await trainer.run();
    expect(report).toMatchObject({ steps: 2, reconnects: 1, policyVersion: 2 });
    expect(plane.acks.map((a) => a.step)).toEqual([0, 1]);
    expect(checkpoints.saved.map((c) => c.lastAckedStep)).toEqual([0, 1]);
  });

  it('re-reads the next step from a fresh welcome when told the step was already trained', async () => {
    const plane = new FakeControlPlane({ maxSteps: 3 });
    plane.pullScript = [grpcError(status.FAILED_PRECONDITION, 'step 0 of run r was already trained')];
    // Meanwhile another trainer trained step 0.
    const originalPull = plane.pullBatch.bind(plane);
    plane.pullBatch = (req, m, o, cb) => {
      if (plane.pulls.length === 0) plane.nextStep = 1;
      return originalPull(req, m, o, cb);
    };
    const { trainer } = setup(plane);
    const report = await trainer.run();
    expect(report).toMatchObject({ outcome: 'finished', firstStep: 1, steps: 2, policyVersion: 3 });
    expect(plane.attaches).toHaveLength(2);
  });

  it('stops when the run ends: RUN_ENDED from a pull, or runEnded on the stream mid-pull', async () => {
    const plane = new FakeControlPlane({ maxSteps: 3 });
    plane.pullScript = ['default', { state: BatchState.BATCH_STATE_RUN_ENDED }];
    expect(await setup(plane).trainer.run()).toMatchObject({ outcome: 'run_ended', steps: 1 });

    const plane2 = new FakeControlPlane({ maxSteps: 3 });
    plane2.pullScript = ['hang'];
    const { trainer } = setup(plane2);
    const done = trainer.run();
    while (plane2.pulls.length === 0) await new Promise((r) => setImmediate(r));
    plane2.attaches[0]?.send({ $case: 'runEnded', runEnded: { phase: 'Cancelled', message: 'cancelled by request' } });
    expect(await done).toMatchObject({ outcome: 'run_ended', steps: 0, runEnded: { phase: 'Cancelled', message: 'cancelled by request' } });
  });

  it('reports a run cancelled during training as ended, not as a failure', async () => {
    const plane = new FakeControlPlane({ maxSteps: 3 });
    plane.ackScript = [{ apply: false, error: grpcError(status.FAILED_PRECONDITION, 'no batch was served for step 0 of run r') }];
    plane.pullScript = ['default', { state: BatchState.BATCH_STATE_RUN_ENDED }];
    expect(await setup(plane).trainer.run()).toMatchObject({ outcome: 'run_ended', steps: 0 });
    expect(plane.pulls.map((p) => p.waitMs)).toEqual([10_000, 0]);
  });

  it('stop() ends a pending long poll at once and leaves the batch un-acked', async () => {
    const plane = new FakeControlPlane({ maxSteps: 3 });
    plane.pullScript = ['hang'];
    const { trainer } = setup(plane);
    const done = trainer.run();
    while (plane.pulls.length === 0) await new Promise((r) => setImmediate(r));
    trainer.stop('test');
    expect(await done).toMatchObject({ outcome: 'stopped', steps: 0 });
    expect(plane.acks).toHaveLength(0);
    expect(plane.attaches[0]?.closed).toBe(true);
  });

  it('records the groups of each trained step before acking it', async () => {
    const plane = new FakeControlPlane({ maxSteps: 3, age: 1 });
    const entries: Array<TrainedStepEntry & { acksBefore: number }> = [];
    const trainedLog: TrainedLog = {
      append: async (entry) => {
        entries.push({ ...entry, acksBefore: plane.acks.length });
      },
    };
    await setup(plane, {}, { trainedLog }).trainer.run();
    expect(entries.map((e) => [e.step, e.acksBefore])).toEqual([[0, 0], [1, 1], [2, 2]]);
    expect(entries[2]).toMatchObject({ runId: 'r', trainerId: 't' });
    expect(entries[2]?.groups.map((g) => [g.groupId, g.minPolicyVersion])).toEqual([['g2-0', 1], ['g2-1', 1]]);
  });

  it('calls the crash hook after pulling crashAtStep and before acking it', async () => {
    const plane = new FakeControlPlane({ maxSteps: 3 });
    const crashes: number[] = [];
    const { trainer } = setup(plane, { crashAtStep: 1 }, {
      crash: (step) => {
        crashes.push(step);
        throw new TandemError(ErrorCode.Internal, 'simulated crash');
      },
    });
    await expect(trainer.run()).rejects.toThrow('simulated crash');
    expect(crashes).toEqual([1]);
    expect(plane.pulls.map((p) => p.step)).toEqual([0, 1]);
    expect(plane.acks.map((a) => a.step)).toEqual([0]);
  });

  it('rejects a batch that breaks the staleness contract', async () => {
    const plane = new FakeControlPlane({ maxSteps: 3, k: 1, age: 2 });
    plane.nextStep = 2;
    await expect(setup(plane).trainer.run()).rejects.toMatchObject({
      code: ErrorCode.InvalidArgument,
      message: expect.stringMatching(/age 2 \(step 2 − version 0\) is outside \[0, 1\]/),
    });
    expect(plane.acks).toHaveLength(0);
  });

  it('answers sendWeights with a simulated broadcast, and refuses a version it does not hold', async () => {
    const plane = new FakeControlPlane({ maxSteps: 2 });
    plane.pullScript = ['default', 'hang'];
    const { trainer } = setup(plane, { weightBroadcast: { modelBytes: 2e9, bandwidthBytesPerSecond: 1e9, groupInitMs: 300 } });
    const done = trainer.run();
    while (plane.pulls.length < 2) await new Promise((r) => setImmediate(r));
    const attach = plane.attaches[0]!;
    const command = (policyVersion: number, syncId: string, deadlineMs: number, groupId = 'g1', formsGroup = false) => ({
      $case: 'sendWeights' as const,
      sendWeights: { policyVersion, syncId, masterAddress: '127.0.0.1', masterPort: 29500, worldSize: 2, deadlineMs, groupId, formsGroup },
    });
    // One at a time: the virtual clock advances for every sleep, so
    // overlapping broadcasts would see each other's time.
    const commands = [
      command(1, 's1', 0, 'g1', true),
      command(5, 's2', 0),
      command(1, 's3', 500),
      command(0, 's4', 0),
      command(1, 's5', 0, 'g2', true),
      command(1, 's6', 0, 'g3'),
    ];
    for (const [i, c] of commands.entries()) {
      attach.send(c);
      while (plane.written('weightsSent').length < i + 1) await new Promise((r) => setImmediate(r));
    }
    trainer.stop();
    const report = await done;
    const sent = plane.written('weightsSent').map((w) => w.weightsSent);
    // First broadcast: group init (300 ms) + 2 GB at 1 GB/s.
    expect(sent[0]).toEqual({ policyVersion: 1, ok: true, error: '', seconds: 2.3, syncId: 's1' });
    expect(sent[1]).toEqual({ policyVersion: 1, ok: false, error: 'trainer holds policy version 1, not 5', seconds: 0, syncId: 's2' });
    expect(sent[2]).toMatchObject({ policyVersion: 1, ok: false, seconds: 0.5, syncId: 's3', error: expect.stringMatching(/over the 500 ms deadline/) });
    // Asked for an older version: sends what it holds, and says which; same group, no init.
    expect(sent[3]).toEqual({ policyVersion: 1, ok: true, error: '', seconds: broadcastTimeMs(2e9, 1e9, 1) / 1000, syncId: 's4' });
    // A new group is initialised again.
    expect(sent[4]).toMatchObject({ ok: true, seconds: 2.3, syncId: 's5' });
    // A group formed by a sync this process never saw (it restarted) is refused at once.
    expect(sent[5]).toEqual({ policyVersion: 1, ok: false, error: 'trainer is not in transfer group g3; it must be re-formed', seconds: 0, syncId: 's6' });
    expect(report).toMatchObject({ weightSyncs: 3, weightSyncSeconds: 6.6, outcome: 'stopped' });
  });
});

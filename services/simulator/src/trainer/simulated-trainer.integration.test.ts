import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger, systemClock } from '@tandem/common';
import { ControlPlane, loadConfig } from '@tandem/control-plane';
import { encodedSyntheticGroup, RolloutStore } from '@tandem/rollout-queue';
import { freePort, startRedisServer, type RedisServerHandle } from '@tandem/testkit';
import { JsonFileCheckpointStore } from './checkpoint-store.js';
import { resolveTrainerConfig, type SimulatedTrainerOptions } from './config.js';
import { SimulatedTrainer } from './simulated-trainer.js';
import { createTrainerClient } from './trainer-rpc.js';

/**
 * The simulated trainer with the real grpc-js client against the real
 * control plane (in process) and a real Redis; the test plays the rollout
 * workers (see startGeneration). Time is real but scaled down a
 * thousandfold; nothing asserts on durations.
 */

const GROUP_SIZE = 2;
const BATCH_GROUPS = 2;
const TOKENS_PER_COMPLETION = 8;

const spec = (maxSteps: number) => ({
  model: { name: 'tiny' },
  dataset: { source: 'builtin', name: 'arithmetic', size: 20 },
  reward: { kind: 'numeric' },
  algorithm: { groupSize: GROUP_SIZE, batchGroups: BATCH_GROUPS },
  async: { maxTrajectoryAgeSteps: 1 },
  maxSteps,
});

let redis: RedisServerHandle;
let workerStore: RolloutStore;
let dir: string;
const cleanups: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  redis = await startRedisServer();
  // The workers' own connection, so that they outlive a control plane restart.
  workerStore = await RolloutStore.create({ redisUrl: redis.url });
  dir = await mkdtemp(join(tmpdir(), 'tandem-sim-trainer-'));
});

afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => undefined);
  await workerStore?.close();
  await redis?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function startPlane(grpcPort = 0): Promise<{ plane: ControlPlane; grpcAddress: string }> {
  const plane = await ControlPlane.create(
    loadConfig({ TANDEM_REDIS_URL: redis.url, TANDEM_HTTP_PORT: '0', TANDEM_GRPC_PORT: String(grpcPort), TANDEM_LOG_LEVEL: 'silent' }),
    { log: silentLogger() },
  );
  const { grpcAddress } = await plane.start();
  cleanups.push(() => stopPlane(plane));
  return { plane, grpcAddress };
}

const stopped = new WeakSet<ControlPlane>();
async function stopPlane(plane: ControlPlane): Promise<void> {
  if (stopped.has(plane)) return;
  stopped.add(plane);
  await plane.stop();
}

/**
 * Plays the rollout workers of one run: completes every admitted (in-flight)
 * group with a synthetic one, stamped with the version the generators serve
 * now, as a real generator would. It reads the run's in-flight set rather
 * than taking BullMQ jobs because the admitter's enqueue currently fails
 * (BullMQ rejects the integer group ids as job ids: "Custom Id cannot be
 * integers"); admission itself, which is what the trainer depends on, works.
 */
function startGeneration(runId: string): void {
  const queue = workerStore.forRun(runId);
  const abort = new AbortController();
  const loop = (async () => {
    while (!abort.signal.aborted) {
      const changed = queue.waitForChange(200, abort.signal).catch(() => undefined);
      // Read the in-flight set first: the snapshot's version is then at least
      // the version each of those groups was admitted with (honest stamps).
      const inFlight = await queue.inFlightGroups();
      const snap = await queue.snapshot();
      if (snap.state !== 'open') return;
      for (const { groupId, targetStep } of inFlight) {
        const group = encodedSyntheticGroup(groupId, {
          groupSize: GROUP_SIZE,
          tokensPerCompletion: TOKENS_PER_COMPLETION,
          minPolicyVersion: Math.min(snap.policyVersion, targetStep),
          targetStep,
        });
        // A group cancelled or completed meanwhile is no longer in flight.
        await queue.complete(group).catch((err: unknown) => {
          if (!/no longer in flight/.test(String(err))) throw err;
        });
      }
      await changed;
    }
  })();
  cleanups.push(async () => {
    abort.abort();
    await loop;
  });
}

function trainer(
  grpcAddress: string,
  runId: string,
  options: Partial<SimulatedTrainerOptions> = {},
  crash?: (step: number) => void,
): SimulatedTrainer {
  const config = resolveTrainerConfig({
    server: grpcAddress,
    runId,
    trainerId: `test-${runId}`,
    cost: { stepOverheadMs: 500, msPerKiloToken: 100, timeScale: 0.001 },
    pullWaitMs: 2000,
    reconnect: { initialMs: 20, maxMs: 200, giveUpAfterMs: 20_000 },
    checkpointPath: join(dir, `${runId}.json`),
    ...options,
  });
  const client = createTrainerClient(config);
  cleanups.push(async () => client.close());
  return new SimulatedTrainer({
    client,
    clock: systemClock,
    log: silentLogger(),
    config,
    checkpoints: new JsonFileCheckpointStore(config.checkpointPath as string),
    ...(crash ? { crash } : {}),
  });
}

/** Ledger invariants after a run: every trained group trained exactly once. */
async function expectTrainedOnce(plane: ControlPlane, runId: string, steps: number): Promise<void> {
  const view = await plane.runs.get(runId);
  expect(view.status.phase).toBe('Succeeded');
  expect(view.status.trainerStep).toBe(steps);
  expect(view.status.ledger).toMatchObject({
    trained: steps * BATCH_GROUPS,
    droppedStale: 0,
    tokensTrained: steps * BATCH_GROUPS * GROUP_SIZE * TOKENS_PER_COMPLETION,
  });
  const states = [...(await plane.store.forRun(runId).groupStates()).values()];
  // The ledger counts acks; the group states count distinct groups: equal
  // only when no group was trained twice.
  expect(states.filter((s) => s === 'trained')).toHaveLength(steps * BATCH_GROUPS);
}

class SimulatedCrash extends Error {}

describe('SimulatedTrainer against the real control plane', () => {
  let plane: ControlPlane;
  let grpcAddress: string;

  beforeAll(async () => {
    ({ plane, grpcAddress } = await startPlane());
  });

  it('trains a run to completion within the staleness bound', async () => {
    const runId = 'sim-trainer-happy';
    await plane.runs.submit({ spec: spec(3), runId });
    startGeneration(runId);

    const report = await trainer(grpcAddress, runId).run();

    expect(report).toMatchObject({
      simulated: true,
      outcome: 'finished',
      runId,
      firstStep: 0,
      steps: 3,
      policyVersion: 3,
      groups: 6,
      tokens: 6 * GROUP_SIZE * TOKENS_PER_COMPLETION,
      reservedBatches: 0,
      reconnects: 0,
    });
    expect(report.ages.max).toBeLessThanOrEqual(1);
    expect(Object.values(report.ages.histogram).reduce((a, b) => a + b, 0)).toBe(6);
    expect(report.idleRatio).toBeGreaterThanOrEqual(0);
    expect(report.idleRatio).toBeLessThanOrEqual(1);
    await expectTrainedOnce(plane, runId, 3);
    const checkpoint = JSON.parse(await readFile(join(dir, `${runId}.json`), 'utf8')) as unknown;
    expect(checkpoint).toMatchObject({ runId, policyVersion: 3, lastAckedStep: 2 });
  });

  it('re-serves an un-acked batch to a restarted trainer, and trains nothing twice', async () => {
    const runId = 'sim-trainer-crash';
    await plane.runs.submit({ spec: spec(3), runId });
    startGeneration(runId);

    const crashed: number[] = [];
    const first = trainer(grpcAddress, runId, { crashAtStep: 1 }, (step) => {
      crashed.push(step);
      throw new SimulatedCrash(`crash at step ${step}`);
    });
    await expect(first.run()).rejects.toBeInstanceOf(SimulatedCrash);
    expect(crashed).toEqual([1]);
    const during = await plane.store.forRun(runId).snapshot();
    expect(during.trainerStep).toBe(1);
    expect([...(await plane.store.forRun(runId).groupStates()).values()].filter((s) => s === 'served')).toHaveLength(BATCH_GROUPS);

    const second = trainer(grpcAddress, runId);
    const report = await second.run();
    expect(report).toMatchObject({ outcome: 'finished', firstStep: 1, steps: 2, policyVersion: 3, reservedBatches: 1 });
    expect(second.stepStats().map((s) => [s.step, s.reserved])).toEqual([
      [1, true],
      [2, false],
    ]);
    expect(report.ages.max).toBeLessThanOrEqual(1);
    await expectTrainedOnce(plane, runId, 3);
  });

  it('fails fast on an unknown run', async () => {
    await expect(trainer(grpcAddress, 'no-such-run').run()).rejects.toMatchObject({ code: 'NOT_FOUND' });
  });

  it('ends cleanly when the run is cancelled while it waits for a batch', async () => {
    const runId = 'sim-trainer-cancel';
    await plane.runs.submit({ spec: spec(3), runId });
    // No worker: the batch never fills, so the trainer long-polls step 0.
    const t = trainer(grpcAddress, runId);
    const done = t.run();
    await new Promise((r) => setTimeout(r, 300));
    await plane.runs.cancel(runId, 'test');
    expect(await done).toMatchObject({ outcome: 'run_ended', steps: 0 });
  });
});

describe('SimulatedTrainer across a control-plane restart', () => {
  it('reconnects with backoff and finishes the run', async () => {
    const port = await freePort();
    const runId = 'sim-trainer-restart';
    const { plane: planeA, grpcAddress } = await startPlane(port);
    await planeA.runs.submit({ spec: spec(4), runId });
    startGeneration(runId);

    const t = trainer(grpcAddress, runId, { cost: { stepOverheadMs: 50_000, msPerKiloToken: 0, timeScale: 0.001 } });
    const done = t.run();
    while (t.stepStats().length < 1) await new Promise((r) => setTimeout(r, 10));
    await stopPlane(planeA);
    await new Promise((r) => setTimeout(r, 200));
    const { plane: planeB } = await startPlane(port);

    const report = await done;
    expect(report).toMatchObject({ outcome: 'finished', policyVersion: 4, steps: 4 });
    expect(report.reconnects).toBeGreaterThanOrEqual(1);
    await expectTrainedOnce(planeB, runId, 4);
  });
});

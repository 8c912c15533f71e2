import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { ErrorCode, TandemError, silentLogger, systemClock } from '@tandem/common';
import { RolloutStore } from '@tandem/rollout-queue';
import { startRedisServer, type RedisServerHandle } from '@tandem/testkit';
import type { ControlMessage } from '@tandem/protocol';
import { TrainerSessions } from '../broker/trainer-sessions.js';
import { ControlPlaneMetrics } from '../metrics/control-plane-metrics.js';
import { WeightSyncCoordinator } from './weight-sync-coordinator.js';
import type { PackingPlacement, VllmAdmin } from './vllm-admin-client.js';

/**
 * The coordinator against a real Redis (registry, queue) with in-process
 * generator admin fakes that record every call, and a trainer session whose
 * stream answers SendWeights.
 */

let redis: RedisServerHandle;
let store: RolloutStore;
beforeAll(async () => {
  redis = await startRedisServer();
  store = await RolloutStore.create({ redisUrl: redis.url });
});
afterAll(async () => {
  await store?.close();
  await redis?.stop();
});

interface FakeGenerator {
  calls: string[];
  /** The layouts /update_weights was given (with packing for `update`-placement generators). */
  layouts?: unknown[];
  /** Where its vLLM takes the packing (default: `init`, current vLLM). */
  placement?: PackingPlacement;
  /** The packing it was given at init. */
  initPacking?: unknown;
  hangOn?: string;
  failOn?: string;
}

function fakeAdmin(gens: Map<string, FakeGenerator>): (url: string) => VllmAdmin {
  return (url) => {
    const g = gens.get(url) as FakeGenerator;
    const act = async (name: string, deadlineMs: number): Promise<void> => {
      g.calls.push(name);
      if (g.failOn === name) throw new TandemError(ErrorCode.Unavailable, `${name} answered 500`);
      if (g.hangOn === name) {
        await new Promise((r) => setTimeout(r, deadlineMs));
        throw new TandemError(ErrorCode.DeadlineExceeded, `${name} missed its ${deadlineMs} ms deadline`);
      }
    };
    return {
      health: async () => undefined,
      load: async () => ({ busySeconds: 0 }),
      worldSize: async (d) => (await act('world_size', d), 1),
      initWeightTransferEngine: async (_i, packing, d) => {
        await act('init', d);
        const placement = g.placement ?? 'init';
        if (placement === 'init') g.initPacking = packing;
        return placement;
      },
      pause: (mode, d) => act(`pause:${mode}`, d),
      resume: (d) => act('resume', d),
      startWeightUpdate: (d) => act('start', d),
      updateWeights: (layout, packing, placement, v, d) => {
        (g.layouts ??= []).push(placement === 'update' ? { ...layout, ...packing } : layout);
        return act(`update:${v}`, d);
      },
      finishWeightUpdate: (v, d) => act(`finish:${v}`, d),
    };
  };
}

async function setup(options: { generators: number; timeoutMs?: number; trainerOk?: boolean; trainerDelayMs?: number; simulated?: boolean; sessionLayout?: string }) {
  const runId = `sync-${randomUUID().slice(0, 8)}`;
  const queue = store.forRun(runId);
  await queue.init({ maxTrajectoryAgeSteps: 1, batchGroups: 1, capacityGroups: 2, maxSteps: 100 });
  const registry = store.generators(runId);
  const gens = new Map<string, FakeGenerator>();
  for (let i = 0; i < options.generators; i++) {
    const url = `http://gen-${i}`;
    gens.set(url, { calls: [] });
    await registry.register(`gen-${i}`, url, 0);
  }
  const sessions = new TrainerSessions(silentLogger());
  const sent: ControlMessage[] = [];
  let coordinator: WeightSyncCoordinator | undefined = undefined;
  sessions.register({
    runId,
    trainerId: 't',
    simulated: options.simulated ?? true,
    weightsReadyVersion: -1,
    ...(options.sessionLayout === undefined ? {} : { updateInfoJson: options.sessionLayout }),
    address: '127.0.0.1',
    stream: {
      write: (m: ControlMessage) => {
        sent.push(m);
        if (m.kind?.$case === 'sendWeights') {
          const c = m.kind.sendWeights;
          setTimeout(
            () =>
              coordinator?.weightsSent({
                policyVersion: c.policyVersion,
                ok: options.trainerOk ?? true,
                error: options.trainerOk === false ? 'broadcast failed' : '',
                seconds: 0,
                syncId: c.syncId,
              }),
            options.trainerDelayMs ?? 1,
          );
        }
        return true;
      },
      end: () => undefined,
      emit: () => true,
    },
  });
  const metrics = new ControlPlaneMetrics({ defaultMetrics: false });
  coordinator = new WeightSyncCoordinator(
    { runId, registry, queue, sessions, metrics, clock: systemClock, log: silentLogger(), admin: fakeAdmin(gens) },
    { timeoutMs: options.timeoutMs ?? 5000, inFlightWeightUpdates: true, transferPort: 29500, healthIntervalMs: 60_000, unhealthyAfterFailures: 3 },
  );
  coordinator.start();
  return { runId, queue, registry, gens, sent, coordinator, metrics, sessions };
}

async function until(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('weight-sync coordinator', () => {
  it('runs the vLLM sequence on every generator, then publishes the version', async () => {
    const t = await setup({ generators: 3 });
    t.coordinator.weightsReady(1, '');
    await until(async () => (await t.queue.snapshot()).policyVersion === 1, 'version 1 published');
    for (const g of t.gens.values()) {
      expect(g.calls).toEqual(['world_size', 'init', 'pause:keep', 'start', 'update:1', 'finish:1', 'resume']);
    }
    const send = t.sent.find((m) => m.kind?.$case === 'sendWeights');
    expect(send?.kind?.$case === 'sendWeights' && send.kind.sendWeights).toMatchObject({ policyVersion: 1, worldSize: 4, masterPort: 29500, formsGroup: true });
    expect((await t.registry.list()).map((g) => [g.state, g.policyVersion])).toEqual([
      ['ready', 1],
      ['ready', 1],
      ['ready', 1],
    ]);
    // The next sync keeps the group: no world_size/init again.
    t.coordinator.weightsReady(2, '');
    await until(async () => (await t.queue.snapshot()).policyVersion === 2, 'version 2 published');
    expect([...t.gens.values()][0]?.calls.slice(7)).toEqual(['pause:keep', 'start', 'update:2', 'finish:2', 'resume']);
    // The trainer is told the group already exists: it must not re-initialise.
    const second = t.sent.filter((m) => m.kind?.$case === 'sendWeights').at(1);
    expect(second?.kind?.$case === 'sendWeights' && second.kind.sendWeights).toMatchObject({ policyVersion: 2, formsGroup: false, groupId: send?.kind?.$case === 'sendWeights' ? send.kind.sendWeights.groupId : '?' });
    expect(t.coordinator.reports.map((r) => [r.policyVersion, r.result, r.groupReformed])).toEqual([
      [1, 'ok', true],
      [2, 'ok', false],
    ]);
    await t.coordinator.stop();
  });

  it('does not sync a real trainer until it has sent its weight layout; gives each vLLM the packing where it takes it', async () => {
    const t = await setup({ generators: 2, simulated: false });
    t.coordinator.weightsReady(1, '');
    // Several loop rounds (kicked and timed) pass without a sync.
    await new Promise((r) => setTimeout(r, 300));
    t.coordinator.membershipChanged();
    await new Promise((r) => setTimeout(r, 100));
    expect(t.sent.filter((m) => m.kind?.$case === 'sendWeights')).toEqual([]);
    expect([...t.gens.values()].flatMap((g) => g.calls)).toEqual([]);
    const layout = { names: ['w'], dtype_names: ['float32'], shapes: [[2, 2]] };
    const packing = { packed: true, packed_buffer_size_bytes: 1024, packed_num_buffers: 2 };
    // One generator runs a vLLM that takes the packing per update (≤ 0.25), one takes it at init.
    const [older, newer] = [...t.gens.values()] as [FakeGenerator, FakeGenerator];
    older.placement = 'update';
    t.coordinator.weightsReady(1, JSON.stringify({ ...layout, ...packing }));
    await until(async () => (await t.queue.snapshot()).policyVersion === 1, 'version 1 published');
    expect(older.layouts).toEqual([{ ...layout, ...packing }]);
    expect(older.initPacking).toBeUndefined();
    expect(newer.layouts).toEqual([layout]);
    expect(newer.initPacking).toEqual(packing);
    // The same packing keeps the group; a new one re-forms it (init-placed packing is fixed per group).
    t.coordinator.weightsReady(2, JSON.stringify({ ...layout, ...packing }));
    await until(async () => (await t.queue.snapshot()).policyVersion === 2, 'version 2 published');
    t.coordinator.weightsReady(3, JSON.stringify({ ...layout, ...packing, packed_buffer_size_bytes: 4096 }));
    await until(async () => (await t.queue.snapshot()).policyVersion === 3, 'version 3 published');
    expect(t.coordinator.reports.map((r) => [r.policyVersion, r.groupReformed])).toEqual([
      [1, true],
      [2, false],
      [3, true],
    ]);
    expect(newer.initPacking).toEqual({ ...packing, packed_buffer_size_bytes: 4096 });
    await t.coordinator.stop();
  });

  it('uses the layout a real trainer sent before the coordinator existed', async () => {
    // The trainer attached and sent its layout before any generator registered
    // (the usual order on Kubernetes); later WeightsReady carry none.
    const layout = { names: ['w'], dtype_names: ['float32'], shapes: [[2]] };
    const t = await setup({ generators: 1, simulated: false, sessionLayout: JSON.stringify({ ...layout, packed: true }) });
    t.coordinator.weightsReady(1, '');
    await until(async () => (await t.queue.snapshot()).policyVersion === 1, 'version 1 published');
    expect([...t.gens.values()][0]?.layouts).toEqual([layout]);
    await t.coordinator.stop();
  });

  it('ignores a malformed layout, and re-forms the group for a generator that re-registers at the same URL', async () => {
    const t = await setup({ generators: 2 });
    t.coordinator.weightsReady(1, JSON.stringify({ names: ['a', 'b'], dtype_names: ['float32'], shapes: [[1]] }));
    await until(async () => (await t.queue.snapshot()).policyVersion === 1, 'version 1 published');
    expect([...t.gens.values()][0]?.layouts).toEqual([{ names: [], dtype_names: [], shapes: [] }]);
    // gen-1 restarted: a new process at the same id and URL holds no transfer engine.
    await t.registry.register('gen-1', 'http://gen-1', 0);
    t.coordinator.generatorRegistered('gen-1');
    t.coordinator.weightsReady(2, '');
    await until(async () => (await t.queue.snapshot()).policyVersion === 2, 'version 2 published');
    expect(t.coordinator.reports.map((r) => [r.policyVersion, r.groupReformed])).toEqual([
      [1, true],
      [2, true],
    ]);
    await t.coordinator.stop();
  });

  it('publishes again a version Redis lost (restart within its AOF fsync window)', async () => {
    const t = await setup({ generators: 1 });
    t.coordinator.weightsReady(1, '');
    await until(async () => (await t.queue.snapshot()).policyVersion === 1, 'version 1 published');
    await store.redis.hset(t.queue.keys.meta, 'policyVersion', 0);
    t.coordinator.membershipChanged();
    await until(async () => (await t.queue.snapshot()).policyVersion === 1, 'version 1 published again');
    expect(t.coordinator.reports.map((r) => [r.policyVersion, r.result])).toEqual([
      [1, 'ok'],
      [1, 'ok'],
    ]);
    await t.coordinator.stop();
  });

  it('cuts off a generator that hangs its update at the deadline; the rest complete', async () => {
    const t = await setup({ generators: 3, timeoutMs: 1200 });
    const hung = t.gens.get('http://gen-1') as FakeGenerator;
    hung.hangOn = 'update:1';
    t.coordinator.weightsReady(1, '');
    await until(async () => (await t.queue.snapshot()).policyVersion === 1, 'version 1 published');
    const states = Object.fromEntries((await t.registry.list()).map((g) => [g.id, g]));
    expect(states['gen-0']).toMatchObject({ state: 'ready', policyVersion: 1 });
    expect(states['gen-2']).toMatchObject({ state: 'ready', policyVersion: 1 });
    expect(states['gen-1']?.state).toBe('unhealthy');
    expect(states['gen-1']?.reason).toMatch(/^update: .*deadline/);
    expect(t.coordinator.reports[0]).toMatchObject({ result: 'partial', generators: ['gen-0', 'gen-2'] });
    // Its update is closed and it is resumed after it was cut off (so that it
    // can rejoin later), but it stays out of service until a full sync.
    await until(async () => hung.calls.at(-1) === 'resume', 'the cut-off generator resumed');
    expect(hung.calls.slice(-3)).toEqual(['update:1', 'finish:1', 'resume']);
    // The next sync re-forms the group without it.
    t.coordinator.weightsReady(2, '');
    await until(async () => (await t.queue.snapshot()).policyVersion === 2, 'version 2 published');
    expect(t.coordinator.reports[1]).toMatchObject({ result: 'ok', groupReformed: true, generators: ['gen-0', 'gen-2'] });
    const sends = t.sent.filter((m) => m.kind?.$case === 'sendWeights');
    expect(sends.at(-1)?.kind?.$case === 'sendWeights' && sends.at(-1)?.kind).toMatchObject({ sendWeights: { worldSize: 3 } });
    await t.coordinator.stop();
  });

  it('coalesces versions reported faster than syncs finish to the newest', async () => {
    const t = await setup({ generators: 1, trainerDelayMs: 150 });
    t.coordinator.weightsReady(1, '');
    await until(async () => t.sent.some((m) => m.kind?.$case === 'sendWeights'), 'first sync started');
    t.coordinator.weightsReady(2, '');
    t.coordinator.weightsReady(3, '');
    t.coordinator.weightsReady(4, '');
    await until(async () => (await t.queue.snapshot()).policyVersion === 4, 'version 4 published');
    expect(t.coordinator.reports.map((r) => r.policyVersion)).toEqual([1, 4]);
    await t.coordinator.stop();
  });

  it('fails a broadcast at once when the trainer asked for it is replaced by a new process', async () => {
    // The trainer never answers: only its replacement can end the wait before the 60 s deadline.
    const t = await setup({ generators: 2, timeoutMs: 60_000, trainerDelayMs: 600_000 });
    t.coordinator.weightsReady(1, '');
    await until(async () => t.sent.some((m) => m.kind?.$case === 'sendWeights'), 'SendWeights to the trainer');
    // The restarted trainer answers, so the sync that follows completes.
    const answer = (m: ControlMessage): boolean => {
      if (m.kind?.$case === 'sendWeights') {
        const c = m.kind.sendWeights;
        setTimeout(() => t.coordinator.weightsSent({ policyVersion: c.policyVersion, ok: true, error: '', seconds: 0, syncId: c.syncId }), 1);
      }
      return true;
    };
    t.sessions.register({ runId: t.runId, trainerId: 't-restarted', simulated: true, weightsReadyVersion: -1, address: '127.0.0.1', stream: { write: answer, end: () => undefined, emit: () => true } });
    t.coordinator.trainerAttached();
    await until(async () => t.coordinator.reports.some((r) => r.result === 'ok'), 'a sync through the restarted trainer');
    await t.coordinator.stop();
    expect(t.coordinator.reports[0]).toMatchObject({ result: 'failed', policyVersion: 1 });
    expect((await t.registry.list()).map((g) => [g.state, g.policyVersion])).toEqual([
      ['ready', 1],
      ['ready', 1],
    ]);
  });

  it('a failed broadcast leaves nobody serving a partial update', async () => {
    const t = await setup({ generators: 2, trainerOk: false });
    t.coordinator.weightsReady(1, '');
    await until(async () => t.coordinator.reports.length > 0, 'a sync report');
    // Stop first: nobody serves, so the coordinator keeps retrying the sync.
    await t.coordinator.stop();
    expect(t.coordinator.reports.every((r) => r.result === 'failed')).toBe(true);
    expect((await t.registry.list()).map((g) => [g.state, g.policyVersion])).toEqual([
      ['joining', -1],
      ['joining', -1],
    ]);
    expect((await t.queue.snapshot()).policyVersion).toBe(0);
  });
});

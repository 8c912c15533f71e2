import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { startRedisServer, type RedisServerHandle } from '@tandem/testkit';
import { PromptGroup } from '@tandem/protocol';
import { RolloutStore } from './rollout-store.js';
import type { RolloutQueue } from './rollout-queue.js';
import { encodedSyntheticGroup } from './synthetic-group.js';

/**
 * Seeded property tests: several producers and one consumer race on a real
 * Redis, with random interleavings, failures, cancellations and (in the
 * "lagging" mode) generators that serve old weights. Whatever happens:
 * nothing older than k is served, every admitted group ends in exactly one
 * ledger outcome, no group is trained twice, and with honest stamps nothing
 * is dropped.
 */

let redis: RedisServerHandle;
let store: RolloutStore;
let runSeq = 0;

beforeAll(async () => {
  redis = await startRedisServer();
  store = await RolloutStore.create({ redisUrl: redis.url });
});
afterAll(async () => {
  await store?.close();
  await redis?.stop();
});

function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Scenario {
  k: number;
  batchGroups: number;
  producers: number;
  maxSteps: number;
  seed: number;
  failRate: number;
  cancelRate: number;
  lagging: boolean;
  trainerCrashRate: number;
  syncLag: boolean;
}

async function runScenario(sc: Scenario): Promise<void> {
  const queue: RolloutQueue = store.forRun(`prop-${process.pid}-${runSeq++}`);
  await queue.init({
    maxTrajectoryAgeSteps: sc.k,
    batchGroups: sc.batchGroups,
    capacityGroups: sc.batchGroups * (sc.k + 1),
    maxSteps: sc.maxSteps,
  });
  const rand = rng(sc.seed);

  async function producer(): Promise<void> {
    for (;;) {
      const attempt = await queue.admit({ timeoutMs: 20_000 });
      if (attempt.kind === 'ended') return;
      const a = attempt.admission;
      await pause(Math.floor(rand() * 3));
      const r = rand();
      if (r < sc.failRate) {
        await queue.fail(a.groupId, 'injected');
        continue;
      }
      if (r < sc.failRate + sc.cancelRate) {
        await queue.cancel(a.groupId, { readmit: true });
        continue;
      }
      // Honest stamps start at the version in force at admission (or later,
      // if a sync completed meanwhile). Lagging generators serve older ones.
      const snap = await queue.snapshot();
      let minV = a.policyVersion + (rand() < 0.5 ? 0 : Math.max(0, snap.policyVersion - a.policyVersion));
      if (sc.lagging) minV = Math.max(0, minV - Math.floor(rand() * 3));
      const maxV = Math.max(minV, snap.policyVersion);
      await queue.complete(
        encodedSyntheticGroup(a.groupId, { groupSize: 2, tokensPerCompletion: 3, minPolicyVersion: minV, maxPolicyVersion: maxV }),
      );
    }
  }

  const trainedIds = new Set<string>();
  const publishes: Array<Promise<unknown>> = [];
  async function consumer(): Promise<void> {
    for (let s = 0; s < sc.maxSteps; s++) {
      const served = await queue.serveBatch(s, { timeoutMs: 20_000 });
      expect(served.kind).toBe('ready');
      if (served.kind !== 'ready') return;
      const { batch } = served;
      expect(batch.groupIds).toHaveLength(sc.batchGroups);
      for (const [i, payload] of batch.payloads.entries()) {
        const group = PromptGroup.decode(payload);
        expect(group.groupId).toBe(batch.groupIds[i]);
        expect(s - group.minPolicyVersion).toBeLessThanOrEqual(sc.k);
        expect(s - (batch.minPolicyVersions[i] as number)).toBeLessThanOrEqual(sc.k);
      }
      if (rand() < sc.trainerCrashRate) {
        // The trainer died before acking: the restarted one gets the same batch.
        const again = await queue.serveBatch(s, { timeoutMs: 1000 });
        expect(again.kind === 'ready' && again.batch.reserved).toBe(true);
        expect(again.kind === 'ready' && again.batch.groupIds).toEqual(batch.groupIds);
      }
      await pause(Math.floor(rand() * 3));
      for (const id of batch.groupIds) {
        expect(trainedIds.has(id)).toBe(false);
        trainedIds.add(id);
      }
      const ack = await queue.ackBatch(s, { publishVersion: !sc.syncLag });
      expect(ack).toEqual({ trainerStep: s + 1, groupsTrained: sc.batchGroups, duplicate: false });
      if (sc.syncLag) {
        // The weight sync completes a little later than the ack.
        publishes.push(pause(Math.floor(rand() * 4)).then(() => queue.publishPolicyVersion(s + 1)));
      }
    }
  }

  await Promise.all([consumer(), ...Array.from({ length: sc.producers }, () => producer())]);
  await Promise.all(publishes);

  const snap = await queue.snapshot();
  const l = snap.ledger;
  expect(snap.state).toBe('complete');
  expect(snap.inFlight).toBe(0);
  expect(snap.queueDepth).toBe(0);
  expect(l.trained).toBe(sc.batchGroups * sc.maxSteps);
  expect(l.admitted).toBe(l.trained + l.droppedStale + l.failed + l.cancelled);
  if (!sc.lagging) expect(l.droppedStale).toBe(0);

  // Per group: exactly one terminal outcome, matching the counters.
  const states = await queue.groupStates();
  expect(states.size).toBe(l.admitted);
  const counts: Record<string, number> = {};
  for (const st of states.values()) counts[st] = (counts[st] ?? 0) + 1;
  expect(counts).toEqual(
    Object.fromEntries(
      Object.entries({ trained: l.trained, dropped_stale: l.droppedStale, failed: l.failed, cancelled: l.cancelled }).filter(([, n]) => n > 0),
    ),
  );
  for (const id of trainedIds) expect(states.get(id)).toBe('trained');

  // Cancelled groups' prompts were admitted again: no prompt is lost.
  const prompts = await queue.groupPrompts();
  const trainedPrompts = new Set([...trainedIds].map((id) => prompts.get(id)));
  for (const [id, st] of states) {
    if (st === 'cancelled') {
      const p = prompts.get(id);
      const later = [...prompts.entries()].filter(([gid, pid]) => pid === p && Number(gid) > Number(id));
      expect(later.length).toBeGreaterThan(0);
    }
  }
  expect(trainedPrompts.size).toBeGreaterThan(0);
  await queue.destroy();
}

const scenario = fc.record({
  k: fc.integer({ min: 0, max: 3 }),
  batchGroups: fc.integer({ min: 1, max: 4 }),
  producers: fc.integer({ min: 1, max: 4 }),
  maxSteps: fc.integer({ min: 1, max: 6 }),
  seed: fc.integer({ min: 1, max: 2 ** 31 - 1 }),
  failRate: fc.constantFrom(0, 0.1, 0.3),
  cancelRate: fc.constantFrom(0, 0.1),
  lagging: fc.boolean(),
  trainerCrashRate: fc.constantFrom(0, 0.3),
  syncLag: fc.boolean(),
});

describe('rollout queue under concurrency (property)', () => {
  it('keeps the staleness contract and the ledger for any interleaving', async () => {
    await fc.assert(fc.asyncProperty(scenario, runScenario), { numRuns: 30, seed: 20261124 });
  });

  it('steady producers with honest stamps never drop anything, for every k', async () => {
    for (const k of [0, 1, 2, 4]) {
      await runScenario({
        k,
        batchGroups: 4,
        producers: 3,
        maxSteps: 8,
        seed: 7 + k,
        failRate: 0,
        cancelRate: 0,
        lagging: false,
        trainerCrashRate: 0,
        syncLag: true,
      });
    }
  });
});

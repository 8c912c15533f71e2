import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { TandemError } from '@tandem/common';
import { startRedisServer, type RedisServerHandle } from '@tandem/testkit';
import { PromptGroup } from '@tandem/protocol';
import { RolloutStore } from './rollout-store.js';
import type { RolloutQueue, RunQueueSettings } from './rollout-queue.js';
import { encodedSyntheticGroup } from './synthetic-group.js';

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

async function newQueue(settings: Partial<RunQueueSettings> = {}): Promise<RolloutQueue> {
  const queue = store.forRun(`t-${randomUUID().slice(0, 8)}`);
  const batchGroups = settings.batchGroups ?? 2;
  const k = settings.maxTrajectoryAgeSteps ?? 1;
  await queue.init({
    maxTrajectoryAgeSteps: k,
    batchGroups,
    capacityGroups: settings.capacityGroups ?? batchGroups * (k + 1),
    maxSteps: settings.maxSteps ?? 5,
  });
  return queue;
}

async function admitOne(queue: RolloutQueue) {
  const a = await queue.tryAdmit();
  if (a.kind !== 'admitted') throw new Error(`expected admission, got ${JSON.stringify(a)}`);
  return a.admission;
}

const G = 2;
const group = (groupId: string, minV: number, maxV = minV) =>
  encodedSyntheticGroup(groupId, { groupSize: G, tokensPerCompletion: 4, minPolicyVersion: minV, maxPolicyVersion: maxV });

describe('admission', () => {
  it('assigns targets in order and stops at the staleness bound', async () => {
    const q = await newQueue({ batchGroups: 2, maxTrajectoryAgeSteps: 1 });
    const targets = [];
    for (let i = 0; i < 4; i++) targets.push((await admitOne(q)).targetStep);
    expect(targets).toEqual([0, 0, 1, 1]);
    expect(await q.tryAdmit()).toEqual({ kind: 'blocked', reason: 'capacity' });
  });

  it('holds admission back while the generators lag the trainer', async () => {
    // Capacity larger than the window, so only the version bound applies.
    const q = await newQueue({ batchGroups: 1, maxTrajectoryAgeSteps: 1, capacityGroups: 10, maxSteps: 10 });
    expect((await admitOne(q)).targetStep).toBe(0);
    expect((await admitOne(q)).targetStep).toBe(1);
    expect(await q.tryAdmit()).toEqual({ kind: 'blocked', reason: 'version' });
    await q.complete(group('1', 0));
    await q.tryServeBatch(0);
    // The trainer moves to step 1 but the generators still serve version 0:
    // admitting for target 2 would give age 2 > k.
    await q.ackBatch(0, { publishVersion: false });
    expect(await q.tryAdmit()).toEqual({ kind: 'blocked', reason: 'version' });
    await q.publishPolicyVersion(1);
    expect((await admitOne(q)).targetStep).toBe(2);
  });

  it('k = 0 is synchronous: one step admitted at a time', async () => {
    const q = await newQueue({ batchGroups: 2, maxTrajectoryAgeSteps: 0, maxSteps: 3 });
    const a = [await admitOne(q), await admitOne(q)];
    expect(a.map((x) => x.targetStep)).toEqual([0, 0]);
    expect((await q.tryAdmit()).kind).toBe('blocked');
    for (const x of a) await q.complete(group(x.groupId, 0));
    const served = await q.tryServeBatch(0);
    expect(served.kind).toBe('ready');
    // Until the batch is trained and its weights published, nothing new.
    expect((await q.tryAdmit()).kind).toBe('blocked');
    await q.ackBatch(0, { publishVersion: true });
    expect((await admitOne(q)).targetStep).toBe(1);
  });

  it('blocks without spinning and wakes when a slot frees', async () => {
    const q = await newQueue({ batchGroups: 1, maxTrajectoryAgeSteps: 0, maxSteps: 3 });
    const first = await admitOne(q);
    const waiting = q.admit({ timeoutMs: 10_000 });
    await q.fail(first.groupId, 'test');
    const second = await waiting;
    expect(second.kind).toBe('admitted');
    if (second.kind === 'admitted') expect(second.admission.targetStep).toBe(0);
  });

  it('times out with DEADLINE_EXCEEDED', async () => {
    const q = await newQueue({ batchGroups: 1, maxTrajectoryAgeSteps: 0 });
    await admitOne(q);
    await expect(q.admit({ timeoutMs: 50 })).rejects.toMatchObject({ code: 'DEADLINE_EXCEEDED' });
  });

  it('re-admits the prompt of a cancelled group', async () => {
    const q = await newQueue({ batchGroups: 1, maxTrajectoryAgeSteps: 0 });
    const a = await admitOne(q);
    await q.cancel(a.groupId, { readmit: true });
    const b = await admitOne(q);
    expect(b.promptId).toBe(a.promptId);
    expect(b.groupId).not.toBe(a.groupId);
    expect((await q.snapshot()).ledger).toMatchObject({ admitted: 2, cancelled: 1 });
  });
});

describe('closing a run', () => {
  it('cancels the served batch even when an ack moves the trainer step while it closes', async () => {
    const q = await newQueue({ batchGroups: 1, maxTrajectoryAgeSteps: 1, maxSteps: 5 });
    const a = await admitOne(q);
    const b = await admitOne(q);
    await q.complete(group(a.groupId, 0));
    await q.complete(group(b.groupId, 0));
    expect((await q.tryServeBatch(0)).kind).toBe('ready');
    await q.ackBatch(0, { publishVersion: true });
    // The trainer pulled step 1 at once: batch:1 is served and not acked.
    expect((await q.tryServeBatch(1)).kind).toBe('ready');
    // close() read the trainer step just before that ack (the race).
    const redis = (q as unknown as { redis: { hget: (key: string, field: string) => Promise<string | null> } }).redis;
    const hget = redis.hget.bind(redis);
    let raced = false;
    redis.hget = async (key, field) => {
      if (field === 'trainerStep' && !raced) {
        raced = true;
        return '0';
      }
      return hget(key, field);
    };
    try {
      expect(await q.close('cancelled')).toBe(1);
    } finally {
      redis.hget = hget;
    }
    expect(raced).toBe(true);
    const snap = await q.snapshot();
    expect(snap.state).toBe('cancelled');
    expect(snap.ledger).toMatchObject({ admitted: 2, trained: 1, cancelled: 1 });
    expect([...(await q.groupStates()).values()].sort()).toEqual(['cancelled', 'trained']);
  });
});

describe('serving and acking', () => {
  it('serves only complete batches of the target step, then re-serves an un-acked one', async () => {
    const q = await newQueue({ batchGroups: 2, maxTrajectoryAgeSteps: 1 });
    const a = [await admitOne(q), await admitOne(q), await admitOne(q)];
    await q.complete(group(a[2]!.groupId, 0)); // target 1
    await q.complete(group(a[0]!.groupId, 0));
    expect(await q.tryServeBatch(0)).toEqual({ kind: 'not_ready', droppedStale: 0, freshFinished: 1 });
    await q.complete(group(a[1]!.groupId, 0));
    const first = await q.tryServeBatch(0);
    expect(first.kind).toBe('ready');
    if (first.kind !== 'ready') return;
    expect(first.batch.groupIds.sort()).toEqual([a[0]!.groupId, a[1]!.groupId].sort());
    expect(first.batch.reserved).toBe(false);
    const decoded = first.batch.payloads.map((p) => PromptGroup.decode(p));
    expect(decoded.map((g) => g.trajectories.length)).toEqual([G, G]);

    // The trainer crashed before acking: the same batch comes back.
    const again = await q.tryServeBatch(0);
    expect(again.kind === 'ready' && again.batch.reserved).toBe(true);
    expect(again.kind === 'ready' && again.batch.groupIds).toEqual(first.batch.groupIds);

    await expect(q.tryServeBatch(1)).rejects.toMatchObject({ code: 'FAILED_PRECONDITION' });
    const ack = await q.ackBatch(0, { publishVersion: true });
    expect(ack).toEqual({ trainerStep: 1, groupsTrained: 2, duplicate: false });
    // A retried ack is a no-op; nothing is trained twice.
    expect(await q.ackBatch(0, { publishVersion: true })).toEqual({ trainerStep: 1, groupsTrained: 0, duplicate: true });
    await expect(q.tryServeBatch(0)).rejects.toMatchObject({ code: 'FAILED_PRECONDITION' });
    const snap = await q.snapshot();
    expect(snap.ledger).toMatchObject({ admitted: 3, trained: 2, tokensTrained: 2 * G * 4 });
    expect(snap.trainerStep).toBe(1);
    expect(snap.policyVersion).toBe(1);
  });

  it('drops a group that is already too old when it finishes, and refills its slot', async () => {
    const q = await newQueue({ batchGroups: 1, maxTrajectoryAgeSteps: 0, maxSteps: 3 });
    const a = await admitOne(q);
    const c = await q.complete(group(a.groupId, 0));
    expect(c.droppedStale).toBe(false);
    await q.tryServeBatch(0);
    await q.ackBatch(0, { publishVersion: true });
    const b = await admitOne(q); // target 1
    // A generator that missed the sync still served version 0: age 1 > k = 0.
    const late = await q.complete(group(b.groupId, 0));
    expect(late).toEqual({ targetStep: 1, droppedStale: true });
    const snap = await q.snapshot();
    expect(snap.ledger).toMatchObject({ droppedStale: 1, tokensWasted: G * 4 });
    expect((await admitOne(q)).targetStep).toBe(1);
  });

  it('drops stale groups at consumption as a safety net', async () => {
    const q = await newQueue({ batchGroups: 1, maxTrajectoryAgeSteps: 1, maxSteps: 3 });
    const a = await admitOne(q);
    await q.complete(group(a.groupId, 0));
    // Tighten k behind the queue's back to make the stored group stale.
    await store.redis.hset(q.keys.meta, 'k', -1);
    const served = await q.tryServeBatch(0);
    expect(served).toEqual({ kind: 'not_ready', droppedStale: 1, freshFinished: 0 });
    expect((await q.groupStates()).get(a.groupId)).toBe('dropped_stale');
    // Nothing of the dropped group is kept but its state.
    expect(await store.redis.hexists(q.keys.gmeta, a.groupId)).toBe(0);
    expect(await store.redis.hexists(q.keys.payload, a.groupId)).toBe(0);
  });

  it('rejects completions of groups that are not in flight', async () => {
    const q = await newQueue();
    await expect(q.complete(group('nope', 0))).rejects.toMatchObject({ code: 'NOT_FOUND' });
    const a = await admitOne(q);
    await q.complete(group(a.groupId, 0));
    await expect(q.complete(group(a.groupId, 0))).rejects.toMatchObject({ code: 'FAILED_PRECONDITION' });
    await expect(q.fail(a.groupId, 'x')).rejects.toBeInstanceOf(TandemError);
  });

  it('completes the run after maxSteps and cancels everything open on close', async () => {
    const q = await newQueue({ batchGroups: 1, maxTrajectoryAgeSteps: 1, maxSteps: 1 });
    const a = await admitOne(q);
    expect(await q.tryAdmit()).toEqual({ kind: 'blocked', reason: 'slots' });
    await q.complete(group(a.groupId, 0));
    await q.tryServeBatch(0);
    await q.ackBatch(0, { publishVersion: true });
    expect(await q.tryAdmit()).toEqual({ kind: 'ended', state: 'complete' });
    expect(await q.tryServeBatch(1)).toEqual({ kind: 'ended', state: 'complete' });

    const r = await newQueue({ batchGroups: 2, maxTrajectoryAgeSteps: 1 });
    const g = [await admitOne(r), await admitOne(r), await admitOne(r)];
    await r.complete(group(g[0]!.groupId, 0));
    await r.complete(group(g[1]!.groupId, 0));
    await r.tryServeBatch(0); // served, never acked
    expect(await r.close('cancelled')).toBe(3);
    expect(await r.close('cancelled')).toBe(0);
    const snap = await r.snapshot();
    expect(snap.state).toBe('cancelled');
    expect(snap.ledger).toMatchObject({ admitted: 3, cancelled: 3, trained: 0 });
    expect(await r.tryAdmit()).toEqual({ kind: 'ended', state: 'closed' });
    expect([...(await r.groupStates()).values()]).toEqual(['cancelled', 'cancelled', 'cancelled']);
  });

  it('long-polls for a batch and returns not_ready at the deadline', async () => {
    const q = await newQueue({ batchGroups: 1, maxTrajectoryAgeSteps: 1 });
    const a = await admitOne(q);
    expect((await q.serveBatch(0, { timeoutMs: 30 })).kind).toBe('not_ready');
    const pending = q.serveBatch(0, { timeoutMs: 10_000 });
    await q.complete(group(a.groupId, 0));
    expect((await pending).kind).toBe('ready');
  });

  it('keeps every key of a run in one cluster hash slot', async () => {
    const q = await newQueue();
    await admitOne(q);
    const keys = await store.redis.keys(`tandem:{${q.runId}}:*`);
    expect(keys.length).toBeGreaterThan(3);
    const slots = await Promise.all(keys.map((k) => store.redis.call('CLUSTER', 'KEYSLOT', k).catch(() => null)));
    // CLUSTER KEYSLOT works on a non-cluster server too.
    expect(new Set(slots).size).toBe(1);
    expect(await q.destroy()).toBe(keys.length);
  });
});

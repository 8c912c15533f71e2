import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { startRedisServer, type RedisServerHandle } from '@tandem/testkit';
import { PromptGroup } from '@tandem/protocol';
import { RolloutStore } from './rollout-store.js';
import type { RolloutQueue } from './rollout-queue.js';
import { encodedSyntheticGroup } from './synthetic-group.js';

/**
 * complete() stages the payload with HSETNX in the same MULTI as the script
 * (so the bytes never pass through Lua): a payload must exist exactly while
 * its group is finished or served, whatever the completion's outcome.
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

async function newQueue(): Promise<RolloutQueue> {
  const q = store.forRun(`c-${randomUUID().slice(0, 8)}`);
  await q.init({ maxTrajectoryAgeSteps: 1, batchGroups: 2, capacityGroups: 4, maxSteps: 4 });
  return q;
}

const group = (groupId: string, minV: number, tokens = 4) =>
  encodedSyntheticGroup(groupId, { groupSize: 2, tokensPerCompletion: tokens, minPolicyVersion: minV });

async function admitted(q: RolloutQueue): Promise<{ groupId: string; targetStep: number }> {
  const a = await q.tryAdmit();
  if (a.kind !== 'admitted') throw new Error(JSON.stringify(a));
  return a.admission;
}
const admit = async (q: RolloutQueue): Promise<string> => (await admitted(q)).groupId;

const payloadOf = (q: RolloutQueue, id: string) => store.redis.hgetBuffer(q.keys.payload, id);

describe('complete (payload staged with HSETNX)', () => {
  it('stores the payload of a group it completes, and serves those exact bytes', async () => {
    const q = await newQueue();
    const [a, b] = [await admit(q), await admit(q)];
    const ga = group(a, 0);
    await q.complete(ga);
    await q.complete(group(b, 0));
    expect((await payloadOf(q, a))?.equals(ga.payload)).toBe(true);
    const served = await q.tryServeBatch(0);
    expect(served.kind).toBe('ready');
    if (served.kind !== 'ready') return;
    expect(served.batch.groupIds).toEqual([a, b]);
    expect(served.batch.payloads[0]?.equals(ga.payload)).toBe(true);
    expect(PromptGroup.decode(served.batch.payloads[1] as Buffer).groupId).toBe(b);
  });

  it('keeps the first payload when a finished or served group is completed again', async () => {
    const q = await newQueue();
    const [a, b] = [await admit(q), await admit(q)];
    const first = group(a, 0, 4);
    await q.complete(first);
    await expect(q.complete(group(a, 0, 8))).rejects.toMatchObject({ reason: 'GROUP_NOT_IN_FLIGHT' });
    expect((await payloadOf(q, a))?.equals(first.payload)).toBe(true);
    await q.complete(group(b, 0));
    await q.tryServeBatch(0);
    await expect(q.complete(group(a, 0, 8))).rejects.toMatchObject({ reason: 'GROUP_NOT_IN_FLIGHT' });
    expect((await payloadOf(q, a))?.equals(first.payload)).toBe(true);
  });

  it('leaves no payload behind for trained, cancelled, unknown, stale or malformed completions', async () => {
    const q = await newQueue();
    const [a, b] = [await admit(q), await admit(q)];
    await q.complete(group(a, 0));
    await q.complete(group(b, 0));
    await q.tryServeBatch(0);
    await q.ackBatch(0, { publishVersion: true });
    await expect(q.complete(group(a, 0))).rejects.toMatchObject({ reason: 'GROUP_NOT_IN_FLIGHT' });
    expect(await payloadOf(q, a)).toBeNull();

    const c = await admit(q);
    await q.cancel(c, { readmit: true });
    await expect(q.complete(group(c, 1))).rejects.toMatchObject({ reason: 'GROUP_NOT_IN_FLIGHT' });
    expect(await payloadOf(q, c)).toBeNull();

    await expect(q.complete(group('999', 1))).rejects.toMatchObject({ code: 'NOT_FOUND' });
    expect(await payloadOf(q, '999')).toBeNull();

    // Version 1 now, k = 1: a group for target 2 stamped with version 0 is too old.
    let stale = await admitted(q);
    while (stale.targetStep !== 2) stale = await admitted(q);
    expect((await q.complete(group(stale.groupId, 0))).droppedStale).toBe(true);
    expect(await payloadOf(q, stale.groupId)).toBeNull();

    const d = await admit(q);
    const bad = { ...group(d, 2), minPolicyVersion: 3, maxPolicyVersion: 2 };
    await expect(q.complete(bad)).rejects.toBeTruthy();
    expect(await payloadOf(q, d)).toBeNull();
    expect(await store.redis.hget(q.keys.gstate, d)).toBe('inflight');
  });
});

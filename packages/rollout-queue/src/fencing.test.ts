import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { TandemError } from '@tandem/common';
import { startRedisServer, type RedisServerHandle } from '@tandem/testkit';
import { RolloutStore } from './rollout-store.js';
import { encodedSyntheticGroup } from './synthetic-group.js';

/**
 * Two control-plane leaders on one run: the old one holds token 1, the new
 * one took the run over with token 2. Each has its own store (its own
 * process in production), reading its own token.
 */
let redis: RedisServerHandle;
const tokens = { old: 1 as number | undefined, fresh: 2 as number | undefined };
let oldLeader: RolloutStore;
let newLeader: RolloutStore;
let unfenced: RolloutStore;

beforeAll(async () => {
  redis = await startRedisServer();
  oldLeader = await RolloutStore.create({ redisUrl: redis.url, fencingToken: () => tokens.old });
  newLeader = await RolloutStore.create({ redisUrl: redis.url, fencingToken: () => tokens.fresh });
  unfenced = await RolloutStore.create({ redisUrl: redis.url });
});
afterAll(async () => {
  await Promise.all([oldLeader?.close(), newLeader?.close(), unfenced?.close()]);
  await redis?.stop();
});

const settings = { maxTrajectoryAgeSteps: 1, batchGroups: 1, capacityGroups: 2, maxSteps: 5 };

async function fencedError(p: Promise<unknown>): Promise<TandemError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TandemError);
  return err as TandemError;
}

describe('per-run fences', () => {
  it('refuses every leader-only transition of a deposed leader and changes nothing', async () => {
    const runId = `f-${randomUUID().slice(0, 8)}`;
    const old = oldLeader.forRun(runId);
    await old.init(settings); // created by the old leader: fence 1
    expect(await oldLeader.redis.get(old.keys.fence)).toBe('1');
    const a = await old.tryAdmit();
    expect(a.kind).toBe('admitted');

    await newLeader.forRun(runId).raiseFence(2); // the takeover
    const before = await old.snapshot();
    for (const attempt of [
      old.tryAdmit(),
      old.tryServeBatch(0),
      old.ackBatch(0, { publishVersion: true }),
      old.publishPolicyVersion(3),
      old.close('cancelled'),
    ]) {
      const err = await fencedError(attempt);
      expect(err.code).toBe('UNAVAILABLE');
      expect(err.reason).toBe('FENCED');
      expect(err.message).toContain('fencing token 1');
    }
    expect(await old.snapshot()).toEqual(before);

    // The new leader carries on; rollout workers (unfenced) are unaffected.
    const fresh = newLeader.forRun(runId);
    expect((await fresh.tryAdmit()).kind).toBe('admitted');
    const groupId = a.kind === 'admitted' ? a.admission.groupId : '';
    await unfenced.forRun(runId).complete(encodedSyntheticGroup(groupId, { groupSize: 2, tokensPerCompletion: 4, minPolicyVersion: 0, maxPolicyVersion: 0 }));
    const served = await fresh.tryServeBatch(0);
    expect(served.kind).toBe('ready');
    expect((await fresh.ackBatch(0, { publishVersion: false })).trainerStep).toBe(1);
    expect(await fresh.publishPolicyVersion(1)).toBe(1);
    expect(await fresh.close('cancelled')).toBe(1);
    const ledger = (await fresh.snapshot()).ledger;
    expect(ledger.admitted).toBe(ledger.trained + ledger.droppedStale + ledger.failed + ledger.cancelled);
  });

  it('only moves fences forward', async () => {
    const runId = `f-${randomUUID().slice(0, 8)}`;
    await newLeader.forRun(runId).init(settings);
    const err = await fencedError(oldLeader.forRun(runId).raiseFence(1));
    expect(err.reason).toBe('FENCED');
    await newLeader.forRun(runId).raiseFence(2); // idempotent
    expect(await newLeader.redis.get(newLeader.forRun(runId).keys.fence)).toBe('2');
    expect((await fencedError(oldLeader.forRun(`missing-${runId}`).raiseFence(5))).code).toBe('NOT_FOUND');
  });

  it('lets an unfenced caller (leader election off) through', async () => {
    const runId = `f-${randomUUID().slice(0, 8)}`;
    await newLeader.forRun(runId).init(settings);
    expect((await unfenced.forRun(runId).tryAdmit()).kind).toBe('admitted');
  });
});

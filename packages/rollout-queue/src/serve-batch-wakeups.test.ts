import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { silentLogger, systemClock } from '@tandem/common';
import { startRedisServer, type RedisServerHandle } from '@tandem/testkit';
import { RolloutQueue } from './rollout-queue.js';
import { RunEvents } from './run-events.js';
import { encodedSyntheticGroup } from './synthetic-group.js';

/**
 * A long poll for a batch re-checks Redis only when enough groups finished
 * to possibly fill it, yet still wakes at once on any other event.
 */

let server: RedisServerHandle;
let redis: Redis;
let events: RunEvents;
beforeAll(async () => {
  server = await startRedisServer();
  redis = new Redis(server.url);
  events = new RunEvents(redis.duplicate(), 'tandem:*:events', silentLogger());
  await events.whenReady();
});
afterAll(async () => {
  await events?.close();
  redis?.disconnect();
  await server?.stop();
});

/** A queue whose serve-batch script runs are counted. */
async function countingQueue(batchGroups: number): Promise<{ queue: RolloutQueue; serveCalls: () => number }> {
  let calls = 0;
  const counting = new Proxy(redis, {
    get(target, prop, receiver) {
      if (prop === 'callBuffer') {
        return (...args: unknown[]) => {
          calls++;
          return (target.callBuffer as (...a: unknown[]) => unknown)(...args);
        };
      }
      const v = Reflect.get(target, prop, receiver);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
  const queue = new RolloutQueue(`w-${randomUUID().slice(0, 8)}`, { redis: counting, events, clock: systemClock, log: silentLogger() });
  await queue.init({ maxTrajectoryAgeSteps: 1, batchGroups, capacityGroups: batchGroups * 2, maxSteps: 3 });
  return { queue, serveCalls: () => calls };
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function completeOne(queue: RolloutQueue): Promise<void> {
  const a = await queue.tryAdmit();
  if (a.kind !== 'admitted') throw new Error(`not admitted: ${JSON.stringify(a)}`);
  await queue.complete(encodedSyntheticGroup(a.admission.groupId, { groupSize: 2, tokensPerCompletion: 4, minPolicyVersion: 0, targetStep: a.admission.targetStep }));
}

describe('serveBatch wake-ups', () => {
  it('checks again only once the missing groups can have finished', async () => {
    const { queue, serveCalls: total } = await countingQueue(8);
    await completeOne(queue);
    await queue.tryServeBatch(0); // loads the script into Redis's cache
    await pause(20); // the "finished" event above has been delivered
    const before = total();
    const serveCalls = () => total() - before;
    const served = queue.serveBatch(0, { timeoutMs: 10_000 });
    await pause(50);
    expect(serveCalls()).toBe(1); // 1 of 8 finished: 7 missing
    for (let i = 0; i < 6; i++) {
      await completeOne(queue);
      await pause(10);
    }
    expect(serveCalls()).toBe(1); // 7 of 8: still one missing, no re-check yet
    await completeOne(queue);
    const result = await served;
    expect(result.kind).toBe('ready');
    expect(result.kind === 'ready' && result.batch.groupIds).toHaveLength(8);
    expect(serveCalls()).toBe(2);
  });

  it('still wakes at once on an event other than a finished group', async () => {
    const { queue, serveCalls: total } = await countingQueue(8);
    await queue.tryServeBatch(0);
    const before = total();
    const serveCalls = () => total() - before;
    const served = queue.serveBatch(0, { timeoutMs: 10_000 });
    await pause(50);
    expect(serveCalls()).toBe(1);
    await queue.close('cancelled'); // publishes "closed"
    expect(await served).toEqual({ kind: 'ended', state: 'closed' });
    expect(serveCalls()).toBe(2);
  });
});

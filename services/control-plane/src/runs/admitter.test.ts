import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { silentLogger, systemClock } from '@tandem/common';
import { RolloutStore, encodedSyntheticGroup, jobIdOf } from '@tandem/rollout-queue';
import { startRedisServer, type RedisServerHandle } from '@tandem/testkit';
import { ControlPlaneMetrics } from '../metrics/control-plane-metrics.js';
import { Admitter } from './admitter.js';
import { arithmeticPrompts } from './prompt-source.js';

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

async function setup() {
  const runId = `adm-${randomUUID().slice(0, 8)}`;
  const queue = store.forRun(runId);
  await queue.init({ maxTrajectoryAgeSteps: 1, batchGroups: 2, capacityGroups: 4, maxSteps: 2 });
  const prompts = store.promptQueue(runId);
  const admitter = new Admitter(
    { queue, prompts, source: arithmeticPrompts(10, 1), metrics: new ControlPlaneMetrics({ defaultMetrics: false }), clock: systemClock, log: silentLogger() },
    { admitTimeoutMs: 200, sweepIntervalMs: 60_000 },
  );
  return { queue, prompts, admitter };
}

describe('admitter', () => {
  it('fills the queue up to capacity with one BullMQ job per admitted group, with the prompt', async () => {
    const { queue, prompts, admitter } = await setup();
    void admitter.start();
    for (let i = 0; i < 100 && (await queue.snapshot()).inFlight < 4; i++) await new Promise((r) => setTimeout(r, 10));
    // Admission and the enqueue are pipelined: a group is in flight a moment before its job exists.
    const jobsExist = async (): Promise<boolean> => {
      for (const g of await queue.inFlightGroups()) if (!(await prompts.has(g.groupId))) return false;
      return true;
    };
    for (let i = 0; i < 200 && !(await jobsExist()); i++) await new Promise((r) => setTimeout(r, 10));
    const inflight = await queue.inFlightGroups();
    expect(inflight.map((g) => g.targetStep).sort()).toEqual([0, 0, 1, 1]);
    for (const g of inflight) {
      const job = await prompts.queue.getJob(jobIdOf(g.groupId));
      expect(job?.data).toMatchObject({ groupId: g.groupId, targetStep: g.targetStep, runId: queue.runId });
      expect(job?.data.prompt).toMatch(/^What is \d+ [+*] \d+\?/);
      expect(job?.data.answer).toMatch(/^\d+$/);
    }
    await admitter.stop();
    await prompts.close();
  });

  it('ends as soon as the run ends, not a sweep interval later', async () => {
    // The sweep interval here is a minute: the old loop waited it out (and
    // this test timed out) before noticing that admission had ended.
    const { queue, prompts, admitter } = await setup();
    const done = admitter.start();
    for (let i = 0; i < 100 && (await queue.snapshot()).inFlight < 4; i++) await new Promise((r) => setTimeout(r, 10));
    await queue.close('cancelled');
    await done;
    expect((await queue.snapshot()).state).toBe('cancelled');
    await prompts.close();
  });

  it('sweep re-enqueues an admitted group whose job is missing, and only that one', async () => {
    const { queue, prompts, admitter } = await setup();
    const a = await queue.tryAdmit();
    const b = await queue.tryAdmit();
    if (a.kind !== 'admitted' || b.kind !== 'admitted') throw new Error('expected admissions');
    // b finished (its job is gone because it is done); a was admitted but the
    // process died before enqueueing it.
    await queue.complete(encodedSyntheticGroup(b.admission.groupId, { groupSize: 2, tokensPerCompletion: 2, minPolicyVersion: 0 }));
    expect(await admitter.sweep()).toBe(1);
    expect(await prompts.has(a.admission.groupId)).toBe(true);
    expect(await prompts.has(b.admission.groupId)).toBe(false);
    // Idempotent: a second sweep finds nothing to do.
    expect(await admitter.sweep()).toBe(0);
    await prompts.close();
  });
});

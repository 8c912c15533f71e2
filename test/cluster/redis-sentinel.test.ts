import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ControlPlane } from '@tandem/control-plane';
import { isRedisCluster } from '@tandem/rollout-queue';
import { startRedisSentinel, type RedisSentinelHandle } from './support/redis-sentinel.js';
import { BATCH_GROUPS, STEPS, ended, smallRunSpec, startPlane, waitForRun } from './support/simulated-runs.js';

/**
 * Tandem on a Sentinel-managed Redis (a master, one replica, three
 * sentinels): two simulated runs, and mid-run a planned switchover (writes
 * paused on the master, SENTINEL FAILOVER; see RedisSentinelHandle.failover)
 * promotes the replica and demotes the master. Both runs must still
 * succeed with their ledgers whole.
 */

let sentinel: RedisSentinelHandle;
let plane: ControlPlane | undefined;
const keyPrefix = `tandem-sn-${randomBytes(3).toString('hex')}`;

beforeAll(async () => {
  sentinel = await startRedisSentinel({ sentinels: 3 });
}, 60_000);

afterAll(async () => {
  await plane?.stop().catch(() => undefined);
  await sentinel?.stop();
}, 60_000);

describe('Redis Sentinel (1 master, 1 replica, 3 sentinels)', () => {
  it('runs two runs through a Sentinel failover, losing nothing', async () => {
    const started = await startPlane(sentinel.url, keyPrefix);
    plane = started;
    expect(isRedisCluster(started.store.redis)).toBe(false);
    const runIds = ['sentinel-run-a', 'sentinel-run-b'];
    // Slower steps than the Cluster test's: the Sentinel switchover takes longer.
    for (const id of runIds) await started.runs.submit({ runId: id, spec: smallRunSpec(id, { trainerStepOverheadMs: 16_000 }) });

    const target = runIds[0] as string;
    await waitForRun(started, target, 'train its first step', (v) => v.status.trainerStep >= 1 || ended(v), 120_000);
    const before = await started.runs.get(target);
    expect(before.status.phase).toBe('Running');
    expect(before.status.trainerStep).toBeLessThan(STEPS);
    const failover = await sentinel.failover();
    expect(await sentinel.currentMaster()).toBe(failover.to);

    const finished = await Promise.all(runIds.map((id) => waitForRun(started, id, 'finish', ended, 240_000)));
    const outcome = finished.map((v) => ({ runId: v.id, phase: v.status.phase, trainerStep: v.status.trainerStep, ...v.status.ledger }));
    console.log(JSON.stringify({ failover: { ...failover, elapsedMs: Math.round(failover.elapsedMs), duringStep: before.status.trainerStep }, outcome }, null, 2));

    for (const v of finished) {
      const l = v.status.ledger;
      expect(v.status.phase, `${v.id}: ${v.status.message}`).toBe('Succeeded');
      expect(v.status.trainerStep).toBe(STEPS);
      expect(l.admitted).toBe(l.trained + l.droppedStale + l.failed + l.cancelled);
      expect(l.trained).toBe(STEPS * BATCH_GROUPS);
    }
  }, 360_000);
});

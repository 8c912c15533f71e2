import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ControlPlane } from '@tandem/control-plane';
import { createRedisClient, isRedisCluster, runKeys, scanKeys, type RedisClient } from '@tandem/rollout-queue';
import { startRedisCluster, type RedisClusterHandle } from './support/redis-cluster.js';
import { BATCH_GROUPS, STEPS, ended, smallRunSpec, startPlane, waitForRun } from './support/simulated-runs.js';

/**
 * Tandem on a Redis Cluster of 3 masters with 1 replica each: three
 * simulated runs whose keys live on three different masters run at once
 * (control plane in process, generators, rollout workers and trainers as
 * child processes given the cluster URL unchanged); mid-run one master is
 * failed over to its replica (a coordinated CLUSTER FAILOVER). Every run
 * must still succeed with its ledger whole.
 */

let cluster: RedisClusterHandle;
let plane: ControlPlane | undefined;
let client: RedisClient | undefined;
const keyPrefix = `tandem-cl-${randomBytes(3).toString('hex')}`;

beforeAll(async () => {
  cluster = await startRedisCluster({ masters: 3, replicasPerMaster: 1 });
}, 60_000);

afterAll(async () => {
  client?.disconnect();
  await plane?.stop().catch(() => undefined);
  await cluster?.stop();
}, 60_000);

/** Run ids, one per master: the first candidates whose slot each master owns. */
async function runIdsOnDistinctMasters(): Promise<Array<{ runId: string; slot: number; master: number }>> {
  const masters = [...new Set((await cluster.slots()).map((r) => r.master))];
  const chosen = new Map<number, { runId: string; slot: number; master: number }>();
  for (let i = 0; chosen.size < masters.length && i < 200; i++) {
    const runId = `cluster-run-${i}`;
    const slot = await cluster.keySlot(runKeys(runId, keyPrefix).meta);
    const master = await cluster.masterOf(slot);
    if (!chosen.has(master)) chosen.set(master, { runId, slot, master });
  }
  return [...chosen.values()];
}

describe('Redis Cluster (3 masters, 3 replicas)', () => {
  it('runs three runs on three masters through a master failover, losing nothing', async () => {
    const runs = await runIdsOnDistinctMasters();
    expect(new Set(runs.map((r) => r.master)).size).toBe(3);

    plane = await startPlane(cluster.url, keyPrefix);
    expect(isRedisCluster(plane.store.redis)).toBe(true);
    for (const r of runs) await plane.runs.submit({ runId: r.runId, spec: smallRunSpec(r.runId) });

    // Mid-run: the first run has trained a step and is far from done.
    const target = runs[0] as (typeof runs)[number];
    await waitForRun(plane, target.runId, 'train its first step', (v) => v.status.trainerStep >= 1 || ended(v), 120_000);
    const started = plane;
    const before = await started.runs.get(target.runId);
    expect(before.status.phase).toBe('Running');
    expect(before.status.trainerStep).toBeLessThan(STEPS);
    const failover = await cluster.failover(target.master);
    const newOwner = await cluster.masterOf(target.slot);
    expect(newOwner).toBe(failover.promoted);

    const finished = await Promise.all(runs.map((r) => waitForRun(started, r.runId, 'finish', ended, 240_000)));
    // The run index (a key of its own slot) lists every run.
    expect((await started.runs.list()).map((v) => v.id)).toEqual(expect.arrayContaining(runs.map((r) => r.runId)));

    // Every key of a run, BullMQ's included, is in the run's one slot, on its master.
    client = createRedisClient(cluster.url, { lazyConnect: true });
    await client.connect();
    const placement: Array<Record<string, unknown>> = [];
    for (const r of runs) {
      const keys: string[] = [];
      for await (const batch of scanKeys(client, runKeys(r.runId, keyPrefix).pattern)) keys.push(...batch);
      expect(keys.some((k) => k.includes(':prompts:'))).toBe(true);
      const slots = new Set(await Promise.all(keys.map((k) => cluster.keySlot(k))));
      expect([...slots]).toEqual([r.slot]);
      placement.push({ runId: r.runId, slot: r.slot, masterAtStart: r.master, masterAtEnd: await cluster.masterOf(r.slot), keys: keys.length });
    }

    const outcome = finished.map((v) => ({ runId: v.id, phase: v.status.phase, trainerStep: v.status.trainerStep, ...v.status.ledger }));
    console.log(JSON.stringify({ failover: { from: target.master, to: failover.promoted, elapsedMs: Math.round(failover.elapsedMs), duringStep: before.status.trainerStep }, placement, outcome }, null, 2));

    for (const v of finished) {
      const l = v.status.ledger;
      expect(v.status.phase, `${v.id}: ${v.status.message}`).toBe('Succeeded');
      expect(v.status.trainerStep).toBe(STEPS);
      expect(l.admitted).toBe(l.trained + l.droppedStale + l.failed + l.cancelled);
      // Every step trained exactly one batch: no group trained twice, none missing.
      expect(l.trained).toBe(STEPS * BATCH_GROUPS);
    }
  }, 360_000);
});

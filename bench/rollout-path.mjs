// rollout-path: prompt groups (G = 8 completions x 1,024 tokens, int32 ids +
// float32 logprobs, ~64 KiB) from a producer through Redis to a trainer,
// three ways in the same run and against the same Redis:
//
//   tandem   admit + complete (Lua) -> Redis -> the real control plane's
//            broker -> TrainerService PullBatch / AckBatch over gRPC
//   bullmq   naive: Queue.add of the group as JSON with number arrays, a
//            Worker consuming it
//   raw      LPUSH / BRPOP of the binary payload: the practical ceiling of
//            moving these bytes through one Redis
//
// Each system moves the same groups with the same window (groups enqueued
// and not yet delivered <= batchGroups x (k + 1), Tandem's queue capacity)
// and the same batch size at the trainer; "delivery" is the moment the
// trainer holds the complete batch that contains a group. Rounds alternate
// the order of the systems; figures are medians over rounds.
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { PromptGroup } from '@tandem/protocol';
import { RolloutStore, encodePromptGroup } from '@tandem/rollout-queue';
import { startRedisServer } from '@tandem/testkit';
import { loadAverage, log, median, ownChild, round } from './lib/common.mjs';
import { startControlPlane } from './lib/control-plane-process.mjs';
import { groupSizes, runPhase } from './lib/rollout-phase.mjs';
import { groupContents, jsonGroup, promptGroup } from './lib/workload.mjs';

const SYSTEMS = ['tandem', 'bullmq', 'raw'];

/** Fixed workload; --quick moves fewer groups, once. */
export function workload(quick) {
  return {
    groupSize: 8,
    tokensPerCompletion: 1024,
    seed: 1,
    batchGroups: 64,
    maxTrajectoryAgeSteps: 2,
    producerConcurrency: 16,
    bullmqConcurrency: 16,
    groups: quick ? 1024 : 8192,
    rounds: quick ? 1 : 3,
    queuedForMemory: 64,
  };
}

export async function run({ quick }) {
  const cfg = workload(quick);
  const redis = await startRedisServer();
  ownChild(redis.process);
  const store = await RolloutStore.create({ redisUrl: redis.url });
  const controlPlane = await startControlPlane({ redisUrl: redis.url });
  const ctx = { redisUrl: redis.url, redisPid: redis.process.pid, store, controlPlane };
  const loads = [loadAverage()];
  try {
    const phases = { tandem: [], bullmq: [], raw: [] };
    for (let r = 0; r < cfg.rounds; r++) {
      const order = SYSTEMS.map((_, i) => SYSTEMS[(i + r) % SYSTEMS.length]);
      for (const system of order) {
        log(`rollout-path round ${r + 1}/${cfg.rounds}: ${system}, ${cfg.groups} groups`);
        const result = await runPhase(system, ctx, cfg);
        log(`  ${system}: ${result.groupsPerSecond} groups/s, p50 ${result.latencyP50Ms} ms, p99 ${result.latencyP99Ms} ms`);
        phases[system].push(result);
        loads.push(loadAverage());
      }
    }
    const sizes = groupSizes(cfg);
    const memory = {};
    for (const system of SYSTEMS) memory[system] = await redisBytesPerGroup(system, ctx, cfg);
    const systems = {};
    for (const system of SYSTEMS) {
      const rs = phases[system];
      const gps = median(rs.map((x) => x.groupsPerSecond));
      systems[system] = {
        groupsPerSecond: gps,
        mbPerSecond: round((gps * sizes.binaryBytes) / 1e6, 1),
        latencyP50Ms: median(rs.map((x) => x.latencyP50Ms)),
        latencyP99Ms: median(rs.map((x) => x.latencyP99Ms)),
        redisBytesPerQueuedGroup: memory[system],
        cpuMsPerGroup: median(rs.map((x) => x.cpuMsPerGroup)),
        cpuCores: {
          controlPlane: median(rs.map((x) => x.cpuCores.controlPlane)),
          redis: median(rs.map((x) => x.cpuCores.redis)),
          producer: median(rs.map((x) => x.cpuCores.producer)),
          consumer: median(rs.map((x) => x.cpuCores.consumer)),
        },
        rounds: rs.map((x) => ({ groupsPerSecond: x.groupsPerSecond, latencyP50Ms: x.latencyP50Ms, latencyP99Ms: x.latencyP99Ms })),
      };
    }
    return {
      benchmark: 'rollout-path',
      quick,
      workload: {
        ...cfg,
        groupBinaryBytes: sizes.binaryBytes,
        groupJsonBytes: sizes.jsonBytes,
        window: cfg.batchGroups * (cfg.maxTrajectoryAgeSteps + 1),
        mbDefinition: 'MB/s = groups/s x encoded PromptGroup bytes (10^6 bytes); the same content for every system',
        latencyDefinition: 'enqueue (producer holds the finished group) -> the trainer holds the complete batch containing it',
      },
      systems,
      tandemVsBullmq: round(systems.tandem.groupsPerSecond / systems.bullmq.groupsPerSecond, 2),
      tandemVsRawRedis: round(systems.tandem.groupsPerSecond / systems.raw.groupsPerSecond, 2),
      targets: {
        tandemVsBullmq: '>= 2',
        tandemVsRawRedis: '>= 0.5',
        tandemGroupsPerSecond: '>= 1000',
      },
      loadAverage1m: { min: Math.min(...loads), max: Math.max(...loads) },
    };
  } finally {
    await controlPlane.stop();
    await store.close();
    await redis.stop();
  }
}

/**
 * Redis bytes per queued group: the sum of MEMORY USAGE (SAMPLES 0, exact)
 * over every key, with `queuedForMemory` groups queued and nobody consuming,
 * minus the same sum before, per group.
 */
async function redisBytesPerGroup(system, ctx, cfg) {
  const redis = new Redis(ctx.redisUrl);
  try {
    await redis.flushall();
    const before = await totalMemoryUsage(redis);
    const n = cfg.queuedForMemory;
    const [content] = groupContents(cfg);
    if (system === 'tandem') {
      const queue = ctx.store.forRun('bench-memory');
      await queue.init({ maxTrajectoryAgeSteps: cfg.maxTrajectoryAgeSteps, batchGroups: cfg.batchGroups, capacityGroups: n * 2, maxSteps: 1000 });
      for (let i = 0; i < n; i++) {
        const a = await queue.tryAdmit();
        if (a.kind !== 'admitted') throw new Error(`memory: admission ${a.kind}`);
        const group = promptGroup(content, { groupId: a.admission.groupId, policyVersion: 0, targetStep: a.admission.targetStep });
        await queue.complete(encodePromptGroup(group, { groupSize: cfg.groupSize, maxTokens: cfg.tokensPerCompletion }));
      }
    } else if (system === 'bullmq') {
      const queue = new Queue('bench-memory', { connection: { url: ctx.redisUrl }, defaultJobOptions: { removeOnComplete: true, removeOnFail: true } });
      for (let i = 0; i < n; i++) await queue.add('group', jsonGroup(content, { groupId: `g${i}` }));
      await queue.close();
    } else {
      for (let i = 0; i < n; i++) {
        const bytes = PromptGroup.encode(promptGroup(content, { groupId: `g${i}` })).finish();
        await redis.lpush('bench-memory', Buffer.from(bytes));
      }
    }
    const after = await totalMemoryUsage(redis);
    await redis.flushall();
    return Math.round((after - before) / n);
  } finally {
    redis.disconnect();
  }
}

async function totalMemoryUsage(redis) {
  let total = 0;
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'COUNT', 1000);
    cursor = next;
    for (const key of keys) total += Number((await redis.memory('USAGE', key, 'SAMPLES', 0)) ?? 0);
  } while (cursor !== '0');
  return total;
}

// control-plane-cost: CPU time and peak memory of the control plane process
// per 1,000 groups/s served, on two paths through the real control plane
// (services/control-plane/dist/main.js in its own process):
//
//   full     an external run submitted through the API: the control plane's
//            admitter admits each group (Lua) and enqueues its prompt job
//            (BullMQ); a stand-in rollout worker (child process) takes the
//            job, encodes a G = 8 x 1,024-token group and completes it; the
//            broker serves batches to a trainer (child process) over gRPC
//            PullBatch / AckBatch. Everything the control plane does per
//            group in production.
//   serving  the rollout-path workload: producers admit and complete groups
//            themselves, the control plane only serves batches (broker and
//            TrainerService).
//
// CPU seconds (user + system) come from /proc/<pid>/stat, peak RSS from
// /proc/<pid>/status (VmHWM). Offered load is open loop at fixed rates, then
// closed loop (as fast as it goes).
import { RolloutStore } from '@tandem/rollout-queue';
import { startRedisServer } from '@tandem/testkit';
import { loadAverage, log, ownChild, round } from './lib/common.mjs';
import { startControlPlane } from './lib/control-plane-process.mjs';
import { runPhase } from './lib/rollout-phase.mjs';

const PATHS = { full: 'tandem-full', serving: 'tandem' };

export function workload(quick) {
  return {
    groupSize: 8,
    tokensPerCompletion: 1024,
    seed: 1,
    batchGroups: 64,
    maxTrajectoryAgeSteps: 2,
    producerConcurrency: 32,
    rates: quick ? [] : [250, 500],
    secondsPerRate: 15,
    maxGroups: quick ? 1024 : 8192,
  };
}

export async function run({ quick }) {
  const cfg = workload(quick);
  const redis = await startRedisServer();
  ownChild(redis.process);
  const store = await RolloutStore.create({ redisUrl: redis.url });
  const controlPlane = await startControlPlane({ redisUrl: redis.url });
  const ctx = { redisUrl: redis.url, redisPid: redis.process.pid, store, controlPlane };
  const idle = controlPlane.memory();
  const loads = [loadAverage()];
  const paths = {};
  try {
    for (const [path, system] of Object.entries(PATHS)) {
      paths[path] = [];
      for (const rate of [...cfg.rates, undefined]) {
        const groups = rate ? Math.ceil((rate * cfg.secondsPerRate) / cfg.batchGroups) * cfg.batchGroups : cfg.maxGroups;
        log(`control-plane-cost ${path}: ${rate ? `${rate} groups/s offered` : 'closed loop'}, ${groups} groups`);
        const r = await runPhase(system, ctx, { ...cfg, groups, ...(rate ? { rate } : {}) });
        const mem = controlPlane.memory();
        const cores = r.controlPlaneCpuSeconds / r.wallSeconds;
        const point = {
          offeredGroupsPerSecond: rate ?? 'max',
          groupsPerSecond: r.groupsPerSecond,
          controlPlaneCores: round(cores, 3),
          controlPlaneCpuMsPerGroup: round((r.controlPlaneCpuSeconds / groups) * 1000, 3),
          coresPer1000GroupsPerSecond: round(cores / (r.groupsPerSecond / 1000), 3),
          controlPlanePeakRssMiB: round(mem.peakRssMiB, 1),
          controlPlaneRssMiB: round(mem.rssMiB, 1),
          controlPlanePageFaultsPerGroup: r.pageFaultsPerGroup.controlPlane,
          redisCores: r.cpuCores.redis,
          latencyP50Ms: r.latencyP50Ms,
          latencyP99Ms: r.latencyP99Ms,
        };
        log(`  ${point.groupsPerSecond} groups/s: control plane ${point.controlPlaneCores} cores = ${point.coresPer1000GroupsPerSecond} cores per 1,000 groups/s, peak RSS ${point.controlPlanePeakRssMiB} MiB`);
        paths[path].push(point);
        loads.push(loadAverage());
      }
    }
  } finally {
    await controlPlane.stop();
    await store.close();
    await redis.stop();
  }
  const atMax = (path) => paths[path].at(-1);
  return {
    benchmark: 'control-plane-cost',
    quick,
    workload: cfg,
    paths,
    coresPer1000GroupsPerSecond: atMax('full').coresPer1000GroupsPerSecond,
    servingCoresPer1000GroupsPerSecond: atMax('serving').coresPer1000GroupsPerSecond,
    controlPlanePeakRssMiB: Math.max(...Object.values(paths).flat().map((p) => p.controlPlanePeakRssMiB)),
    controlPlaneIdleRssMiB: round(idle.rssMiB, 1),
    targets: { coresPer1000GroupsPerSecond: '<= 1' },
    loadAverage1m: { min: Math.min(...loads), max: Math.max(...loads) },
  };
}

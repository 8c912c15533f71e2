// One measured phase of the rollout path: a producer child and a consumer
// child move `groups` prompt groups through one system (tandem | bullmq |
// raw) while the parent relays credits and reads the CPU time of the
// control plane and Redis from /proc. Used by rollout-path and
// control-plane-cost.
import { randomBytes } from 'node:crypto';
import { PromptGroup } from '@tandem/protocol';
import { cpuSeconds, forkChild, minorFaults, nextMessage, nowMs, percentile, round, stopChild } from './common.mjs';
import { groupContents, jsonGroup, promptGroup } from './workload.mjs';

/** Bytes of one encoded group and of its JSON form (the workload's size). */
export function groupSizes(cfg) {
  const [content] = groupContents(cfg);
  const binary = PromptGroup.encode(promptGroup(content, { groupId: '1000000' })).finish().byteLength;
  const json = Buffer.byteLength(JSON.stringify(jsonGroup(content, { groupId: 'g1000000' })));
  return { binaryBytes: binary, jsonBytes: json };
}

/**
 * Runs one phase. `ctx` holds the shared pieces: `redisUrl`, `redisPid`,
 * `store` (a RolloutStore, to create Tandem runs), `controlPlane` (from
 * startControlPlane). `cfg`: groups, groupSize, tokensPerCompletion, seed,
 * batchGroups, maxTrajectoryAgeSteps, producerConcurrency,
 * bullmqConcurrency, rate (optional, groups/s open loop).
 */
export async function runPhase(system, ctx, cfg) {
  const capacity = cfg.batchGroups * (cfg.maxTrajectoryAgeSteps + 1);
  if (cfg.groups % cfg.batchGroups !== 0) throw new Error('groups must be a multiple of batchGroups');
  const runId = `bench-${randomBytes(4).toString('hex')}`;
  const queueName = `bench-${system}-${randomBytes(4).toString('hex')}`;
  if (system === 'tandem-full') {
    // A real run through the control plane's API: its admitter admits groups
    // and enqueues their prompt jobs on BullMQ, as for any external run.
    const res = await fetch(`${ctx.controlPlane.httpUrl}/v1/runs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ runId, spec: benchRunSpec(cfg) }),
    });
    if (res.status !== 201 && res.status !== 200) throw new Error(`submit answered ${res.status}: ${await res.text()}`);
  } else if (system === 'tandem') {
    await ctx.store.forRun(runId).init({
      maxTrajectoryAgeSteps: cfg.maxTrajectoryAgeSteps,
      batchGroups: cfg.batchGroups,
      capacityGroups: capacity,
      maxSteps: cfg.groups / cfg.batchGroups,
    });
  }
  const shared = {
    ...cfg,
    system,
    runId,
    queueName,
    redisUrl: ctx.redisUrl,
    grpcAddress: ctx.controlPlane?.grpcAddress,
    window: capacity,
  };
  const producer = forkChild('./rollout-producer.mjs');
  const consumer = forkChild('./rollout-consumer.mjs');
  try {
    consumer.on('message', (m) => {
      // The producer exits once it has enqueued everything; later credits have nowhere to go.
      if (m.type === 'delivered' && producer.connected) producer.send({ type: 'credit', count: m.count }, () => {});
    });
    const readies = [nextMessage(producer, (m) => m.type === 'ready'), nextMessage(consumer, (m) => m.type === 'ready')];
    producer.send({ type: 'start', config: shared });
    consumer.send({ type: 'start', config: shared });
    await Promise.all(readies);
    const timeoutMs = Math.max(120_000, cfg.groups * 50);
    const done = [nextMessage(producer, (m) => m.type === 'done', timeoutMs), nextMessage(consumer, (m) => m.type === 'done', timeoutMs)];
    const cpu0 = {
      controlPlane: system.startsWith('tandem') && ctx.controlPlane ? ctx.controlPlane.cpuSeconds() : 0,
      redis: cpuSeconds(ctx.redisPid),
      redisFaults: minorFaults(ctx.redisPid),
      controlPlaneFaults: system.startsWith('tandem') && ctx.controlPlane ? minorFaults(ctx.controlPlane.pid) : 0,
    };
    const t0 = nowMs();
    producer.send({ type: 'go' });
    consumer.send({ type: 'go' });
    const [p, c] = await Promise.all(done);
    const t1 = nowMs();
    const cpu1 = {
      controlPlane: system.startsWith('tandem') && ctx.controlPlane ? ctx.controlPlane.cpuSeconds() : 0,
      redis: cpuSeconds(ctx.redisPid),
      redisFaults: minorFaults(ctx.redisPid),
      controlPlaneFaults: system.startsWith('tandem') && ctx.controlPlane ? minorFaults(ctx.controlPlane.pid) : 0,
    };
    const enq = new Map(p.enqueued.map(([id, t]) => [id, t]));
    const latencies = [];
    let firstEnqueue = Infinity;
    let lastDelivery = 0;
    for (const [id, t] of c.delivered) {
      const e = enq.get(id);
      if (e === undefined) throw new Error(`${system}: group ${id} delivered but never enqueued`);
      latencies.push(t - e);
      if (t > lastDelivery) lastDelivery = t;
    }
    for (const t of enq.values()) if (t < firstEnqueue) firstEnqueue = t;
    if (c.delivered.length !== cfg.groups) throw new Error(`${system}: ${c.delivered.length} of ${cfg.groups} groups delivered`);
    const seconds = (lastDelivery - firstEnqueue) / 1000;
    const wall = (t1 - t0) / 1000;
    const cores = (a, b) => round((b - a) / wall, 3);
    return {
      system,
      groups: cfg.groups,
      seconds: round(seconds, 3),
      groupsPerSecond: round(cfg.groups / seconds, 1),
      latencyP50Ms: round(percentile(latencies, 50), 2),
      latencyP99Ms: round(percentile(latencies, 99), 2),
      cpuCores: {
        controlPlane: cores(cpu0.controlPlane, cpu1.controlPlane),
        redis: cores(cpu0.redis, cpu1.redis),
        producer: round((p.cpu.user + p.cpu.system) / 1e6 / wall, 3),
        consumer: round((c.cpu.user + c.cpu.system) / 1e6 / wall, 3),
      },
      controlPlaneCpuSeconds: round(cpu1.controlPlane - cpu0.controlPlane, 3),
      // CPU time of every process on the path (control plane, Redis, producer, trainer) per group.
      cpuMsPerGroup: round(
        ((cpu1.controlPlane - cpu0.controlPlane + cpu1.redis - cpu0.redis + (p.cpu.user + p.cpu.system) / 1e6 + (c.cpu.user + c.cpu.system) / 1e6) * 1000) /
          cfg.groups,
        3,
      ),
      wallSeconds: round(wall, 3),
      // Page faults are expensive on a VM: most of Redis's time with large values goes to them.
      pageFaultsPerGroup: {
        controlPlane: round((cpu1.controlPlaneFaults - cpu0.controlPlaneFaults) / cfg.groups, 2),
        redis: round((cpu1.redisFaults - cpu0.redisFaults) / cfg.groups, 2),
        producer: round(p.faults / cfg.groups, 2),
        consumer: round(c.faults / cfg.groups, 2),
      },
    };
  } finally {
    await Promise.all([stopChild(producer), stopChild(consumer)]);
    // A tandem-full run stays (the control plane owns its record); its payloads were deleted as acked.
    if (system === 'tandem') await ctx.store.forRun(runId).destroy();
    else if (system !== 'tandem-full') await flushQueueKeys(ctx, queueName);
  }
}

/** The run spec of a tandem-full phase: external generators and trainer (the bench plays both). */
function benchRunSpec(cfg) {
  return {
    name: 'bench rollout path',
    model: { name: 'bench' },
    dataset: { source: 'builtin', name: 'arithmetic', size: 10_000, seed: cfg.seed },
    reward: { kind: 'numeric' },
    algorithm: { groupSize: cfg.groupSize, batchGroups: cfg.batchGroups, maxTokens: cfg.tokensPerCompletion },
    async: { maxTrajectoryAgeSteps: cfg.maxTrajectoryAgeSteps },
    maxSteps: cfg.groups / cfg.batchGroups,
    generator: { replicas: 0 },
  };
}

async function flushQueueKeys(ctx, queueName) {
  const redis = ctx.store.redis;
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `*${queueName}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) await redis.del(...keys);
  } while (cursor !== '0');
}

// weight-sync: the coordinator's own overhead per weight sync, from the
// trainer saying "weights ready" (WeightsReady on its real gRPC Attach
// stream) to the moment every generator has been resumed, minus the
// simulated transfer time, for 1 .. 1,024 simulated generators.
//
// The control plane runs in this process (the real ControlPlane: Redis
// registry, queue, TrainerService, WeightSyncManager) against a real Redis.
// Generators are reached two ways:
//   http   cheap HTTP servers with the vLLM admin routes, in a child process
//          (the real vllmAdmin client, fetch over loopback sockets)
//   fake   an injected in-process VllmAdmin (ControlPlaneDeps.vllmAdmin):
//          no sockets, so the figure is the coordinator's own work
// The transfer is a collective: updates answer `transferMs` after the last
// generator joined it, so subtracting `transferMs` once leaves overhead.
// The first sync of each size forms the transfer group (world size, init)
// and is reported separately; the rest are steady-state syncs.
import { credentials } from '@grpc/grpc-js';
import { createLogger } from '@tandem/common';
import { ControlPlane, loadConfig } from '@tandem/control-plane';
import { TrainerMessage, TrainerServiceClient } from '@tandem/protocol';
import { startRedisServer } from '@tandem/testkit';
import { forkChild, loadAverage, log, logLogSlope, nextMessage, nowMs, ownChild, percentile, round, sleep, stopChild } from './lib/common.mjs';

const SIZES = [1, 8, 64, 256, 1024];

export function workload(quick) {
  return {
    sizes: SIZES,
    // Over HTTP every generator is a server in one child process on this
    // machine; quick mode stops at 64 to stay under a minute.
    httpSizes: quick ? SIZES.filter((n) => n <= 64) : SIZES,
    transports: ['fake', 'http'],
    transferMs: 50,
    syncsPerSize: quick ? 5 : 40,
  };
}

export async function run({ quick }) {
  const cfg = workload(quick);
  const redis = await startRedisServer();
  ownChild(redis.process);
  const loads = [loadAverage()];
  const series = {};
  try {
    for (const transport of cfg.transports) {
      series[transport] = [];
      for (const generators of transport === 'http' ? cfg.httpSizes : cfg.sizes) {
        log(`weight-sync: ${transport}, ${generators} generators, ${cfg.syncsPerSize} syncs`);
        const r = await measureSize({ redisUrl: redis.url, transport, generators, ...cfg });
        log(`  overhead p50 ${r.overheadP50Ms} ms, p99 ${r.overheadP99Ms} ms (to published: p99 ${r.toPublishedOverheadP99Ms} ms)`);
        series[transport].push(r);
        loads.push(loadAverage());
      }
    }
  } finally {
    await redis.stop();
  }
  const fit = (rows, key) => round(logLogSlope(rows.map((r) => r.generators), rows.map((r) => Math.max(r[key], 0.01))), 2);
  // The exponent is fitted from 8 generators up: at 1 the overhead is a
  // fixed cost of a few round trips, which would flatten the slope.
  const tail = (rows) => rows.filter((r) => r.generators >= 8);
  const out = {
    benchmark: 'weight-sync',
    quick,
    workload: {
      ...cfg,
      definition:
        'overhead = (last generator answered /resume) - (trainer sent WeightsReady) - transferMs; ' +
        'toPublished = same, until the version is published and every generator is marked ready in Redis',
    },
    sizes: series.fake.map(({ generators, overheadP50Ms, overheadP99Ms }) => ({ generators, overheadP50Ms, overheadP99Ms })),
    sizesTransport: 'fake (injected in-process VllmAdmin; no sockets)',
    growthExponent: fit(tail(series.fake), 'overheadP50Ms'),
    growthExponentP99: fit(tail(series.fake), 'overheadP99Ms'),
    http: {
      sizes: series.http.map(({ generators, overheadP50Ms, overheadP99Ms }) => ({ generators, overheadP50Ms, overheadP99Ms })),
      growthExponent: fit(tail(series.http), 'overheadP50Ms'),
    },
    detail: series,
    targets: { overheadP99MsAt1024: '<= 50', growthExponent: '<= 1' },
    loadAverage1m: { min: Math.min(...loads), max: Math.max(...loads) },
  };
  return out;
}

async function measureSize({ redisUrl, transport, generators, transferMs, syncsPerSize }) {
  let resumedAt = [];
  const onResumed = (t) => resumedAt.push(t);
  let servers;
  let urls;
  let vllmAdmin;
  if (transport === 'http') {
    servers = forkChild('./admin-servers.mjs', { args: [String(generators), String(transferMs)] });
    urls = (await nextMessage(servers, (m) => m.type === 'listening', 120_000)).urls;
    servers.on('message', (m) => m.type === 'resumed' && onResumed(m.t));
  } else {
    urls = Array.from({ length: generators }, (_, i) => `http://gen-${i}.invalid:8000`);
    vllmAdmin = fakeAdmins(generators, transferMs, onResumed);
  }
  const plane = await ControlPlane.create(
    loadConfig({
      TANDEM_REDIS_URL: redisUrl,
      TANDEM_HTTP_PORT: '0',
      TANDEM_GRPC_PORT: '0',
      TANDEM_RUNTIME: 'none',
      TANDEM_KEY_PREFIX: 'bench',
      // Health checks are not part of a sync; keep them out of the way.
      TANDEM_GENERATOR_HEALTH_INTERVAL_MS: '3600000',
    }),
    { log: createLogger({ name: 'bench-control-plane', level: 'warn' }), ...(vllmAdmin ? { vllmAdmin } : {}) },
  );
  const addresses = await plane.start();
  let trainer;
  try {
    const run = await plane.runs.submit({
      spec: {
        name: `weight-sync ${transport} ${generators}`,
        model: { name: 'bench' },
        dataset: { source: 'builtin', name: 'arithmetic', size: 100 },
        reward: { kind: 'numeric' },
        algorithm: { groupSize: 1, batchGroups: 1 },
        async: { maxTrajectoryAgeSteps: 1, weightSync: { timeoutMs: 60_000 } },
        maxSteps: 1_000_000,
        generator: { replicas: generators },
      },
    });
    const runId = run.id;
    for (let i = 0; i < generators; i++) await plane.syncs.registerGenerator(runId, `gen-${String(i).padStart(4, '0')}`, urls[i]);
    trainer = await attachTrainer(addresses.grpcAddress, runId, transferMs);
    const reports = () => plane.syncs.coordinator(runId)?.reports.length ?? 0;
    const waitForReport = async (n) => {
      const deadline = Date.now() + 120_000;
      while (reports() < n) {
        if (Date.now() > deadline) throw new Error(`no sync report ${n} within 120 s`);
        await sleep(1);
      }
      return nowMs();
    };
    // The attach itself (hello at version 0) makes the first sync: it forms the group.
    const t0 = trainer.attachedAt;
    await waitForReport(1);
    const reform = plane.syncs.coordinator(runId).reports[0];
    if (reform.result !== 'ok') throw new Error(`first sync ${reform.result}: ${JSON.stringify(reform.cutOff.slice(0, 3))}`);
    const reformMs = round((resumedAt.at(-1) ?? nowMs()) - t0 - transferMs, 2);
    const overheads = [];
    const toPublished = [];
    const phases = [];
    for (let v = 1; v <= syncsPerSize; v++) {
      resumedAt = [];
      const start = nowMs();
      trainer.weightsReady(v);
      const published = await waitForReport(v + 1);
      const report = plane.syncs.coordinator(runId).reports.at(-1);
      if (report.result !== 'ok' || report.policyVersion !== v) throw new Error(`sync ${v}: ${report.result} at ${report.policyVersion}`);
      while (resumedAt.length === 0) await sleep(1);
      overheads.push(resumedAt[0] - start - transferMs);
      toPublished.push(published - start - transferMs);
      phases.push(report.phasesMs);
    }
    const phaseP50 = {};
    for (const name of Object.keys(phases[0] ?? {})) phaseP50[name] = round(percentile(phases.map((p) => p[name] ?? 0), 50), 2);
    return {
      transport,
      generators,
      syncs: overheads.length,
      overheadP50Ms: round(percentile(overheads, 50), 2),
      overheadP99Ms: round(percentile(overheads, 99), 2),
      overheadMaxMs: round(Math.max(...overheads), 2),
      toPublishedOverheadP50Ms: round(percentile(toPublished, 50), 2),
      toPublishedOverheadP99Ms: round(percentile(toPublished, 99), 2),
      groupFormingSyncOverheadMs: reformMs,
      coordinatorPhasesP50Ms: phaseP50,
    };
  } finally {
    trainer?.close();
    await plane.stop();
    if (servers) await stopChild(servers);
  }
}

/** In-process VllmAdmin fakes sharing one collective transfer. */
function fakeAdmins(count, transferMs, onAllResumed) {
  let waiting = [];
  let resumed = 0;
  const done = async () => undefined;
  const admin = {
    health: done,
    worldSize: async () => 1,
    initWeightTransferEngine: async () => 'init',
    pause: done,
    startWeightUpdate: done,
    finishWeightUpdate: done,
    updateWeights: () =>
      new Promise((resolve) => {
        waiting.push(resolve);
        if (waiting.length === count) {
          const all = waiting;
          waiting = [];
          setTimeout(() => all.forEach((r) => r()), transferMs);
        }
      }),
    resume: async () => {
      if (++resumed === count) {
        resumed = 0;
        onAllResumed(nowMs());
      }
    },
  };
  return () => admin;
}

/** A trainer on the real Attach stream that answers SendWeights after the transfer time. */
async function attachTrainer(grpcAddress, runId, transferMs) {
  const client = new TrainerServiceClient(grpcAddress, credentials.createInsecure());
  const call = client.attach();
  const write = (kind) => call.write(TrainerMessage.fromPartial({ kind }));
  const welcomed = new Promise((resolve, reject) => {
    call.on('data', (msg) => {
      const kind = msg.kind;
      if (kind?.$case === 'welcome') resolve();
      if (kind?.$case === 'sendWeights') {
        const { policyVersion, syncId } = kind.sendWeights;
        setTimeout(() => write({ $case: 'weightsSent', weightsSent: { policyVersion, ok: true, error: '', seconds: transferMs / 1000, syncId } }), transferMs);
      }
    });
    call.on('error', (err) => {
      if (err.code !== 1) reject(err); // 1 = CANCELLED: our own close
    });
  });
  const attachedAt = nowMs();
  write({ $case: 'hello', hello: { runId, trainerId: 'bench-trainer', policyVersion: 0, simulated: true } });
  await welcomed;
  return {
    attachedAt,
    weightsReady: (v) => write({ $case: 'weightsReady', weightsReady: { policyVersion: v, updateInfoJson: '' } }),
    close: () => {
      call.cancel();
      client.close();
    },
  };
}

// failover: how long a run stands still when the control-plane leader dies.
//
// Two control-plane replicas (real processes, services/control-plane's main)
// share one Redis with leader election over the Redis lock
// (TANDEM_LEADER_ELECTION=redis). The leader runs a small simulated run; once
// it has trained two steps it is killed with SIGKILL (its generators,
// rollout workers and trainer die with it). Measured from the kill:
//   leadingMs     the standby holds the lock (≈ the lease's remaining time
//                 plus up to one campaign period)
//   resumedMs     every open run taken over: fences raised, admission,
//                 weight syncs and the run's processes started again
//   firstStepMs   the first step trained after the takeover (new trainer
//                 attached, generators synced, a batch filled and acked)
// Each trial uses fresh replicas on the same Redis; the run is cancelled
// afterwards. Quick mode: one trial at a 2 s lease.
import { randomBytes } from 'node:crypto';
import { startControlPlaneReplica, startRedisServer } from '@tandem/testkit';
import { log, median, ownChild, round } from './lib/common.mjs';

export function workload(quick) {
  return {
    leasesMs: quick ? [2000] : [2000, 10000],
    renewMs: 200,
    trialsPerLease: quick ? 1 : 3,
    killAfterSteps: 2,
    spec: {
      name: 'failover bench',
      model: { name: 'sim-7b' },
      dataset: { source: 'builtin', name: 'arithmetic', size: 2000, seed: 7 },
      reward: { kind: 'numeric' },
      algorithm: { groupSize: 4, batchGroups: 8, maxTokens: 192, temperature: 1.0 },
      async: { maxTrajectoryAgeSteps: 1, inFlightWeightUpdates: true, weightSync: { timeoutMs: 60_000 } },
      maxSteps: 1000,
      generator: { replicas: 2 },
      rolloutWorkers: { replicas: 1, concurrency: 64 },
      failurePolicy: { maxRestarts: 2 },
      simulation: {
        timeScale: 0.05,
        seed: 7,
        generator: { peakTokensPerSecondPerSequence: 60, concurrencyKnee: 32, medianOutputTokens: 96, modelBytes: 2e8, bandwidthBytesPerSecond: 10e9 },
        trainer: { stepOverheadMs: 2000, msPerKiloToken: 300 },
      },
    },
  };
}

async function api(base, method, path, body) {
  const res = await fetch(`${base}${path}`, {
    method,
    ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
  });
  const json = await res.json();
  if (!res.ok) throw new Error(`${method} ${path} on ${base}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

async function until(what, probe, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function trial({ redisUrl, leaseMs, renewMs, killAfterSteps, spec }) {
  const keyPrefix = `bench-failover-${randomBytes(3).toString('hex')}`;
  const start = (name) => startControlPlaneReplica({ name, redisUrl, keyPrefix, leaseMs, renewMs });
  const a = await start('replica-a');
  ownChild(a.process.child);
  await a.waitForLeading();
  const b = await start('replica-b');
  ownChild(b.process.child);
  try {
    const run = await api(a.httpUrl, 'POST', '/v1/runs', { spec });
    const stepAtKill = await until(
      `${killAfterSteps} steps under the first leader`,
      async () => {
        const s = (await api(a.httpUrl, 'GET', `/v1/runs/${run.id}`)).status;
        return s.trainerStep >= killAfterSteps ? s.trainerStep : undefined;
      },
      300_000,
    );
    const killedAt = await a.kill9();
    const takeover = await b.waitForLeading({ timeoutMs: leaseMs * 5 + 30_000 });
    const firstStepAt = await until(
      'a step trained after the takeover',
      async () => ((await api(b.httpUrl, 'GET', `/v1/runs/${run.id}`)).status.trainerStep > stepAtKill ? Date.now() : undefined),
      300_000,
    );
    await api(b.httpUrl, 'POST', `/v1/runs/${run.id}:cancel`, { reason: 'benchmark over' });
    return {
      leaseMs,
      stepAtKill,
      leadingMs: takeover.acquiredAtMs - killedAt,
      resumedMs: takeover.resumedAtMs - killedAt,
      firstStepMs: firstStepAt - killedAt,
    };
  } finally {
    await a.process.stop('SIGKILL').catch(() => undefined);
    await b.process.stop('SIGTERM').catch(() => undefined);
  }
}

export async function run({ quick }) {
  const cfg = workload(quick);
  const redis = await startRedisServer();
  ownChild(redis.process);
  const trials = [];
  try {
    for (const leaseMs of cfg.leasesMs) {
      for (let i = 0; i < cfg.trialsPerLease; i++) {
        log(`failover: lease ${leaseMs} ms, trial ${i + 1}/${cfg.trialsPerLease}`);
        const t = await trial({ redisUrl: redis.url, leaseMs, renewMs: cfg.renewMs, killAfterSteps: cfg.killAfterSteps, spec: cfg.spec });
        log(`  leading after ${t.leadingMs} ms, runs resumed after ${t.resumedMs} ms, first step after ${t.firstStepMs} ms`);
        trials.push(t);
      }
    }
  } finally {
    await redis.stop();
  }
  const summary = cfg.leasesMs.map((leaseMs) => {
    const rows = trials.filter((t) => t.leaseMs === leaseMs);
    return {
      leaseMs,
      trials: rows.length,
      leadingMsMedian: round(median(rows.map((t) => t.leadingMs)), 0),
      resumedMsMedian: round(median(rows.map((t) => t.resumedMs)), 0),
      firstStepMsMedian: round(median(rows.map((t) => t.firstStepMs)), 0),
    };
  });
  return {
    benchmark: 'failover',
    mode: quick ? 'quick' : 'full',
    simulated: 'generators and trainer are simulated (timeScale 0.05); the control planes, Redis and the processes are real',
    workload: { leasesMs: cfg.leasesMs, renewMs: cfg.renewMs, trialsPerLease: cfg.trialsPerLease, killAfterSteps: cfg.killAfterSteps },
    summary,
    trials,
  };
}

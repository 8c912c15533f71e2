import { ErrorCode, TandemError, type Clock, type Logger } from '@tandem/common';
import { RunRecordStore, scanKeys, type RolloutStore } from '@tandem/rollout-queue';
import type { ControlPlaneMetrics } from '../metrics/control-plane-metrics.js';
import type { RunManager, RunView } from '../runs/run-manager.js';
import type { WeightSyncManager } from '../sync/weight-sync-manager.js';
import type { ControlPlaneHooks } from './rlrun-reconciler.js';
import type { RunProgress } from './rlrun-status-builder.js';

/** What the hooks are made of. `runs` is a thunk: the RunManager is built after the runtime. */
export interface ControlPlaneHooksDeps {
  runs: () => RunManager;
  syncs: WeightSyncManager;
  store: RolloutStore;
  keyPrefix: string;
  metrics: ControlPlaneMetrics;
  clock: Clock;
  log: Logger;
  /** Issues a run's credentials (per-run credentials on); omitted: the Secret is not made. */
  credentials?: (runId: string) => Promise<{ token: string; redisUrl: string } | undefined>;
}

/** The reconciler's hooks, backed by the real RunManager, weight-sync manager and Redis. */
export function controlPlaneHooks(deps: ControlPlaneHooksDeps): ControlPlaneHooks {
  const records = new RunRecordStore(deps.store.redis, deps.keyPrefix);
  return {
    acceptRun: async (runId, spec) => {
      await deps.runs().accept(runId, spec);
    },
    progress: async (runId) => {
      if (!(await records.get(runId))) return undefined;
      const view = await deps.runs().get(runId);
      return { ...progressOf(view), ...(await ageStats(deps.metrics, runId)) };
    },
    cancelRun: async (runId, reason) => {
      await deps.runs().cancel(runId, reason);
    },
    failRun: async (runId, message) => {
      await deps.runs().fail(runId, message);
    },
    cleanupRun: (runId) => cleanupRunState(deps, runId),
    ...(deps.credentials ? { issueCredentials: deps.credentials } : {}),
    registerGenerator: async (runId, id, url) => {
      await deps.syncs.registerGenerator(runId, id, url);
    },
    removeGenerator: async (runId, id) => {
      try {
        await deps.syncs.removeGenerator(runId, id);
      } catch (err) {
        if (TandemError.from(err).code !== ErrorCode.NotFound) throw err;
      }
    },
  };
}

/** The RunManager's view as RLRun progress. */
export function progressOf(view: RunView): RunProgress {
  const s = view.status;
  return {
    phase: s.phase,
    message: s.message,
    trainerStep: s.trainerStep,
    maxSteps: s.maxSteps,
    policyVersion: s.policyVersion,
    minGeneratorVersion: s.minGeneratorVersion,
    maxGeneratorVersion: s.maxGeneratorVersion,
    queueDepth: s.queueDepth,
    inFlight: s.inFlight,
    tokens: s.ledger.tokensTrained,
  };
}

/**
 * Mean and max age of trained groups from this process's age histogram
 * (since it started serving the run). The max is the smallest bucket bound
 * holding every observation: exact for ages up to 4, an upper bound above.
 */
export async function ageStats(metrics: ControlPlaneMetrics, runId: string): Promise<Pick<RunProgress, 'meanAgeSteps' | 'maxAgeSteps'>> {
  const values = (await metrics.trajectoryAge.get()).values.filter((v) => v.labels.run === runId);
  const count = values.find((v) => v.metricName?.endsWith('_count'))?.value ?? 0;
  const sum = values.find((v) => v.metricName?.endsWith('_sum'))?.value ?? 0;
  if (count === 0) return {};
  const le = (v: (typeof values)[number]): string => String((v.labels as Record<string, string | number>).le);
  const bounds = values
    .filter((v) => v.metricName?.endsWith('_bucket') && le(v) !== '+Inf' && v.value >= count)
    .map((v) => Number(le(v)));
  return { meanAgeSteps: sum / count, ...(bounds.length ? { maxAgeSteps: Math.min(...bounds) } : {}) };
}

/**
 * Removes a run's state from Redis (the RLRun finalizer): cancels it, waits
 * briefly for its admitter to stop (so nothing writes after the delete),
 * then deletes every key under the run's hash tag and its index entry.
 * Idempotent. On a Redis Cluster scanKeys walks every master; the keys of a
 * run share a slot, so one DEL per batch stays legal.
 */
export async function cleanupRunState(deps: Pick<ControlPlaneHooksDeps, 'runs' | 'store' | 'keyPrefix' | 'clock' | 'log'>, runId: string): Promise<void> {
  try {
    await deps.runs().cancel(runId, 'RLRun deleted');
  } catch (err) {
    if (TandemError.from(err).code !== ErrorCode.NotFound) throw err;
  }
  // (activeRunIds would also wait out the five minutes an ended run stays active for metrics.)
  for (let i = 0; i < 50 && deps.runs().isAdmitting(runId); i++) await deps.clock.sleep(100);
  const redis = deps.store.redis;
  let deleted = 0;
  for await (const keys of scanKeys(redis, `${deps.keyPrefix}:{${runId}}:*`)) deleted += await redis.del(...keys);
  await redis.zrem(`${deps.keyPrefix}:runs`, runId);
  await deps.runs().forgetRunMetrics(runId);
  deps.log.info({ runId, keysDeleted: deleted }, 'run state removed from Redis');
}

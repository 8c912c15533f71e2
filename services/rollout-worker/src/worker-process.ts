import { setMaxListeners } from 'node:events';
import type { Worker } from 'bullmq';
import { ErrorCode, TandemError, systemClock, type Clock, type Logger } from '@tandem/common';
import { RolloutStore, RunRecordStore, redactRedisUrl, runKeys, type PromptJob } from '@tandem/rollout-queue';
import type { RolloutWorkerConfig } from './config.js';
import { GeneratorPool } from './generator-pool.js';
import { RolloutWorker, type JobOutcome } from './rollout-worker.js';
import { rewardFor, type RewardFunction } from './rewards/index.js';
import { WorkerStats } from './worker-stats.js';

/** Injectable collaborators of a worker process. */
export interface WorkerProcessDeps {
  log: Logger;
  clock?: Clock;
  random?: () => number;
  /** Overrides the run spec's reward (tests). */
  reward?: RewardFunction;
  fetch?: typeof fetch;
  /** Where a remote reward's `headersFromEnv` values come from. @default process.env */
  env?: Record<string, string | undefined>;
}

/**
 * One rollout worker for one run: BullMQ consumer of the run's admitted
 * prompts, generator pool, reward, stats. Ends by itself when the run ends.
 */
export class WorkerProcess {
  private readonly abort = new AbortController();
  private constructor(
    private readonly store: RolloutStore,
    private readonly worker: Worker<PromptJob>,
    private readonly stats: WorkerStats,
    private readonly log: Logger,
    private readonly runId: string,
    /** How this worker's jobs ended so far. */
    readonly outcomes: Record<JobOutcome, number>,
  ) {}

  static async start(config: RolloutWorkerConfig, deps: WorkerProcessDeps): Promise<WorkerProcess> {
    const clock = deps.clock ?? systemClock;
    const log = deps.log.child({ runId: config.runId });
    const store = await RolloutStore.create({ redisUrl: config.redisUrl, keyPrefix: config.keyPrefix, log, clock, onlyRun: config.runId });
    const record = await new RunRecordStore(store.redis, config.keyPrefix).get(config.runId);
    if (!record) {
      await store.close();
      throw new TandemError(ErrorCode.NotFound, `run ${config.runId} not found in ${redactRedisUrl(config.redisUrl)}`);
    }
    const spec = record.spec;
    const registry = store.generators(config.runId);
    const pool = new GeneratorPool(
      { list: () => registry.list(), nextChange: (ms, signal) => store.runEventWaiter(config.runId, ms, signal) },
      {
        maxInFlightPerGenerator: config.maxInFlightPerGenerator,
        unhealthyAfterFailures: config.unhealthyAfterFailures,
        probeAfterMs: config.probeAfterMs,
        refreshMs: 1000,
      },
      { clock, log, probe: (url) => probeHealth(url, deps.fetch ?? fetch) },
    );
    await pool.refresh();
    const stats = new WorkerStats(store.redis, `${runKeys(config.runId, config.keyPrefix).bullPrefix}:stats`, log);
    stats.start();
    const rollout = new RolloutWorker(
      {
        queue: store.forRun(config.runId),
        pool,
        reward: deps.reward ?? rewardFor(spec.reward, config.runId, deps.env ?? process.env),
        stats,
        clock,
        log,
        random: deps.random ?? Math.random,
        ...(deps.fetch ? { fetch: deps.fetch } : {}),
      },
      {
        model: spec.model.name,
        groupSize: spec.algorithm.groupSize,
        maxTokens: spec.algorithm.maxTokens,
        temperature: spec.algorithm.temperature,
        maxTrajectoryAgeSteps: spec.async.maxTrajectoryAgeSteps,
        maxGroupBytes: config.maxGroupBytes,
      },
      {
        requestTimeoutMs: config.requestTimeoutMs,
        maxAttempts: config.maxAttempts,
        backoffBaseMs: config.backoffBaseMs,
        backoffCapMs: config.backoffCapMs,
        rewardAttempts: 3,
      },
    );
    const outcomes: Record<JobOutcome, number> = { completed: 0, dropped_stale: 0, failed: 0, gone: 0 };
    const abortSignal = new AbortController();
    // One listener per in-flight request (AbortSignal.any in the HTTP
    // client): thousands are expected, so the default warning at 10 is noise.
    setMaxListeners(0, abortSignal.signal);
    const worker = store.promptQueue(config.runId).worker(
      async (job) => {
        const outcome = await rollout.process(job.data, abortSignal.signal);
        outcomes[outcome]++;
      },
      {
        concurrency: config.concurrency,
        lockDuration: config.lockDurationMs,
        stalledInterval: config.stalledIntervalMs,
        // A job whose worker died is retried by BullMQ; the group stays in
        // flight in the ledger meanwhile, so nothing is lost.
        maxStalledCount: 1000,
      },
    );
    worker.on('error', (err) => log.warn({ err }, 'bullmq worker error'));
    const self = new WorkerProcess(store, worker, stats, log, config.runId, outcomes);
    self.abort.signal.addEventListener('abort', () => abortSignal.abort());
    log.info({ concurrency: config.concurrency, generators: (await registry.list()).length }, 'rollout worker started');
    return self;
  }

  /** Resolves when the run is no longer open (then the worker can stop). */
  async untilRunEnds(signal?: AbortSignal): Promise<string> {
    const queue = this.store.forRun(this.runId);
    for (;;) {
      const changed = queue.waitForChange(5000, signal);
      let state: string;
      try {
        state = (await queue.snapshot()).state;
      } catch (err) {
        // Only a queue that is gone means the run is over. Redis being
        // unreachable (restart, failover) is not: stopping then, with exit
        // code 0, told the runtime the worker was done, and the run lost
        // all its workers for good.
        if (TandemError.from(err).code === ErrorCode.NotFound) return 'deleted';
        if (signal?.aborted) return 'stopped';
        this.log.warn({ err }, 'cannot read the run state; will look again');
        await changed;
        continue;
      }
      if (state !== 'open') return state;
      if (signal?.aborted) return 'stopped';
      await changed;
    }
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.worker.close(true);
    await this.stats.stop();
    await this.store.close();
    this.log.info({ outcomes: this.outcomes }, 'rollout worker stopped');
  }
}

async function probeHealth(url: string, doFetch: typeof fetch): Promise<boolean> {
  try {
    const res = await doFetch(`${url}/health`, { signal: AbortSignal.timeout(2000) });
    await res.arrayBuffer();
    return res.ok;
  } catch {
    return false;
  }
}

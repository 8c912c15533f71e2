import { randomBytes } from 'node:crypto';
import { createLogger } from '@tandem/common';
import { ControlPlane, loadConfig, type RunView } from '@tandem/control-plane';
import type { RunSpecInput } from '@tandem/run-spec';
import { startRedisServer, type RedisServerHandle } from '@tandem/testkit';

/** Knobs of the small simulated run the observability tests watch. */
export interface ObservedRunOptions {
  steps: number;
  /** maxTrajectoryAgeSteps. */
  k: number;
  /** Wall seconds per simulated second. */
  timeScale: number;
  generators: number;
}

/**
 * A small simulated run: arithmetic prompts, groups of 4, 8 groups a step,
 * the demo's generator and trainer models (so generation and training
 * overlap), 2 generators. Everything it reports is simulated.
 */
export function observedRunSpec(o: ObservedRunOptions): RunSpecInput {
  return {
    name: `observability k=${o.k}`,
    model: { name: 'sim-7b' },
    dataset: { source: 'builtin', name: 'arithmetic', size: 2000, seed: 7 },
    reward: { kind: 'numeric' },
    algorithm: { groupSize: 4, batchGroups: 8, maxTokens: 192, temperature: 1.0 },
    async: { maxTrajectoryAgeSteps: o.k, inFlightWeightUpdates: true, weightSync: { timeoutMs: 60_000 } },
    maxSteps: o.steps,
    generator: { replicas: o.generators },
    rolloutWorkers: { replicas: 1, concurrency: 64 },
    failurePolicy: { maxRestarts: 2 },
    simulation: {
      timeScale: o.timeScale,
      seed: 7,
      generator: { peakTokensPerSecondPerSequence: 60, concurrencyKnee: 32, medianOutputTokens: 96, modelBytes: 2e8, bandwidthBytesPerSecond: 10e9 },
      trainer: { stepOverheadMs: 2000, msPerKiloToken: 300 },
    },
  };
}

/** An in-process control plane on 127.0.0.1 with its own Redis, running one simulated run. */
export interface ObservedPlane {
  plane: ControlPlane;
  httpUrl: string;
  runId: string;
  /** The run as it is now. */
  run(): Promise<RunView>;
  /** Cancels the run if it is still open, stops the control plane (and its children) and Redis. */
  stop(): Promise<void>;
}

const TERMINAL = new Set(['Succeeded', 'Failed', 'Cancelled']);

/** Starts Redis, a control plane (ports 0, local runtime) and submits one run. */
export async function startObservedPlane(options: ObservedRunOptions): Promise<ObservedPlane> {
  const log = createLogger({ name: 'e2e-observability', level: process.env.TANDEM_TEST_LOG_LEVEL ?? 'warn' });
  let redis: RedisServerHandle | undefined;
  let plane: ControlPlane | undefined;
  try {
    redis = await startRedisServer();
    plane = await ControlPlane.create(
      loadConfig({
        TANDEM_HOST: '127.0.0.1',
        TANDEM_HTTP_PORT: '0',
        TANDEM_GRPC_PORT: '0',
        TANDEM_REDIS_URL: redis.url,
        TANDEM_KEY_PREFIX: `tandem-obs-${randomBytes(3).toString('hex')}`,
        // Busy ratios are sampled with the health checks: often, for a short run.
        TANDEM_GENERATOR_HEALTH_INTERVAL_MS: '500',
      }),
      { log },
    );
    const { httpUrl } = await plane.start();
    const submitted = await plane.runs.submit({ spec: observedRunSpec(options) });
    const started = plane;
    const startedRedis = redis;
    return {
      plane: started,
      httpUrl,
      runId: submitted.id,
      run: () => started.runs.get(submitted.id),
      stop: async () => {
        const view = await started.runs.get(submitted.id).catch(() => undefined);
        if (view && !TERMINAL.has(view.status.phase)) await started.runs.cancel(submitted.id, 'test over').catch(() => undefined);
        await started.stop().catch(() => undefined);
        await startedRedis.stop();
      },
    };
  } catch (err) {
    await plane?.stop().catch(() => undefined);
    await redis?.stop();
    throw err;
  }
}

/**
 * Polls `probe` until it returns something other than undefined, at most
 * `timeoutMs` (a limit, never an expectation); the failure names what was
 * awaited and the last value seen.
 */
export async function waitUntil<T>(what: string, probe: () => Promise<T | undefined>, options: { timeoutMs: number; intervalMs?: number; last?: () => string }): Promise<T> {
  const deadline = Date.now() + options.timeoutMs;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      lastError = err;
    }
    await new Promise((r) => setTimeout(r, options.intervalMs ?? 250));
  }
  const detail = options.last?.() ?? (lastError instanceof Error ? lastError.message : '');
  throw new Error(`timed out after ${options.timeoutMs} ms waiting for ${what}${detail ? `: ${detail}` : ''}`);
}

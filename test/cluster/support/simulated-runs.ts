import { createLogger } from '@tandem/common';
import { ControlPlane, loadConfig, type RunView } from '@tandem/control-plane';
import type { RunSpecInput } from '@tandem/run-spec';

/** Steps of each run. */
export const STEPS = 6;
/** Groups a step. */
export const BATCH_GROUPS = 4;
const TERMINAL = new Set(['Succeeded', 'Failed', 'Cancelled']);

/** Whether a run has ended. */
export const ended = (v: RunView): boolean => TERMINAL.has(v.status.phase);

/**
 * A small simulated run (groups of 2, 4 groups a step, k = 1, one
 * generator, one rollout worker), fast enough to leave room for a failover
 * while it runs. Everything it reports is simulated.
 */
export function smallRunSpec(name: string, options: { trainerStepOverheadMs?: number } = {}): RunSpecInput {
  return {
    name,
    model: { name: 'sim-7b' },
    dataset: { source: 'builtin', name: 'arithmetic', size: 500, seed: 11 },
    reward: { kind: 'numeric' },
    algorithm: { groupSize: 2, batchGroups: BATCH_GROUPS, maxTokens: 64 },
    async: { maxTrajectoryAgeSteps: 1, weightSync: { timeoutMs: 60_000 } },
    maxSteps: STEPS,
    generator: { replicas: 1 },
    rolloutWorkers: { replicas: 1, concurrency: 16 },
    failurePolicy: { maxRestarts: 2 },
    simulation: { timeScale: 0.05, seed: 11, trainer: { stepOverheadMs: options.trainerStepOverheadMs ?? 4000 } },
  };
}

/**
 * An in-process control plane (ports 0, local runtime) on `redisUrl`; its
 * generators, rollout workers and trainers are child processes that get the
 * URL unchanged.
 */
export async function startPlane(redisUrl: string, keyPrefix: string): Promise<ControlPlane> {
  const log = createLogger({ name: 'redis-topology-test', level: process.env.TANDEM_TEST_LOG_LEVEL ?? 'warn' });
  const plane = await ControlPlane.create(
    loadConfig({
      TANDEM_HOST: '127.0.0.1',
      TANDEM_HTTP_PORT: '0',
      TANDEM_GRPC_PORT: '0',
      TANDEM_REDIS_URL: redisUrl,
      TANDEM_KEY_PREFIX: keyPrefix,
      TANDEM_GENERATOR_HEALTH_INTERVAL_MS: '500',
    }),
    { log },
  );
  try {
    await plane.start();
  } catch (err) {
    await plane.stop().catch(() => undefined);
    throw err;
  }
  return plane;
}

/** Polls the run until `done` holds, at most `timeoutMs` (a limit, not an expectation). */
export async function waitForRun(plane: ControlPlane, id: string, what: string, done: (v: RunView) => boolean, timeoutMs: number): Promise<RunView> {
  const deadline = Date.now() + timeoutMs;
  let last: RunView | undefined;
  while (Date.now() < deadline) {
    last = await plane.runs.get(id).catch(() => last);
    if (last && done(last)) return last;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for run ${id} to ${what}; last status ${JSON.stringify(last?.status)}`);
}

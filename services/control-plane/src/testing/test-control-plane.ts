import { silentLogger } from '@tandem/common';
import { startRedisServer, type RedisServerHandle } from '@tandem/testkit';
import { ControlPlane, type ControlPlaneDeps } from '../control-plane.js';
import { loadConfig } from '../config.js';

/**
 * Test-only: an in-process control plane on its own redis-server, the
 * set-up most API, auth and operator tests share.
 */

/** The smallest valid run: 3 steps of 2 groups of 2 on the built-in arithmetic prompts (k = 1, the default). */
export const TINY_RUN_SPEC = {
  model: { name: 'tiny' },
  dataset: { source: 'builtin', name: 'arithmetic', size: 10 },
  reward: { kind: 'numeric' },
  algorithm: { groupSize: 2, batchGroups: 2 },
  maxSteps: 3,
};

/** A started control plane, its Redis and its addresses. */
export interface TestControlPlane {
  redis: RedisServerHandle;
  plane: ControlPlane;
  httpUrl: string;
  grpcAddress: string;
  /** Stops the control plane, then Redis. */
  stop(): Promise<void>;
}

/**
 * Starts redis-server and a control plane on it with HTTP and gRPC on free
 * loopback ports. `env` adds to (or overrides) the control plane's
 * environment; it may be a function of the Redis URL, for settings that
 * must be written before the control plane starts.
 */
export async function startTestControlPlane(
  env: Record<string, string> | ((redis: RedisServerHandle) => Record<string, string> | Promise<Record<string, string>>) = {},
  deps: Partial<ControlPlaneDeps> = {},
): Promise<TestControlPlane> {
  const redis = await startRedisServer();
  try {
    const extra = typeof env === 'function' ? await env(redis) : env;
    const plane = await ControlPlane.create(loadConfig({ TANDEM_REDIS_URL: redis.url, TANDEM_HTTP_PORT: '0', TANDEM_GRPC_PORT: '0', ...extra }), {
      log: silentLogger(),
      ...deps,
    });
    const { httpUrl, grpcAddress } = await plane.start();
    return {
      redis,
      plane,
      httpUrl,
      grpcAddress,
      stop: async () => {
        await plane.stop();
        await redis.stop();
      },
    };
  } catch (err) {
    await redis.stop();
    throw err;
  }
}

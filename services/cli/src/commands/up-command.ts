import { parseArgs } from 'node:util';
import type { Logger } from '@tandem/common';
import { ControlPlane, ensureRedis, loadConfig } from '@tandem/control-plane';
import { redactRedisUrl } from '@tandem/rollout-queue';
import { intOption } from './options.js';

export const UP_USAGE = `usage: tandem up [--http-port P] [--grpc-port Q] [--redis-url URL] [--host H]

Runs the control plane in the foreground with the local runtime: runs with
spec.simulation get simulated generators, rollout workers and a trainer as
child processes. Starts an embedded redis-server when none answers at URL.
  --http-port P    HTTP/JSON API and /metrics (default 8080; 0 picks a free port)
  --grpc-port Q    gRPC RunService and TrainerService (default 50051; 0 picks one)
  --redis-url URL  (default redis://127.0.0.1:6379)
  --host H         bind address (default 127.0.0.1)
Ctrl-C stops everything it started.`;

/** `tandem up`: returns when `signal` aborts (Ctrl-C). */
export async function upCommand(argv: string[], log: Logger, signal: AbortSignal): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      'http-port': { type: 'string', default: '8080' },
      'grpc-port': { type: 'string', default: '50051' },
      'redis-url': { type: 'string', default: 'redis://127.0.0.1:6379' },
      host: { type: 'string', default: '127.0.0.1' },
    },
    strict: true,
  });
  const httpPort = intOption('--http-port', values['http-port'], 0, 65535);
  const grpcPort = intOption('--grpc-port', values['grpc-port'], 0, 65535);
  const redis = await ensureRedis(values['redis-url'] ?? 'redis://127.0.0.1:6379', log);
  let plane: ControlPlane | undefined;
  try {
    plane = await ControlPlane.create(
      loadConfig({
        ...process.env,
        TANDEM_REDIS_URL: redis.url,
        TANDEM_HTTP_PORT: String(httpPort),
        TANDEM_GRPC_PORT: String(grpcPort),
        TANDEM_HOST: values.host,
        TANDEM_LOG_LEVEL: log.level,
      }),
      { log },
    );
    const a = await plane.start();
    // The Redis URL may carry a password: never print it.
    process.stdout.write(`${JSON.stringify({ event: 'listening', ...a, redisUrl: redactRedisUrl(redis.url), redisEmbedded: redis.embedded })}\n`);
    process.stderr.write(`tandem up: HTTP ${a.httpUrl}  gRPC ${a.grpcAddress}  Redis ${redactRedisUrl(redis.url)}${redis.embedded ? ' (embedded)' : ''}\nCtrl-C to stop.\n`);
    await new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
    return 0;
  } finally {
    await plane?.stop().catch((err: unknown) => log.warn({ err }, 'control plane stop failed'));
    await redis.stop();
  }
}

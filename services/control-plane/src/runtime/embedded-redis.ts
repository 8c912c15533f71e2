import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCode, TandemError, type Logger } from '@tandem/common';
import { parseRedisUrl, redactRedisUrl } from '@tandem/rollout-queue';

/** A Redis the control plane uses: one that was reachable, or one it started. */
export interface RedisEndpoint {
  url: string;
  /** True when this process started it (and will stop it). */
  embedded: boolean;
  pid?: number;
  stop(): Promise<void>;
}

/**
 * Uses the Redis at `url` when it answers; otherwise starts `redis-server`
 * on a free 127.0.0.1 port with its data in a temporary directory (the
 * embedded default), stopped and removed by `stop()`. Fails with an install
 * hint when redis-server is missing. A Cluster or Sentinel URL is used as it
 * is: such a deployment is never replaced by an embedded single node.
 */
export async function ensureRedis(url: string, log: Logger): Promise<RedisEndpoint> {
  const parts = parseRedisUrl(url);
  const node = parts.nodes[0];
  if (parts.topology !== 'standalone' || node === undefined) {
    log.info({ url: redactRedisUrl(url), topology: parts.topology }, 'using the Redis deployment the URL names');
    return { url, embedded: false, stop: async () => undefined };
  }
  if (await answersPing(node.host, node.port)) {
    log.info({ url: redactRedisUrl(url) }, 'using the Redis that is already running');
    return { url, embedded: false, stop: async () => undefined };
  }
  const dir = await mkdtemp(join(tmpdir(), 'tandem-redis-'));
  const port = await freePort();
  let child: ChildProcess;
  try {
    child = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', '--maxmemory-policy', 'noeviction'],
      // Its own process group: Ctrl-C must not kill Redis before the
      // control plane has stopped everything that writes to it.
      { stdio: 'ignore', detached: true },
    );
    await new Promise<void>((resolve, reject) => {
      child.once('error', reject);
      child.once('spawn', () => resolve());
    });
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
    throw new TandemError(
      ErrorCode.FailedPrecondition,
      missing
        ? `no Redis answers at ${redactRedisUrl(url)} and redis-server is not installed: install it with 'apt-get install -y redis-server' (./scripts/setup.sh does), or pass --redis-url`
        : `could not start redis-server: ${(err as Error).message}`,
      { cause: err },
    );
  }
  const deadline = Date.now() + 10_000;
  while (!(await answersPing('127.0.0.1', port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      await rm(dir, { recursive: true, force: true });
      throw new TandemError(ErrorCode.Unavailable, `redis-server did not start on 127.0.0.1:${port}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const embeddedUrl = `redis://127.0.0.1:${port}`;
  log.info({ url: embeddedUrl, dir }, `no Redis at ${redactRedisUrl(url)}: started an embedded redis-server`);
  let stopped: Promise<void> | undefined;
  return {
    url: embeddedUrl,
    embedded: true,
    ...(child.pid === undefined ? {} : { pid: child.pid }),
    stop: () => {
      stopped ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) {
          const exited = new Promise((r) => child.once('exit', r));
          child.kill('SIGTERM');
          const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
          await exited;
          clearTimeout(timer);
        }
        await rm(dir, { recursive: true, force: true });
      })();
      return stopped;
    },
  };
}

/** Whether a Redis answers PING at host:port (raw RESP, 1 s timeout). */
function answersPing(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ host, port });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('error', () => done(false));
    socket.once('connect', () => socket.write('PING\r\n'));
    // -NOAUTH still means a Redis is there; the URL's credentials are for the client.
    socket.once('data', (d: Buffer) => done(/^(\+PONG|-NOAUTH)/.test(d.toString())));
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

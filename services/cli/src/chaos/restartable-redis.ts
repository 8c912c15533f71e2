import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, startRedisServer, type RedisServerHandle } from '@tandem/testkit';

/**
 * A redis-server as production runs it (AOF on, `appendfsync everysec`) on a
 * fixed loopback port with its data in its own directory, so that it can be
 * stopped and started again at the same address with the same data.
 */
export class RestartableRedis {
  readonly url: string;
  private readonly port: number;
  private readonly dir: string;
  private server: RedisServerHandle | undefined;

  private constructor(port: number, dir: string) {
    this.port = port;
    this.dir = dir;
    this.url = `redis://127.0.0.1:${port}`;
  }

  /** Starts it on a free port. */
  static async start(): Promise<RestartableRedis> {
    const dir = await mkdtemp(join(tmpdir(), 'tandem-chaos-redis-'));
    let lastError: unknown;
    // A free port can be taken between the probe and the bind: try a few.
    for (let attempt = 0; attempt < 5; attempt++) {
      const redis = new RestartableRedis(await freePort(), dir);
      try {
        await redis.up();
        return redis;
      } catch (err) {
        lastError = err;
      }
    }
    await rm(dir, { recursive: true, force: true });
    throw lastError;
  }

  /** The server's pid while it runs. */
  get pid(): number | undefined {
    return this.server?.process.pid;
  }

  /**
   * SIGTERM (Redis writes and fsyncs its AOF before exiting), a pause with
   * nothing listening, then the same port and data directory again.
   */
  async restart(pauseMs: number): Promise<void> {
    await this.down();
    await new Promise((r) => setTimeout(r, pauseMs));
    await this.up();
  }

  /** Stops it and removes its data. */
  async stop(): Promise<void> {
    await this.down();
    await rm(this.dir, { recursive: true, force: true });
  }

  private async up(): Promise<void> {
    this.server = await startRedisServer({ appendOnly: true, dir: this.dir, port: this.port });
  }

  private async down(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    // With `dir` given, the handle leaves the data directory in place.
    await server?.stop();
  }
}

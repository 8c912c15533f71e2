import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './free-port.js';

/** A real redis-server on a loopback port, for tests and benchmarks. */
export interface RedisServerHandle {
  url: string;
  port: number;
  process: ChildProcess;
  /** Stops the server and removes its data directory. */
  stop(): Promise<void>;
}

/** Options for {@link startRedisServer}. */
export interface StartRedisOptions {
  /** Turn on AOF (appendfsync everysec), as in production. @default false */
  appendOnly?: boolean;
  /** Extra `--flag value` arguments. */
  extraArgs?: string[];
  /** Reuse a data directory (for restart tests). */
  dir?: string;
  /** Use this port instead of a free one (for restart tests). */
  port?: number;
}

/**
 * Starts `redis-server` bound to 127.0.0.1 on a free port with its data in a
 * temporary directory. Throws with an install hint when it is missing.
 */
export async function startRedisServer(options: StartRedisOptions = {}): Promise<RedisServerHandle> {
  const dir = options.dir ?? (await mkdtemp(join(tmpdir(), 'tandem-redis-')));
  const ownsDir = options.dir === undefined;
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = options.port ?? (await freePort());
    const args = [
      '--port', String(port),
      '--bind', '127.0.0.1',
      '--dir', dir,
      '--save', '',
      '--appendonly', options.appendOnly ? 'yes' : 'no',
      '--appendfsync', 'everysec',
      '--maxmemory-policy', 'noeviction',
      '--protected-mode', 'yes',
      ...(options.extraArgs ?? []),
    ];
    const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    const spawnError = new Promise<never>((_, reject) =>
      child.once('error', (err: NodeJS.ErrnoException) =>
        reject(
          err.code === 'ENOENT'
            ? new Error('redis-server is not installed: run `apt-get install -y redis-server` (scripts/setup.sh does it)')
            : err,
        ),
      ),
    );
    const exited = new Promise<'exited'>((resolve) => child.once('exit', () => resolve('exited')));
    const ready = await Promise.race([waitForPort(port, 10_000).then(() => 'ready' as const), exited, spawnError]);
    if (ready === 'ready') {
      return {
        url: `redis://127.0.0.1:${port}`,
        port,
        process: child,
        stop: async () => {
          if (child.exitCode === null && child.signalCode === null) {
            const gone = new Promise((resolve) => child.once('exit', resolve));
            child.kill('SIGTERM');
            await gone;
          }
          if (ownsDir) await rm(dir, { recursive: true, force: true });
        },
      };
    }
    if (options.port !== undefined || !/Address already in use/i.test(output)) {
      throw new Error(`redis-server exited at start: ${output.trim().slice(-500)}`);
    }
  }
  throw new Error('could not find a free port for redis-server');
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = createConnection({ port, host: '127.0.0.1' });
      socket.once('connect', () => {
        socket.end();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`redis-server did not listen on ${port} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

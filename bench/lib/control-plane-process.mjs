// Starts the real control plane (services/control-plane/dist/main.js) as a
// child process, so that its CPU time and memory can be read from /proc.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { ROOT, cpuSeconds, memoryMiB, nodeFlags, ownChild } from './common.mjs';

/**
 * Starts a control plane on free loopback ports against `redisUrl`, with no
 * runtime (runs are external), logging at `logLevel` (its log is drained
 * and kept only for error messages). Resolves once it listens.
 */
export async function startControlPlane({ redisUrl, logLevel = 'info', env = {} }) {
  const child = spawn(process.execPath, [...nodeFlags(), join(ROOT, 'services/control-plane/dist/main.js')], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      ...process.env,
      TANDEM_REDIS_URL: redisUrl,
      TANDEM_HOST: '127.0.0.1',
      TANDEM_HTTP_PORT: '0',
      TANDEM_GRPC_PORT: '0',
      TANDEM_RUNTIME: 'none',
      TANDEM_LOG_LEVEL: logLevel,
      ...env,
    },
  });
  ownChild(child);
  let tail = '';
  child.stderr.on('data', (d) => {
    tail = (tail + d.toString()).slice(-4000);
  });
  const addresses = await new Promise((resolve, reject) => {
    let out = '';
    const onData = (d) => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.includes('"listening"'));
      if (line) {
        child.stdout.off('data', onData);
        child.stdout.resume();
        resolve(JSON.parse(line));
      }
    };
    child.stdout.on('data', onData);
    child.once('exit', (code) => reject(new Error(`control plane exited (${code}) before listening: ${tail}`)));
  });
  return {
    pid: child.pid,
    grpcAddress: addresses.grpcAddress,
    httpUrl: addresses.httpUrl,
    cpuSeconds: () => cpuSeconds(child.pid),
    memory: () => memoryMiB(child.pid),
    async stop() {
      if (child.exitCode !== null) return;
      const gone = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await gone;
      clearTimeout(timer);
    },
  };
}

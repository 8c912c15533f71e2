import { fileURLToPath } from 'node:url';
import { startService, type ServiceProcess } from './service-process.js';

/** The built control-plane entry point of this repository. */
export const CONTROL_PLANE_MAIN = fileURLToPath(new URL('../../../services/control-plane/dist/main.js', import.meta.url));

/** Options of {@link startControlPlaneReplica}. */
export interface ControlPlaneReplicaOptions {
  /** A name for logs and failure messages. */
  name: string;
  redisUrl: string;
  /** Every replica of one deployment shares the prefix (and so the leader lock). */
  keyPrefix: string;
  /** TANDEM_LEADER_LEASE_MS. @default 2000 */
  leaseMs?: number;
  /** TANDEM_LEADER_RENEW_MS. @default 200 */
  renewMs?: number;
  /** TANDEM_RUNTIME. @default local */
  runtime?: 'local' | 'none';
  /** More environment (overrides the above). */
  env?: Record<string, string>;
  /** @default 30000 */
  startTimeoutMs?: number;
}

/** What a replica printed when it took the runs over (see the control plane's main.ts). */
export interface ReplicaTakeover {
  token: number;
  acquiredAtMs: number;
  resumedAtMs: number;
  runs: string[];
}

/** A control-plane replica running as a real process (so kill -9 is real). */
export interface ControlPlaneReplica {
  name: string;
  process: ServiceProcess;
  pid: number;
  httpUrl: string;
  grpcAddress: string;
  /** Takeovers printed so far, oldest first. */
  takeovers(): ReplicaTakeover[];
  /** Resolves with the first takeover after the `seen`-th (bounded by `timeoutMs`). */
  waitForLeading(options?: { timeoutMs?: number; seen?: number }): Promise<ReplicaTakeover>;
  /** SIGKILL, and wait for the exit; returns Date.now() at the kill. */
  kill9(): Promise<number>;
}

/**
 * Starts `services/control-plane/dist/main.js` as a replica with leader
 * election over Redis (TANDEM_LEADER_ELECTION=redis), on loopback with
 * free ports, and waits until it listens. Whether it leads is up to the
 * election: `waitForLeading` tells. Stop it with `process.stop()` (a clean
 * stop releases the lock) or `kill9()` (the lock expires after the lease).
 * Needs the workspace built (`npx tsc -b`).
 */
export async function startControlPlaneReplica(options: ControlPlaneReplicaOptions): Promise<ControlPlaneReplica> {
  const p = await startService({
    name: options.name,
    script: CONTROL_PLANE_MAIN,
    timeoutMs: options.startTimeoutMs ?? 30_000,
    env: {
      TANDEM_HOST: '127.0.0.1',
      TANDEM_HTTP_PORT: '0',
      TANDEM_GRPC_PORT: '0',
      TANDEM_REDIS_URL: options.redisUrl,
      TANDEM_KEY_PREFIX: options.keyPrefix,
      TANDEM_RUNTIME: options.runtime ?? 'local',
      TANDEM_LEADER_ELECTION: 'redis',
      TANDEM_LEADER_LEASE_MS: String(options.leaseMs ?? 2000),
      TANDEM_LEADER_RENEW_MS: String(options.renewMs ?? 200),
      TANDEM_LOG_LEVEL: process.env.TANDEM_TEST_LOG_LEVEL ?? 'warn',
      ...options.env,
    },
  });
  const takeovers = (): ReplicaTakeover[] => p.events.filter((e) => e.event === 'leading') as unknown as ReplicaTakeover[];
  return {
    name: options.name,
    process: p,
    pid: p.child.pid ?? -1,
    httpUrl: String(p.ready.httpUrl),
    grpcAddress: String(p.ready.grpcAddress),
    takeovers,
    async waitForLeading({ timeoutMs = 30_000, seen = 0 } = {}) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const t = takeovers()[seen];
        if (t) return t;
        if (p.child.exitCode !== null || p.child.signalCode !== null) throw new Error(`${options.name} exited before leading:\n${p.logs().slice(-4000)}`);
        if (Date.now() > deadline) throw new Error(`${options.name} did not become the leader within ${timeoutMs} ms:\n${p.logs().slice(-4000)}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    },
    async kill9() {
      const at = Date.now();
      p.child.kill('SIGKILL');
      await p.exited;
      return at;
    },
  };
}

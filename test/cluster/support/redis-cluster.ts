import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { freePort, startRedisServer, type RedisServerHandle } from '@tandem/testkit';
import { waitFor } from './wait-for.js';

const run = promisify(execFile);

/** One `redis-server` of a test cluster. */
export interface ClusterNode {
  port: number;
  /** Cluster bus port (set explicitly: port + 10000 may not exist or be free). */
  busPort: number;
  server: RedisServerHandle;
}

/** Which node serves a hash slot range. */
export interface SlotRange {
  start: number;
  end: number;
  /** Port of the master. */
  master: number;
  /** Ports of its replicas. */
  replicas: number[];
}

/** A Redis Cluster of plain `redis-server` processes on 127.0.0.1. */
export interface RedisClusterHandle {
  /** `redis+cluster://127.0.0.1:p1,...` naming every node as a seed. */
  url: string;
  nodes: ClusterNode[];
  /** One command on one node (by port), on a connection kept for the handle's life. */
  command(port: number, ...args: Array<string | number>): Promise<unknown>;
  /** The slot map as `port` sees it. */
  slots(port?: number): Promise<SlotRange[]>;
  /** The master that owns `slot` (as the first node sees it). */
  masterOf(slot: number): Promise<number>;
  /** CLUSTER KEYSLOT of a key. */
  keySlot(key: string): Promise<number>;
  /**
   * A coordinated failover (CLUSTER FAILOVER on a replica of `masterPort`):
   * resolves once the replica is master, every node maps the old master's
   * slots to it and every node reports cluster_state:ok.
   */
  failover(masterPort: number, timeoutMs?: number): Promise<{ promoted: number; elapsedMs: number }>;
  /** Stops every server (SIGKILL for any that has not exited within 10 s) and removes their data. */
  stop(): Promise<void>;
}

/** Options for {@link startRedisCluster}. */
export interface StartRedisClusterOptions {
  /** @default 3 */
  masters?: number;
  /** @default 1 */
  replicasPerMaster?: number;
  /** cluster-node-timeout. @default 3000 */
  nodeTimeoutMs?: number;
  /** Limit on creating the cluster and waiting for it to be healthy. @default 30000 */
  timeoutMs?: number;
}

/**
 * Starts `masters × (1 + replicasPerMaster)` cluster-enabled redis-servers
 * (AOF on, appendfsync everysec, each with its own data directory and nodes
 * file), joins them with `redis-cli --cluster create … --cluster-replicas`,
 * and waits until every node agrees on a full slot map with
 * cluster_state:ok.
 */
export async function startRedisCluster(options: StartRedisClusterOptions = {}): Promise<RedisClusterHandle> {
  const masters = options.masters ?? 3;
  const replicas = options.replicasPerMaster ?? 1;
  const timeoutMs = options.timeoutMs ?? 30_000;
  const nodes: ClusterNode[] = [];
  const admin = new Map<number, Redis>();
  const connection = (port: number): Redis => {
    let c = admin.get(port);
    if (!c) {
      c = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 2 });
      c.on('error', () => undefined);
      admin.set(port, c);
    }
    return c;
  };
  const command = (port: number, ...args: Array<string | number>): Promise<unknown> => {
    const [name, ...rest] = args;
    return connection(port).call(String(name), ...rest.map(String));
  };
  const slots = async (port = nodes[0]?.port ?? 0): Promise<SlotRange[]> => {
    const reply = (await command(port, 'CLUSTER', 'SLOTS')) as Array<[number, number, ...Array<[string, number, string]>]>;
    return reply
      .map(([start, end, master, ...reps]) => ({ start, end, master: master?.[1] ?? 0, replicas: reps.map((r) => r[1]) }))
      .sort((a, b) => a.start - b.start);
  };
  const stop = async (): Promise<void> => {
    for (const c of admin.values()) c.disconnect();
    admin.clear();
    await Promise.all(
      nodes.map(async (n) => {
        let timer: NodeJS.Timeout | undefined;
        const killed = new Promise<void>((resolve) => {
          timer = setTimeout(() => {
            n.server.process.kill('SIGKILL');
            resolve();
          }, 10_000);
        });
        await Promise.race([n.server.stop(), killed]);
        clearTimeout(timer);
      }),
    );
  };

  try {
    for (let i = 0; i < masters * (1 + replicas); i++) {
      const busPort = await freePort();
      const server = await startRedisServer({
        appendOnly: true,
        extraArgs: [
          '--cluster-enabled', 'yes',
          '--cluster-config-file', 'nodes.conf',
          '--cluster-node-timeout', String(options.nodeTimeoutMs ?? 3000),
          '--cluster-port', String(busPort),
        ],
      });
      nodes.push({ port: server.port, busPort, server });
    }
    await run(
      'redis-cli',
      ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', String(replicas), '--cluster-yes'],
      { timeout: timeoutMs },
    );
    await waitFor('every node to report cluster_state:ok with all slots and every replica attached', timeoutMs, async () => {
      for (const n of nodes) {
        const info = String(await command(n.port, 'CLUSTER', 'INFO'));
        if (!/cluster_state:ok/.test(info) || !/cluster_slots_ok:16384/.test(info) || !new RegExp(`cluster_known_nodes:${nodes.length}\\b`).test(info)) return false;
      }
      const map = await slots();
      return map.length >= masters && map.every((r) => r.replicas.length === replicas);
    });
  } catch (err) {
    await stop();
    throw err;
  }

  return {
    url: `redis+cluster://${nodes.map((n) => `127.0.0.1:${n.port}`).join(',')}`,
    nodes,
    command,
    slots,
    masterOf: async (slot) => {
      const range = (await slots()).find((r) => r.start <= slot && slot <= r.end);
      if (!range) throw new Error(`no node owns slot ${slot}`);
      return range.master;
    },
    keySlot: async (key) => Number(await command(nodes[0]?.port ?? 0, 'CLUSTER', 'KEYSLOT', key)),
    failover: async (masterPort, failoverTimeoutMs = 30_000) => {
      const before = await slots(masterPort);
      const owned = before.filter((r) => r.master === masterPort);
      const replica = owned[0]?.replicas[0];
      if (replica === undefined) throw new Error(`node ${masterPort} is not a master with a replica`);
      const started = performance.now();
      await command(replica, 'CLUSTER', 'FAILOVER');
      await waitFor(`replica ${replica} to take over from ${masterPort} on every node`, failoverTimeoutMs, async () => {
        const role = (await command(replica, 'ROLE')) as [string, ...unknown[]];
        if (role[0] !== 'master') return false;
        for (const n of nodes) {
          const info = String(await command(n.port, 'CLUSTER', 'INFO'));
          if (!/cluster_state:ok/.test(info)) return false;
          const map = await slots(n.port);
          for (const r of owned) if (!map.some((m) => m.start === r.start && m.end === r.end && m.master === replica)) return false;
        }
        return true;
      });
      return { promoted: replica, elapsedMs: performance.now() - started };
    },
    stop,
  };
}

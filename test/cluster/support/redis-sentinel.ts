import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort, startRedisServer, type RedisServerHandle } from '@tandem/testkit';
import { waitFor } from './wait-for.js';

/** A master, its replica and sentinels watching them, on 127.0.0.1. */
export interface RedisSentinelHandle {
  /** `redis+sentinel://127.0.0.1:s1,…/<masterName>`. */
  url: string;
  masterName: string;
  /** Ports of the two data nodes (the first started as master). */
  dataPorts: number[];
  sentinelPorts: number[];
  /** The master's port as the first sentinel reports it. */
  currentMaster(): Promise<number>;
  /**
   * A planned switchover: writes on the master are paused (CLIENT PAUSE …
   * WRITE), the replica catches up to the master's replication offset, then
   * SENTINEL FAILOVER promotes it; once the clients have moved to the new
   * master (ioredis follows +switch-master and resends what was pending)
   * the pause is lifted and the sentinels demote the old master. SENTINEL
   * FAILOVER alone does not pause the old master: writes it accepts
   * between the promotion and its demotion are lost when it resyncs as a
   * replica. Resolves once every sentinel reports the new master, it has
   * the master role and the old master replicates from it.
   */
  failover(timeoutMs?: number): Promise<{ from: number; to: number; elapsedMs: number }>;
  /** Stops every process (SIGKILL after 10 s) and removes their data. */
  stop(): Promise<void>;
}

/** Options for {@link startRedisSentinel}. */
export interface StartRedisSentinelOptions {
  /** @default 3 */
  sentinels?: number;
  /** @default 'tandem' */
  masterName?: string;
  /** Limit on waiting for the sentinels to see the replica and each other. @default 30000 */
  timeoutMs?: number;
}

/**
 * Starts a master (AOF on), one replica of it and `sentinels` sentinels
 * (quorum: a majority) monitoring it, and waits until every sentinel knows
 * the replica and the other sentinels, so that a failover can be asked for.
 */
export async function startRedisSentinel(options: StartRedisSentinelOptions = {}): Promise<RedisSentinelHandle> {
  const masterName = options.masterName ?? 'tandem';
  const count = options.sentinels ?? 3;
  const timeoutMs = options.timeoutMs ?? 30_000;
  const data: RedisServerHandle[] = [];
  const sentinels: Array<{ port: number; child: ChildProcess; dir: string }> = [];
  const admin = new Map<number, Redis>();
  const command = (port: number, ...args: string[]): Promise<unknown> => {
    let c = admin.get(port);
    if (!c) {
      c = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 2 });
      c.on('error', () => undefined);
      admin.set(port, c);
    }
    const [name, ...rest] = args;
    return c.call(name as string, ...rest);
  };
  const stop = async (): Promise<void> => {
    for (const c of admin.values()) c.disconnect();
    admin.clear();
    const bounded = async (stopOne: () => Promise<unknown>, kill: () => void): Promise<void> => {
      let timer: NodeJS.Timeout | undefined;
      const killed = new Promise<void>((resolve) => {
        timer = setTimeout(() => {
          kill();
          resolve();
        }, 10_000);
      });
      await Promise.race([stopOne(), killed]);
      clearTimeout(timer);
    };
    await Promise.all([
      ...sentinels.map((s) =>
        bounded(
          async () => {
            if (s.child.exitCode === null && s.child.signalCode === null) {
              const gone = new Promise((r) => s.child.once('exit', r));
              s.child.kill('SIGTERM');
              await gone;
            }
            await rm(s.dir, { recursive: true, force: true });
          },
          () => s.child.kill('SIGKILL'),
        ),
      ),
      ...data.map((d) => bounded(() => d.stop(), () => d.process.kill('SIGKILL'))),
    ]);
  };

  try {
    const master = await startRedisServer({ appendOnly: true });
    data.push(master);
    data.push(await startRedisServer({ appendOnly: true, extraArgs: ['--replicaof', '127.0.0.1', String(master.port)] }));
    for (let i = 0; i < count; i++) {
      const port = await freePort();
      const dir = await mkdtemp(join(tmpdir(), 'tandem-sentinel-'));
      const conf = join(dir, 'sentinel.conf');
      await writeFile(
        conf,
        [
          `port ${port}`,
          'bind 127.0.0.1',
          `dir ${dir}`,
          `sentinel monitor ${masterName} 127.0.0.1 ${master.port} ${Math.floor(count / 2) + 1}`,
          `sentinel down-after-milliseconds ${masterName} 3000`,
          `sentinel failover-timeout ${masterName} 20000`,
          `sentinel parallel-syncs ${masterName} 1`,
          '',
        ].join('\n'),
      );
      const child = spawn('redis-server', [conf, '--sentinel'], { stdio: 'ignore' });
      sentinels.push({ port, child, dir });
    }
    await waitFor('every sentinel to know the replica and the other sentinels', timeoutMs, async () => {
      for (const s of sentinels) {
        const replicas = (await command(s.port, 'SENTINEL', 'REPLICAS', masterName)) as string[][];
        const healthy = replicas.filter((r) => {
          const flags = r[r.indexOf('flags') + 1] ?? '';
          return flags === 'slave' && r[r.indexOf('master-link-status') + 1] === 'ok';
        });
        if (healthy.length < 1) return false;
        const others = (await command(s.port, 'SENTINEL', 'SENTINELS', masterName)) as unknown[];
        if (others.length < count - 1) return false;
      }
      return true;
    });
  } catch (err) {
    await stop();
    throw err;
  }

  const currentMaster = async (port = sentinels[0]?.port ?? 0): Promise<number> => {
    const [, p] = (await command(port, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', masterName)) as [string, string];
    return Number(p);
  };

  return {
    url: `redis+sentinel://${sentinels.map((s) => `127.0.0.1:${s.port}`).join(',')}/${masterName}`,
    masterName,
    dataPorts: data.map((d) => d.port),
    sentinelPorts: sentinels.map((s) => s.port),
    currentMaster: () => currentMaster(),
    failover: async (failoverTimeoutMs = 30_000) => {
      const from = await currentMaster();
      const to = data.map((d) => d.port).find((p) => p !== from) as number;
      const started = performance.now();
      const adminId = Number(await command(from, 'CLIENT', 'ID'));
      await command(from, 'CLIENT', 'PAUSE', String(failoverTimeoutMs), 'WRITE');
      await waitFor(`replica ${to} to catch up with ${from}`, failoverTimeoutMs, async () => {
        const offset = (info: string): string | undefined => /master_repl_offset:(\d+)/.exec(info)?.[1];
        const [m, r] = await Promise.all([command(from, 'INFO', 'replication'), command(to, 'INFO', 'replication')]);
        return offset(String(m)) !== undefined && offset(String(m)) === offset(String(r));
      });
      await command(sentinels[0]?.port ?? 0, 'SENTINEL', 'FAILOVER', masterName);
      await waitFor(`the sentinels to promote ${to}`, failoverTimeoutMs, async () => {
        for (const s of sentinels) if ((await currentMaster(s.port)) !== to) return false;
        const promoted = (await command(to, 'ROLE')) as [string];
        return promoted[0] === 'master';
      });
      // The pause also holds the sentinels' demotion of the old master: lift
      // it once every client but ours and the sentinels' has left it.
      await waitFor(`the clients of ${from} to move to ${to}`, failoverTimeoutMs, async () => {
        for (const type of ['normal', 'pubsub']) {
          const lines = String(await command(from, 'CLIENT', 'LIST', 'TYPE', type)).split('\n').filter((l) => l.trim() !== '');
          if (lines.some((l) => !l.startsWith(`id=${adminId} `) && !/ name=sentinel-/.test(l))) return false;
        }
        return true;
      });
      await command(from, 'CLIENT', 'UNPAUSE');
      await waitFor(`the sentinels to demote ${from}`, failoverTimeoutMs, async () => {
        const demoted = (await command(from, 'ROLE')) as [string, string, number, string];
        return demoted[0] === 'slave' && Number(demoted[2]) === to;
      });
      await waitFor(`${from} to replicate from ${to}`, failoverTimeoutMs, async () => {
        const demoted = (await command(from, 'ROLE')) as [string, string, number, string];
        return demoted[3] === 'connected';
      });
      return { from, to, elapsedMs: performance.now() - started };
    },
    stop,
  };
}

import { LuaScript, type RolloutRedis } from '@tandem/rollout-queue';

const LUA_DIR = new URL('../../lua/', import.meta.url);
const lockScripts = {
  acquire: new LuaScript('leader-acquire-3.lua', LUA_DIR),
  renew: new LuaScript('leader-renew-2.lua', LUA_DIR),
  release: new LuaScript('leader-release-2.lua', LUA_DIR),
};

/** Where the leader says it can be reached (what a standby tells clients). */
export interface LeaderAddresses {
  httpUrl: string;
  grpcAddress: string;
}

/** The current holder of the lock, as stored next to it. */
export interface LeaderInfo extends LeaderAddresses {
  holder: string;
  token: number;
  acquiredAtMs: number;
}

/** Result of one campaign. */
export type AcquireResult = { acquired: true; token: number } | { acquired: false; holder: string };

/** The Redis commands the lock uses (scripts and one HGETALL). */
export type LeaderLockRedis = RolloutRedis;

/**
 * Key layout of the lock. The hash tag `{_leader}` keeps the three keys in
 * one Redis Cluster slot, and cannot be a run's tag (run ids are DNS-1123
 * labels, which have no `_`), so no run's keys or key patterns touch them.
 */
export function leaderLockKeys(prefix: string): { holder: string; epoch: string; info: string } {
  const base = `${prefix}:{_leader}`;
  return { holder: `${base}:holder`, epoch: `${base}:epoch`, info: `${base}:info` };
}

/**
 * The control-plane leader lock in Redis (local mode): SET NX PX with a
 * unique holder id, extended by compare-and-extend, released on a clean
 * stop, and a fencing token (INCR of an epoch key) for each acquisition.
 * One round trip per operation; the loop around it is RedisLeaderElector.
 */
export class RedisLeaderLock {
  private readonly redis: LeaderLockRedis;
  private readonly keys: ReturnType<typeof leaderLockKeys>;

  constructor(redis: LeaderLockRedis, keyPrefix: string) {
    this.redis = redis;
    this.keys = leaderLockKeys(keyPrefix);
  }

  /** Takes the lock when it is free (a new token), or extends it when `holder` has it already. */
  async acquire(holder: string, leaseMs: number, addresses: LeaderAddresses, nowMs: number): Promise<AcquireResult> {
    const reply = (await lockScripts.acquire.run(
      this.redis,
      [this.keys.holder, this.keys.epoch, this.keys.info],
      [holder, leaseMs, addresses.httpUrl, addresses.grpcAddress, nowMs],
    )) as [number, number | string];
    if (reply[0] === 0) return { acquired: false, holder: String(reply[1]) };
    return { acquired: true, token: Number(reply[1]) };
  }

  /** Extends the lease; false when `holder` no longer holds the lock. */
  async renew(holder: string, leaseMs: number): Promise<boolean> {
    return Number(await lockScripts.renew.run(this.redis, [this.keys.holder, this.keys.info], [holder, leaseMs])) === 1;
  }

  /** Releases the lock if `holder` holds it; true when it did. */
  async release(holder: string): Promise<boolean> {
    return Number(await lockScripts.release.run(this.redis, [this.keys.holder, this.keys.info], [holder])) === 1;
  }

  /** The current leader, or undefined when nobody holds the lock. */
  async leader(): Promise<LeaderInfo | undefined> {
    const info = await this.redis.hgetall(this.keys.info);
    if (info.holder === undefined) return undefined;
    return {
      holder: info.holder,
      token: Number(info.token ?? 0),
      httpUrl: info.httpUrl ?? '',
      grpcAddress: info.grpcAddress ?? '',
      acquiredAtMs: Number(info.acquiredAtMs ?? 0),
    };
  }
}

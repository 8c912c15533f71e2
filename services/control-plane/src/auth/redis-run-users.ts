import type { Redis } from 'ioredis';
import { ErrorCode, TandemError, type Logger } from '@tandem/common';
import { isRedisCluster, withRedisCredentials } from '@tandem/rollout-queue';

/** Whether per-run Redis users are made: `auto` falls back to the shared URL (logged) when Redis refuses ACL commands. */
export type RunRedisUsersMode = 'auto' | 'required' | 'off';

/**
 * Commands a rollout worker needs: reads and writes on its run's keys,
 * Lua scripts (the queue's and BullMQ's), pub/sub on its run's events
 * channel, MULTI, blocking pops, and the connection handshake (BullMQ reads
 * INFO for the server version). Everything dangerous (FLUSHALL, KEYS,
 * CONFIG, DEBUG, ACL, …) and the function/script management commands stay
 * refused.
 */
const COMMAND_RULES = [
  '-@all',
  '+@read',
  '+@write',
  '+@scripting',
  '+@pubsub',
  '+@connection',
  '+@transaction',
  '+@blocking',
  '-@dangerous',
  '-@admin',
  '-function',
  '-script|flush',
  '-script|kill',
  '+info',
  '+client|setname',
  '+client|getname',
  '+client|id',
];

/** Options of {@link RunRedisUsers}. */
export interface RunRedisUsersOptions {
  redis: Pick<Redis, 'call'>;
  /** The URL the control plane uses; workers get it with their run's user and password. */
  redisUrl: string;
  keyPrefix: string;
  mode: RunRedisUsersMode;
  log: Logger;
}

/**
 * One Redis ACL user per run, allowed only that run's keys
 * (`<prefix>:{<runId>}:*`, which is also BullMQ's prefix for the run) and
 * its events channel. Made when the run's workloads start, deleted when
 * they have stopped.
 */
export class RunRedisUsers {
  private readonly options: RunRedisUsersOptions;
  private unsupported = false;
  /** Users made by this process (run → password): re-made after Redis restarts, not re-sent on every reconcile. */
  private readonly live = new Map<string, string>();
  private defaultUserChecked = false;

  constructor(options: RunRedisUsersOptions) {
    this.options = options;
  }

  /** The ACL user name of a run. */
  username(runId: string): string {
    return `${this.options.keyPrefix}-run-${runId}`;
  }

  /**
   * Creates (or resets) the run's user with `password`; returns the Redis
   * URL its workers use. With mode `auto` and a Redis that refuses ACL
   * commands, returns the shared URL and logs a warning once.
   */
  async create(runId: string, password: string): Promise<string> {
    const { mode, log } = this.options;
    if (mode === 'off' || this.unsupported) return this.options.redisUrl;
    if (this.live.get(runId) === password) return withCredentials(this.options.redisUrl, this.username(runId), password);
    try {
      await this.setUser(runId, password);
      this.live.set(runId, password);
      await this.checkDefaultUser();
    } catch (err) {
      const message = TandemError.from(err).message;
      if (mode === 'required') {
        throw new TandemError(ErrorCode.FailedPrecondition, `Redis refused to create the run's ACL user (TANDEM_REDIS_RUN_USERS=required): ${message}`, { cause: err });
      }
      this.unsupported = true;
      log.warn({ runId, reason: message }, 'Redis refuses ACL commands: rollout workers share the control plane\'s Redis credentials (TANDEM_REDIS_RUN_USERS=auto)');
      return this.options.redisUrl;
    }
    return withCredentials(this.options.redisUrl, this.username(runId), password);
  }

  /**
   * Makes every user of this process's runs again. Redis keeps ACL users in
   * memory (and in an `aclfile` only when one is configured): after a Redis
   * restart they are gone, and workers could not authenticate. Called when
   * the control plane's connection becomes ready again.
   */
  async reapply(): Promise<void> {
    for (const [runId, password] of this.live) {
      await this.setUser(runId, password).catch((err: unknown) =>
        this.options.log.warn({ runId, reason: TandemError.from(err).message }, 'could not re-create the run\'s Redis user'),
      );
    }
  }

  /** Deletes the run's user (its open connections are closed by Redis). */
  async delete(runId: string): Promise<void> {
    if (this.options.mode === 'off' || this.unsupported) return;
    this.live.delete(runId);
    try {
      await this.acl('DELUSER', this.username(runId));
      await this.saveAcl();
    } catch (err) {
      this.options.log.warn({ runId, reason: TandemError.from(err).message }, 'could not delete the run\'s Redis user');
    }
  }

  private async setUser(runId: string, password: string): Promise<void> {
    const base = `${this.options.keyPrefix}:{${runId}}`;
    await this.acl('SETUSER', this.username(runId), 'reset', 'on', `>${password}`, `~${base}:*`, `&${base}:*`, ...COMMAND_RULES);
    await this.saveAcl();
  }

  /**
   * Per-run users confine a worker only if it cannot simply connect as
   * Redis's `default` user instead: warn once when that user needs no
   * password (Redis's out-of-the-box setting).
   */
  private async checkDefaultUser(): Promise<void> {
    if (this.defaultUserChecked) return;
    this.defaultUserChecked = true;
    const reply = await this.options.redis.call('ACL', 'GETUSER', 'default').catch(() => undefined);
    const flags = Array.isArray(reply) ? reply[reply.indexOf('flags') + 1] : undefined;
    if (Array.isArray(flags) && flags.includes('on') && flags.includes('nopass')) {
      this.options.log.warn(
        'Redis\'s default user needs no password: per-run Redis users do not keep a run\'s pods out of other runs\' keys until Redis requires one (requirepass, or ACL rules for default; docs/operations.md, Security)',
      );
    }
  }

  /**
   * An ACL command. Redis keeps ACL users per node and does not replicate
   * them: on a Redis Cluster the command goes to every node, replicas
   * included (a replica promoted by a failover must know the users).
   */
  private async acl(...args: string[]): Promise<void> {
    const redis = this.options.redis;
    if (isRedisCluster(redis)) {
      await Promise.all(redis.nodes('all').map((node) => node.call('ACL', ...args)));
      return;
    }
    await redis.call('ACL', ...args);
  }

  /** Persists users when Redis has an `aclfile`; without one Redis refuses, which is fine (see reapply). */
  private async saveAcl(): Promise<void> {
    await this.acl('SAVE').catch(() => undefined);
  }
}

/** `url` with its user and password replaced. */
export function withCredentials(url: string, username: string, password: string): string {
  return withRedisCredentials(url, username, password);
}

import type { RedisOptions } from 'ioredis';
import { systemClock, silentLogger, type Clock, type Logger } from '@tandem/common';
import { RolloutQueue } from './rollout-queue.js';
import { RunEvents } from './run-events.js';
import { PromptQueue } from './prompt-queue.js';
import { runKeys } from './keys.js';
import { GeneratorRegistry } from './generator-registry.js';
import { RunJournal } from './run-journal.js';
import { createRedisClient, type RedisClient } from './redis-connection.js';

/** Options for {@link RolloutStore.create}. */
export interface RolloutStoreOptions {
  /**
   * Redis URL, e.g. redis://127.0.0.1:6379; also the Cluster and Sentinel
   * forms (redis+cluster://…, redis+sentinel://…; see parseRedisUrl).
   */
  redisUrl: string;
  /** Prefix of every key. @default 'tandem' */
  keyPrefix?: string;
  clock?: Clock;
  log?: Logger;
  /** Extra ioredis options (TLS, password). */
  redisOptions?: RedisOptions;
  /** The control-plane leader's fencing token for every run's queue (see RolloutQueueDeps). */
  fencingToken?: () => number | undefined;
  /**
   * Subscribe to this run's channels only (`<prefix>:{<runId>}:*`), not to
   * every run's: a rollout worker's per-run Redis user may use its run's
   * channels only, and Redis ACLs match PSUBSCRIBE patterns literally.
   */
  onlyRun?: string;
}

/**
 * The process's connections to the rollout queues of all runs: one command
 * connection, one subscriber for wake-up events, and a BullMQ connection
 * factory. `forRun` hands out cheap per-run views. Every connection comes
 * from createRedisClient, so the same code runs on one node, a
 * Sentinel-managed master or a Redis Cluster.
 */
export class RolloutStore {
  readonly redis: RedisClient;
  /** Every run's journal (the events `tandem runs get` shows). */
  readonly journal: RunJournal;
  private readonly events: RunEvents;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly keyPrefix: string;
  private readonly redisUrl: string;
  private readonly redisOptions: RedisOptions;
  private readonly queues = new Map<string, RolloutQueue>();
  /** Connections handed to BullMQ, which never closes a client it is given. */
  private readonly bullClients = new Set<RedisClient>();
  private readonly fencingToken: (() => number | undefined) | undefined;

  private constructor(redis: RedisClient, events: RunEvents, options: RolloutStoreOptions) {
    this.redis = redis;
    this.events = events;
    this.clock = options.clock ?? systemClock;
    this.log = options.log ?? silentLogger();
    this.keyPrefix = options.keyPrefix ?? 'tandem';
    this.redisUrl = options.redisUrl;
    this.redisOptions = options.redisOptions ?? {};
    this.fencingToken = options.fencingToken;
    this.journal = new RunJournal(redis, { keyPrefix: this.keyPrefix, clock: this.clock, log: this.log });
  }

  /** Connects and subscribes; rejects when Redis cannot be reached. */
  static async create(options: RolloutStoreOptions): Promise<RolloutStore> {
    const log = options.log ?? silentLogger();
    const connect = (): RedisClient =>
      createRedisClient(options.redisUrl, { lazyConnect: true, ...(options.redisOptions ? { redisOptions: options.redisOptions } : {}) });
    const redis = connect();
    // Without a listener ioredis prints "Unhandled error event" for every
    // failed reconnect while Redis restarts; it reconnects by itself, and a
    // command that runs out of retries fails where it was issued.
    redis.on('error', (err: unknown) => log.warn({ err }, 'redis connection error (reconnecting)'));
    try {
      await redis.connect();
      const pattern = options.onlyRun === undefined ? `${options.keyPrefix ?? 'tandem'}:*:events` : runKeys(options.onlyRun, options.keyPrefix ?? 'tandem').pattern;
      const events = new RunEvents(connect(), pattern, log);
      await events.whenReady().catch(async (err: unknown) => {
        await events.close();
        throw err;
      });
      return new RolloutStore(redis, events, options);
    } catch (err) {
      redis.disconnect();
      throw err;
    }
  }

  /** The rollout queue of one run (call `init` on a new run). */
  forRun(runId: string): RolloutQueue {
    let queue = this.queues.get(runId);
    if (!queue) {
      queue = new RolloutQueue(runId, {
        redis: this.redis,
        events: this.events,
        clock: this.clock,
        log: this.log,
        keyPrefix: this.keyPrefix,
        ...(this.fencingToken ? { fencingToken: this.fencingToken } : {}),
      });
      this.queues.set(runId, queue);
    }
    return queue;
  }

  /**
   * The BullMQ queue of admitted prompts of one run, on its own connections
   * (the queue's, and the workers' with no retry limit, as BullMQ requires);
   * they close with the prompt queue or with this store.
   */
  promptQueue(runId: string): PromptQueue {
    const connect = (maxRetriesPerRequest: number | null): RedisClient => {
      const client = createRedisClient(this.redisUrl, {
        lazyConnect: true,
        maxRetriesPerRequest,
        redisOptions: this.redisOptions,
      });
      this.bullClients.add(client);
      return client;
    };
    const release = (client: RedisClient): void => {
      this.bullClients.delete(client);
      client.disconnect();
    };
    return new PromptQueue({
      prefix: runKeys(runId, this.keyPrefix).bullPrefix,
      connection: connect(20),
      workerConnection: () => connect(null),
      release,
    });
  }

  /** The generator membership of one run. */
  generators(runId: string): GeneratorRegistry {
    return new GeneratorRegistry(this.redis, runId, this.keyPrefix);
  }

  /** Resolves on the next event of the run (any change) or after `timeoutMs`. */
  nextRunEvent(runId: string, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    return this.events.next(runKeys(runId, this.keyPrefix).events, timeoutMs, signal);
  }

  /** {@link nextRunEvent} with `cancel()` for a caller that stops waiting early. */
  runEventWaiter(runId: string, timeoutMs: number, signal?: AbortSignal): { promise: Promise<void>; cancel: () => void } {
    return this.events.waiter(runKeys(runId, this.keyPrefix).events, timeoutMs, signal);
  }

  /** Forgets the per-run view (the run's keys stay until `destroy`). */
  forget(runId: string): void {
    this.queues.delete(runId);
  }

  async close(): Promise<void> {
    await this.events.close();
    for (const client of this.bullClients) client.disconnect();
    this.bullClients.clear();
    this.redis.disconnect();
  }
}

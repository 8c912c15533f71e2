import { Redis, type RedisOptions } from 'ioredis';
import { systemClock, silentLogger, type Clock, type Logger } from '@tandem/common';
import { RolloutQueue } from './rollout-queue.js';
import { RunEvents } from './run-events.js';
import { PromptQueue } from './prompt-queue.js';
import { runKeys } from './keys.js';
import { GeneratorRegistry } from './generator-registry.js';

/** Options for {@link RolloutStore.create}. */
export interface RolloutStoreOptions {
  /** Redis URL, e.g. redis://127.0.0.1:6379. */
  redisUrl: string;
  /** Prefix of every key. @default 'tandem' */
  keyPrefix?: string;
  clock?: Clock;
  log?: Logger;
  /** Extra ioredis options (TLS, password). */
  redisOptions?: RedisOptions;
}

/**
 * The process's connections to the rollout queues of all runs: one command
 * connection, one subscriber for wake-up events, and a BullMQ connection
 * factory. `forRun` hands out cheap per-run views.
 */
export class RolloutStore {
  readonly redis: Redis;
  private readonly events: RunEvents;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly keyPrefix: string;
  private readonly redisUrl: string;
  private readonly redisOptions: RedisOptions;
  private readonly queues = new Map<string, RolloutQueue>();

  private constructor(redis: Redis, events: RunEvents, options: RolloutStoreOptions) {
    this.redis = redis;
    this.events = events;
    this.clock = options.clock ?? systemClock;
    this.log = options.log ?? silentLogger();
    this.keyPrefix = options.keyPrefix ?? 'tandem';
    this.redisUrl = options.redisUrl;
    this.redisOptions = options.redisOptions ?? {};
  }

  /** Connects and subscribes; rejects when Redis cannot be reached. */
  static async create(options: RolloutStoreOptions): Promise<RolloutStore> {
    const log = options.log ?? silentLogger();
    const redis = new Redis(options.redisUrl, { lazyConnect: true, maxRetriesPerRequest: 20, ...options.redisOptions });
    await redis.connect();
    const subscriber = redis.duplicate();
    const events = new RunEvents(subscriber, `${options.keyPrefix ?? 'tandem'}:*:events`, log);
    await events.whenReady();
    return new RolloutStore(redis, events, options);
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
      });
      this.queues.set(runId, queue);
    }
    return queue;
  }

  /** The BullMQ queue of admitted prompts of one run (its own connection). */
  promptQueue(runId: string): PromptQueue {
    return new PromptQueue({
      prefix: runKeys(runId, this.keyPrefix).bullPrefix,
      connection: { url: this.redisUrl, ...this.redisOptions },
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
    this.redis.disconnect();
  }
}

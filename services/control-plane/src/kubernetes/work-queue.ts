import type { Clock, Logger } from '@tandem/common';

/**
 * A keyed work queue like client-go's: a key is processed by one worker at
 * a time; adding a key that is queued is a no-op, adding one that is being
 * processed runs it once more afterwards; a failed key is retried after a
 * per-key exponential backoff (capped) measured on the injected clock.
 */
export interface WorkQueueOptions {
  clock: Clock;
  log: Logger;
  /** Parallel workers. @default 4 */
  concurrency?: number;
  /** @default 200 */
  initialRetryMs?: number;
  /** @default 60000 */
  maxRetryMs?: number;
}

export class WorkQueue {
  private readonly o: WorkQueueOptions;
  private readonly queue: string[] = [];
  private readonly queued = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly controller = new AbortController();
  private waiters: Array<() => void> = [];
  private workers: Promise<void>[] = [];
  private handler: ((key: string) => Promise<void>) | undefined;
  private idleWaiters: Array<() => void> = [];

  constructor(options: WorkQueueOptions) {
    this.o = options;
  }

  add(key: string): void {
    if (this.controller.signal.aborted) return;
    if (this.processing.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (this.queued.has(key)) return;
    this.queued.add(key);
    this.queue.push(key);
    this.wakeAll();
  }

  /** Adds `key` after `ms` on the queue's clock. */
  addAfter(key: string, ms: number): void {
    this.o.clock.sleep(ms, this.controller.signal).then(
      () => this.add(key),
      () => undefined,
    );
  }

  /** Forgets a key's failure count (after a success). */
  forget(key: string): void {
    this.failures.delete(key);
  }

  start(handler: (key: string) => Promise<void>): void {
    this.handler = handler;
    const n = this.o.concurrency ?? 4;
    for (let i = 0; i < n; i++) this.workers.push(this.work());
  }

  async stop(): Promise<void> {
    this.controller.abort(new Error('work queue stopped'));
    this.wakeAll();
    await Promise.all(this.workers);
  }

  /** Resolves when nothing is queued or processing (tests). */
  idle(): Promise<void> {
    if (this.queue.length === 0 && this.processing.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private wakeAll(): void {
    this.waiters.splice(0).forEach((w) => w());
  }

  private async work(): Promise<void> {
    const signal = this.controller.signal;
    while (!signal.aborted) {
      const key = this.queue.shift();
      if (key === undefined) {
        await new Promise<void>((resolve) => this.waiters.push(resolve));
        continue;
      }
      this.queued.delete(key);
      this.processing.add(key);
      try {
        await this.handler?.(key);
        this.failures.delete(key);
      } catch (err) {
        const n = (this.failures.get(key) ?? 0) + 1;
        this.failures.set(key, n);
        const delay = Math.min(this.o.maxRetryMs ?? 60_000, (this.o.initialRetryMs ?? 200) * 2 ** Math.min(n - 1, 20));
        this.o.log.warn({ err, key, attempt: n, retryInMs: delay }, 'reconcile failed; will retry');
        this.addAfter(key, delay);
      } finally {
        this.processing.delete(key);
        if (this.dirty.delete(key)) this.add(key);
        if (this.queue.length === 0 && this.processing.size === 0) this.idleWaiters.splice(0).forEach((w) => w());
      }
    }
  }
}

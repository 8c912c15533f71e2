import type { Redis } from 'ioredis';
import type { Logger } from '@tandem/common';

/**
 * Wake-ups for waiters of one process. The Lua scripts PUBLISH on the run's
 * events channel whenever something a waiter may be blocked on changes
 * (a group finished, a slot freed, a step acked, the version moved, the run
 * closed). Waiters re-check Redis when woken, so a message carries no state
 * and a lost message costs at most one fallback re-check interval.
 */
export class RunEvents {
  private readonly waiters = new Map<string, Set<() => void>>();
  private readonly subscriber: Redis;
  private readonly ready: Promise<unknown>;

  constructor(subscriber: Redis, pattern: string, log: Logger) {
    this.subscriber = subscriber;
    subscriber.on('pmessage', (_pattern: string, channel: string) => this.wake(channel));
    // After a reconnect the subscription is restored by ioredis; wake
    // everybody so that nothing waits on a message published meanwhile.
    subscriber.on('ready', () => this.wakeAll());
    subscriber.on('error', (err: unknown) => log.warn({ err }, 'run events subscriber error'));
    this.ready = subscriber.psubscribe(pattern);
  }

  /** Resolves once the subscription is active. */
  whenReady(): Promise<unknown> {
    return this.ready;
  }

  /**
   * A promise that resolves on the next event of `channel`, or after
   * `timeoutMs`, or when `signal` aborts. Register it before checking
   * Redis, then await it: an event between the check and the wait is not lost.
   */
  next(channel: string, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    return this.waiter(channel, timeoutMs, signal).promise;
  }

  /**
   * Like {@link next}, with `cancel()` for a caller that no longer needs to
   * wait: it releases the timer and the abort listener at once (a loop that
   * registers a waiter per attempt would otherwise pile them up).
   */
  waiter(channel: string, timeoutMs: number, signal?: AbortSignal): { promise: Promise<void>; cancel: () => void } {
    let cancel: () => void = () => undefined;
    const promise = new Promise<void>((resolve) => {
      let set = this.waiters.get(channel);
      if (!set) {
        set = new Set();
        this.waiters.set(channel, set);
      }
      const done = (): void => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', done);
        const current = this.waiters.get(channel);
        current?.delete(done);
        if (current?.size === 0) this.waiters.delete(channel);
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, timeoutMs));
      signal?.addEventListener('abort', done, { once: true });
      set.add(done);
      cancel = done;
    });
    return { promise, cancel };
  }

  async close(): Promise<void> {
    this.wakeAll();
    this.subscriber.disconnect();
  }

  private wake(channel: string): void {
    const set = this.waiters.get(channel);
    if (!set) return;
    for (const fn of [...set]) fn();
  }

  private wakeAll(): void {
    for (const channel of [...this.waiters.keys()]) this.wake(channel);
  }
}

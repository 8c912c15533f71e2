import type { RedisClient } from './redis-connection.js';
import type { Logger } from '@tandem/common';

/** The message complete-10.lua publishes when a group finished (one per group). */
const FINISHED = 'finished';

/** A registered wait for the next event of a channel (see {@link RunEvents.waiter}). */
export interface EventWaiter {
  promise: Promise<void>;
  /** Stops waiting now: releases the timer and the abort listener. */
  cancel: () => void;
  /**
   * Lets up to `n − 1` "finished" messages pass without waking: the waiter
   * resolves on the `n`-th one counted since it was registered (at once when
   * that many already arrived), on any other message, on the timeout or on
   * abort. For a waiter that knows it cannot proceed before `n` more groups
   * finish. Counting from registration, which precedes the check the caller
   * made, can only wake it early, never late.
   */
  untilFinished: (n: number) => void;
}

/**
 * Wake-ups for waiters of one process. The Lua scripts PUBLISH on the run's
 * events channel whenever something a waiter may be blocked on changes
 * (a group finished, a slot freed, a step acked, the version moved, the run
 * closed). Waiters re-check Redis when woken, so a message carries no state
 * and a lost message costs at most one fallback re-check interval.
 * On a Redis Cluster a PUBLISH reaches the subscribers of every node, so
 * one pattern subscription on any node hears every run.
 */
export class RunEvents {
  private readonly waiters = new Map<string, Set<(message: string) => void>>();
  private readonly subscriber: RedisClient;
  private readonly ready: Promise<unknown>;

  constructor(subscriber: RedisClient, pattern: string, log: Logger) {
    this.subscriber = subscriber;
    subscriber.on('pmessage', (_pattern: string, channel: string, message: string) => this.wake(channel, message));
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
  waiter(channel: string, timeoutMs: number, signal?: AbortSignal): EventWaiter {
    let cancel: () => void = () => undefined;
    let finishedSeen = 0;
    let finishedNeeded = 1;
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
        current?.delete(onMessage);
        if (current?.size === 0) this.waiters.delete(channel);
        resolve();
      };
      const onMessage = (message: string): void => {
        if (message === FINISHED && ++finishedSeen < finishedNeeded) return;
        done();
      };
      const timer = setTimeout(done, Math.max(0, timeoutMs));
      signal?.addEventListener('abort', done, { once: true });
      set.add(onMessage);
      cancel = done;
    });
    const untilFinished = (n: number): void => {
      finishedNeeded = Math.max(1, n);
      if (finishedSeen >= finishedNeeded) cancel();
    };
    return { promise, cancel, untilFinished };
  }

  async close(): Promise<void> {
    this.wakeAll();
    this.subscriber.disconnect();
  }

  private wake(channel: string, message: string): void {
    const set = this.waiters.get(channel);
    if (!set) return;
    for (const fn of [...set]) fn(message);
  }

  private wakeAll(): void {
    for (const channel of [...this.waiters.keys()]) this.wake(channel, '');
  }
}

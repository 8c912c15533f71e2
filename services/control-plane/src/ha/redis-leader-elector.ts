import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Clock, Logger } from '@tandem/common';
import type { LeaderAddresses, RedisLeaderLock } from './redis-leader-lock.js';

/** Options of the {@link RedisLeaderElector}. */
export interface RedisLeaderElectorOptions {
  lock: RedisLeaderLock;
  clock: Clock;
  log: Logger;
  /** This process's holder id. @default `<hostname>-<pid>-<random>` */
  identity?: string;
  /** How long the lock outlives the last renewal. @default 10000 */
  leaseMs?: number;
  /** Period of renewals (leader) and campaigns (standby). @default 1000 */
  renewPeriodMs?: number;
  /**
   * A leader that has not renewed for this long steps down (< leaseMs, so it
   * stops working before anyone else may take the lock). @default leaseMs − 2 × renewPeriodMs
   */
  renewDeadlineMs?: number;
  /** Called on becoming leader with the new fencing token; the signal aborts when leadership is lost. */
  onStartedLeading: (token: number, signal: AbortSignal) => void;
  /** Called after losing leadership (or stopping while leader). */
  onStoppedLeading: (why: string) => void;
}

/** A unique holder id for this process. */
export function defaultHolderId(): string {
  return `${hostname()}-${process.pid}-${randomBytes(4).toString('hex')}`;
}

/**
 * Leader election over {@link RedisLeaderLock}, with the timing rules of
 * client-go's leaderelection (as the Kubernetes runtime's LeaderElector):
 *
 * - a standby campaigns every `renewPeriodMs`; the lock is free only once
 *   the holder released it or stopped renewing for `leaseMs` (Redis expires
 *   it, on Redis's clock, so replicas' clocks do not matter);
 * - the leader renews every `renewPeriodMs` and steps down when it has not
 *   renewed for `renewDeadlineMs`, counted from when the last successful
 *   renewal was *sent* (Redis extended the lease no earlier than that), by a
 *   watchdog timer independent of the renew loop, so a renewal stuck on a
 *   dead connection cannot keep it leading past its lease;
 * - a renewal refused (the lock expired and maybe went to someone else)
 *   steps down at once.
 *
 * Stepping down stops leader work synchronously (`onStoppedLeading`). What
 * a deposed leader still writes in the gap (a process paused past its lease
 * answers queued requests before its timers run) is refused by the runs'
 * fences: see RolloutQueue.raiseFence.
 */
export class RedisLeaderElector {
  readonly identity: string;
  private readonly o: RedisLeaderElectorOptions & { leaseMs: number; renewPeriodMs: number; renewDeadlineMs: number };
  private addresses: LeaderAddresses = { httpUrl: '', grpcAddress: '' };
  private leading = false;
  /** Bumped on every transition, so a late reply of an old term is ignored. */
  private term = 0;
  private currentToken = 0;
  private leadership: AbortController | undefined;
  private watchdog: AbortController | undefined;
  private controller: AbortController | undefined;
  private loop: Promise<void> | undefined;

  constructor(options: RedisLeaderElectorOptions) {
    const leaseMs = options.leaseMs ?? 10_000;
    const renewPeriodMs = options.renewPeriodMs ?? 1000;
    const renewDeadlineMs = options.renewDeadlineMs ?? leaseMs - 2 * renewPeriodMs;
    if (renewDeadlineMs >= leaseMs || renewDeadlineMs < renewPeriodMs) {
      throw new Error(`leader election: renewDeadlineMs (${renewDeadlineMs}) must be at least renewPeriodMs (${renewPeriodMs}) and below leaseMs (${leaseMs})`);
    }
    this.o = { ...options, leaseMs, renewPeriodMs, renewDeadlineMs };
    this.identity = options.identity ?? defaultHolderId();
  }

  isLeader(): boolean {
    return this.leading;
  }

  /** The fencing token of the current (or last) leadership; 0 before the first. */
  token(): number {
    return this.currentToken;
  }

  /** Starts campaigning; `addresses` are stored next to the lock for standbys to name. */
  start(addresses: LeaderAddresses): void {
    if (this.loop) return;
    this.addresses = addresses;
    this.controller = new AbortController();
    this.loop = this.run(this.controller.signal);
  }

  /**
   * Stops campaigning. With `release` (a clean stop) the lock is handed back
   * so a standby takes over at its next campaign rather than after the lease.
   */
  async stop(options: { release?: boolean } = {}): Promise<void> {
    this.controller?.abort(new Error('leader elector stopped'));
    await this.loop;
    this.loop = undefined;
    if (this.leading) {
      this.stepDown('stopped');
      if (options.release !== false) {
        await this.o.lock.release(this.identity).catch((err: unknown) => this.o.log.warn({ err }, 'releasing the leader lock failed'));
      }
    }
  }

  private async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      const term = this.term;
      const sentAt = this.o.clock.now();
      try {
        if (this.leading) {
          const held = await this.o.lock.renew(this.identity, this.o.leaseMs);
          if (term === this.term && this.leading) {
            if (held) this.armWatchdog(sentAt);
            else this.stepDown('the leader lock expired or was taken over');
          }
        } else {
          const result = await this.o.lock.acquire(this.identity, this.o.leaseMs, this.addresses, sentAt);
          if (result.acquired && !signal.aborted && term === this.term) this.becomeLeader(result.token, sentAt);
        }
      } catch (err) {
        this.o.log.warn({ err, leading: this.leading }, 'leader lock update failed');
      }
      await this.o.clock.sleep(this.o.renewPeriodMs, signal).catch(() => undefined);
    }
  }

  private becomeLeader(token: number, sentAt: number): void {
    this.term++;
    this.leading = true;
    this.currentToken = token;
    this.leadership = new AbortController();
    this.armWatchdog(sentAt);
    this.o.log.info({ identity: this.identity, token, ...this.addresses }, 'became leader');
    this.o.onStartedLeading(token, this.leadership.signal);
  }

  /** (Re)arms the step-down deadline: `renewDeadlineMs` after the last renewal that Redis accepted was sent. */
  private armWatchdog(sentAt: number): void {
    this.watchdog?.abort();
    const watchdog = new AbortController();
    this.watchdog = watchdog;
    const wait = Math.max(0, sentAt + this.o.renewDeadlineMs - this.o.clock.now());
    this.o.clock.sleep(wait, watchdog.signal).then(
      () => {
        if (this.watchdog === watchdog) this.stepDown(`could not renew the leader lock for ${this.o.renewDeadlineMs} ms`);
      },
      () => undefined,
    );
  }

  private stepDown(why: string): void {
    if (!this.leading) return;
    this.term++;
    this.leading = false;
    this.watchdog?.abort();
    this.watchdog = undefined;
    this.o.log.warn({ identity: this.identity, token: this.currentToken, why }, 'lost leadership');
    this.leadership?.abort(new Error(`leadership lost: ${why}`));
    this.o.onStoppedLeading(why);
  }
}

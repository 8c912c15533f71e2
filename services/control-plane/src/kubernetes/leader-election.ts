import type { Clock, Logger } from '@tandem/common';
import { isConflict, type KubeApi } from './kube-client.js';
import { LEASE, type KubeObject } from './resources.js';

/**
 * Leader election over a coordination.k8s.io/v1 Lease, as client-go's
 * leaderelection package does it:
 *
 * - a candidate takes the lease when it is free, or when the holder has not
 *   renewed it for `leaseDurationMs` — measured on the candidate's own clock
 *   from when it last *saw the lease record change*, never from the
 *   timestamps in the record, so clock skew between replicas cannot hand the
 *   lease to two holders;
 * - the leader renews every `retryPeriodMs` and steps down if it has not
 *   renewed for `renewDeadlineMs` (< leaseDuration, so it stops working
 *   before anyone else may start);
 * - writes are optimistic (PUT with the resourceVersion read): of two
 *   candidates racing, one gets 409 and stays a follower.
 *
 * Defaults: lease 15 s, renew deadline 10 s, retry 2 s (client-go's).
 */
export interface LeaderElectorOptions {
  api: KubeApi;
  namespace: string;
  /** Lease name. @default tandem-control-plane */
  leaseName?: string;
  /** This replica (the pod name). */
  identity: string;
  clock: Clock;
  log: Logger;
  /** @default 15000 */
  leaseDurationMs?: number;
  /** @default 10000 */
  renewDeadlineMs?: number;
  /** @default 2000 */
  retryPeriodMs?: number;
  /** Called on becoming leader; the signal aborts when leadership is lost. */
  onStartedLeading: (signal: AbortSignal) => void;
  /** Called after losing leadership (or stopping while leader). */
  onStoppedLeading: () => void;
}

interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

/** Lease timestamps are MicroTime: RFC 3339 with microseconds. */
function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}

export class LeaderElector {
  private readonly o: Required<Pick<LeaderElectorOptions, 'leaseName' | 'leaseDurationMs' | 'renewDeadlineMs' | 'retryPeriodMs'>> & LeaderElectorOptions;
  private leading = false;
  private observed: { record: string; at: number } | undefined;
  private lastRenewAt = 0;
  private controller: AbortController | undefined;
  private loop: Promise<void> | undefined;
  private leadership: AbortController | undefined;

  constructor(options: LeaderElectorOptions) {
    this.o = { leaseName: 'tandem-control-plane', leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000, ...options };
    if (this.o.renewDeadlineMs >= this.o.leaseDurationMs) throw new Error('renewDeadlineMs must be less than leaseDurationMs');
  }

  isLeader(): boolean {
    return this.leading;
  }

  /** Starts campaigning; returns at once. */
  start(): void {
    if (this.loop) return;
    this.controller = new AbortController();
    this.loop = this.run(this.controller.signal);
  }

  /**
   * Stops. With `release` (a graceful shutdown) the lease is handed back so
   * that the other replica takes over at its next retry, not after expiry.
   */
  async stop(options: { release?: boolean } = { release: true }): Promise<void> {
    this.controller?.abort(new Error('leader elector stopped'));
    await this.loop;
    this.loop = undefined;
    if (this.leading) {
      this.stepDown('stopped');
      if (options.release !== false) await this.release().catch((err: unknown) => this.o.log.warn({ err }, 'releasing the lease failed'));
    }
  }

  private async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      let ok = false;
      try {
        ok = await this.tryAcquireOrRenew();
      } catch (err) {
        this.o.log.warn({ err, lease: this.o.leaseName }, 'lease update failed');
      }
      const now = this.o.clock.now();
      if (ok) {
        this.lastRenewAt = now;
        if (!this.leading) {
          this.leading = true;
          this.leadership = new AbortController();
          this.o.log.info({ identity: this.o.identity, lease: this.o.leaseName }, 'became leader');
          this.o.onStartedLeading(this.leadership.signal);
        }
      } else if (this.leading && now - this.lastRenewAt >= this.o.renewDeadlineMs) {
        this.stepDown(`could not renew the lease for ${this.o.renewDeadlineMs} ms`);
      }
      await this.o.clock.sleep(this.o.retryPeriodMs, signal).catch(() => undefined);
    }
  }

  private stepDown(why: string): void {
    if (!this.leading) return;
    this.leading = false;
    this.o.log.warn({ identity: this.o.identity, why }, 'lost leadership');
    this.leadership?.abort(new Error(`leadership lost: ${why}`));
    this.o.onStoppedLeading();
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const now = this.o.clock.now();
    const { api, namespace, leaseName, identity } = this.o;
    const desired = (old: LeaseSpec | undefined): LeaseSpec => {
      const takingOver = old?.holderIdentity !== identity;
      return {
        holderIdentity: identity,
        leaseDurationSeconds: Math.ceil(this.o.leaseDurationMs / 1000),
        acquireTime: takingOver || !old?.acquireTime ? microTime(now) : old.acquireTime,
        renewTime: microTime(now),
        leaseTransitions: (old?.leaseTransitions ?? 0) + (takingOver && old?.holderIdentity ? 1 : 0),
      };
    };
    const lease = await api.get(LEASE, namespace, leaseName);
    if (!lease) {
      try {
        await api.create(LEASE, namespace, { metadata: { name: leaseName, namespace }, spec: desired(undefined) });
        this.observed = undefined;
        return true;
      } catch (err) {
        if (isConflict(err)) return false;
        throw err;
      }
    }
    const spec = (lease.spec ?? {}) as LeaseSpec;
    const record = JSON.stringify([spec.holderIdentity, spec.renewTime, lease.metadata.resourceVersion]);
    if (this.observed?.record !== record) this.observed = { record, at: now };
    const held = spec.holderIdentity !== undefined && spec.holderIdentity !== '' && spec.holderIdentity !== identity;
    const durationMs = (spec.leaseDurationSeconds ?? this.o.leaseDurationMs / 1000) * 1000;
    if (held && now < this.observed.at + durationMs) return false;
    const next: KubeObject = { ...lease, spec: { ...spec, ...desired(spec) } };
    try {
      await api.replace(LEASE, namespace, next);
      return true;
    } catch (err) {
      if (isConflict(err)) return false;
      throw err;
    }
  }

  private async release(): Promise<void> {
    const lease = await this.o.api.get(LEASE, this.o.namespace, this.o.leaseName);
    const spec = (lease?.spec ?? {}) as LeaseSpec;
    if (!lease || spec.holderIdentity !== this.o.identity) return;
    const now = this.o.clock.now();
    await this.o.api.replace(LEASE, this.o.namespace, {
      ...lease,
      spec: { ...spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: microTime(now) },
    });
  }
}

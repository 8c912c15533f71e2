import { ErrorCode, TandemError, type Clock, type Logger } from '@tandem/common';
import type { GeneratorRecord } from '@tandem/rollout-queue';
import { Semaphore } from './semaphore.js';

/** Where the pool learns the run's generators (the Redis registry). */
export interface GeneratorDirectory {
  list(): Promise<GeneratorRecord[]>;
  /**
   * Waits for the next membership or version change, or `timeoutMs`;
   * `cancel` releases the wait early.
   */
  nextChange(timeoutMs: number, signal?: AbortSignal): { promise: Promise<void>; cancel: () => void };
}

/** Options of the {@link GeneratorPool}. */
export interface GeneratorPoolOptions {
  /** Most requests in flight to one generator from this worker. */
  maxInFlightPerGenerator: number;
  /** Consecutive failures that take a generator out of rotation. */
  unhealthyAfterFailures: number;
  /** How long an unhealthy generator stays out before it is probed again. */
  probeAfterMs: number;
  /** How often the registry is re-read even without a change event. */
  refreshMs: number;
}

/** A generator handed out for one request. */
export interface Lease {
  id: string;
  url: string;
  /** Policy version the generator held when the request started. */
  policyVersion: number;
  /** Gives the permit back, reporting how the request went. */
  release(outcome: 'ok' | 'generator_fault' | 'other'): void;
}

interface Member {
  record: GeneratorRecord;
  permits: Semaphore;
  consecutiveFailures: number;
  /** Epoch ms until which this worker keeps it out of rotation. */
  benchedUntilMs: number;
  /** Out of rotation until a health probe succeeds. */
  benched: boolean;
  probing: boolean;
}

/**
 * This worker's view of the run's generators: which may serve a request for
 * a target step, how loaded each is, and which have failed too often.
 * A generator serves only when the registry says it holds weights
 * (`ready`, or `syncing` with in-flight updates) and its version is fresh
 * enough for the target (`target − version ≤ k`); the least-loaded of those
 * is chosen.
 */
export class GeneratorPool {
  private readonly members = new Map<string, Member>();
  private readonly options: GeneratorPoolOptions;
  private readonly directory: GeneratorDirectory;
  private readonly clock: Clock;
  private readonly log: Logger;
  private lastRefreshMs = 0;
  private readonly releaseWaiters = new Set<() => void>();

  private readonly probe: (url: string) => Promise<boolean>;

  constructor(
    directory: GeneratorDirectory,
    options: GeneratorPoolOptions,
    deps: { clock: Clock; log: Logger; probe: (url: string) => Promise<boolean> },
  ) {
    const { clock, log } = deps;
    this.probe = deps.probe;
    this.directory = directory;
    this.options = options;
    this.clock = clock;
    this.log = log;
  }

  /** Re-reads the registry. */
  async refresh(): Promise<void> {
    const records = await this.directory.list();
    const seen = new Set<string>();
    for (const record of records) {
      seen.add(record.id);
      const m = this.members.get(record.id);
      if (m) {
        // A generator that rejoined after a restart starts with a clean slate.
        if (m.record.url !== record.url || (m.record.state !== 'joining' && record.state === 'joining')) {
          m.consecutiveFailures = 0;
          m.benchedUntilMs = 0;
          m.benched = false;
        }
        m.record = record;
      } else {
        this.members.set(record.id, {
          record,
          permits: new Semaphore(this.options.maxInFlightPerGenerator),
          consecutiveFailures: 0,
          benchedUntilMs: 0,
          benched: false,
          probing: false,
        });
      }
    }
    for (const id of [...this.members.keys()]) if (!seen.has(id)) this.members.delete(id);
    this.lastRefreshMs = this.clock.now();
  }

  /**
   * A generator for a request whose result is for `targetStep`, waiting for
   * capacity, a fresh-enough generator or a healthy one. Rejects when
   * `signal` aborts.
   */
  async acquire(targetStep: number, maxAgeSteps: number, signal: AbortSignal): Promise<Lease> {
    let mustRefresh = false;
    for (;;) {
      if (signal.aborted) throw signal.reason ?? new Error('aborted');
      // Listen before looking: a registry change or a released permit that
      // lands between reading the registry and going to sleep must still
      // wake this caller (else it sleeps until the refresh timeout while a
      // fresh generator sits idle).
      let wake: () => void = () => undefined;
      const released = new Promise<void>((resolve) => {
        wake = resolve;
        this.releaseWaiters.add(resolve);
      });
      const change = this.directory.nextChange(this.options.refreshMs, signal);
      try {
        if (mustRefresh || this.clock.now() - this.lastRefreshMs > this.options.refreshMs) {
          // Redis unreachable (a restart, a failover) is no reason to fail
          // the group: choose from the membership last read, look again later.
          await this.refresh().catch((err: unknown) => {
            if (TandemError.from(err).code !== ErrorCode.Unavailable) throw err;
          });
        }
        const best = this.choose(targetStep, maxAgeSteps);
        if (best && best.permits.tryAcquire()) return this.lease(best);
        // Wait for a permit to come back, a probe to pass or the membership to change.
        mustRefresh = await Promise.race([released.then(() => false), change.promise.then(() => true)]);
      } finally {
        change.cancel();
        this.releaseWaiters.delete(wake);
      }
    }
  }

  /** The least-loaded generator fresh enough for `targetStep`, if any (starts due probes). */
  private choose(targetStep: number, maxAgeSteps: number): Member | undefined {
    const now = this.clock.now();
    let best: Member | undefined;
    for (const m of this.members.values()) {
      const { state, policyVersion } = m.record;
      if (state !== 'ready' && state !== 'syncing') continue;
      if (policyVersion < 0 || targetStep - policyVersion > maxAgeSteps) continue;
      if (m.benched) {
        if (m.benchedUntilMs <= now && !m.probing) this.startProbe(m);
        continue;
      }
      if (m.permits.inUse >= m.permits.capacity) continue;
      if (!best || m.permits.inUse < best.permits.inUse) best = m;
    }
    return best;
  }

  /** Load per generator, for metrics and tests. */
  load(): Array<{ id: string; inFlight: number; state: string; benched: boolean }> {
    return [...this.members.values()].map((m) => ({
      id: m.record.id,
      inFlight: m.permits.inUse,
      state: m.record.state,
      benched: m.benched,
    }));
  }

  private startProbe(m: Member): void {
    m.probing = true;
    this.probe(m.record.url)
      .catch(() => false)
      .then((healthy) => {
        m.probing = false;
        if (healthy) {
          m.benched = false;
          m.consecutiveFailures = 0;
          this.log.info({ generator: m.record.id }, 'generator passed its health probe; back in rotation');
        } else {
          m.benchedUntilMs = this.clock.now() + this.options.probeAfterMs;
        }
        this.wakeWaiters();
      });
  }

  private wakeWaiters(): void {
    for (const w of [...this.releaseWaiters]) w();
    this.releaseWaiters.clear();
  }

  /** Current version of a generator per the registry (for stamping). */
  async versionOf(id: string): Promise<number | undefined> {
    return (await this.recordOf(id))?.policyVersion;
  }

  /** A generator's registry record as it is now (undefined once it was removed). */
  async recordOf(id: string): Promise<GeneratorRecord | undefined> {
    await this.refresh();
    return this.members.get(id)?.record;
  }

  private lease(m: Member): Lease {
    let released = false;
    return {
      id: m.record.id,
      url: m.record.url,
      policyVersion: m.record.policyVersion,
      release: (outcome) => {
        if (released) return;
        released = true;
        m.permits.release();
        if (outcome === 'ok') m.consecutiveFailures = 0;
        else if (outcome === 'generator_fault') {
          m.consecutiveFailures++;
          if (m.consecutiveFailures >= this.options.unhealthyAfterFailures && !m.benched) {
            // Out of rotation until GET /health answers again.
            m.benched = true;
            m.benchedUntilMs = this.clock.now() + this.options.probeAfterMs;
            this.log.warn({ generator: m.record.id, url: m.record.url }, 'generator benched after consecutive failures');
          }
        }
        this.wakeWaiters();
      },
    };
  }
}

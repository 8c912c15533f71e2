import type { Clock } from '@tandem/common';

/**
 * A clock that moves only when a test says so. `sleep` resolves when
 * {@link advance} passes its deadline, so loops that wait (lease renewals,
 * backoff, status intervals) run in test time without real waiting.
 */
export class ManualClock implements Clock {
  private current: number;
  private sleepers: Array<{ at: number; resolve: () => void; reject: (e: unknown) => void; signal?: AbortSignal; onAbort?: () => void }> = [];

  constructor(startMs = Date.UTC(2026, 0, 1)) {
    this.current = startMs;
  }

  now(): number {
    return this.current;
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      const entry: (typeof this.sleepers)[number] = { at: this.current + Math.max(0, ms), resolve, reject };
      if (signal) {
        entry.signal = signal;
        entry.onAbort = () => {
          this.sleepers = this.sleepers.filter((s) => s !== entry);
          reject(signal.reason);
        };
        signal.addEventListener('abort', entry.onAbort, { once: true });
      }
      this.sleepers.push(entry);
    });
  }

  /** Sleepers waiting now. */
  get pending(): number {
    return this.sleepers.length;
  }

  /**
   * Moves time forward by `ms` in steps of at most `stepMs`, waking
   * sleepers in deadline order and letting the woken code run before the
   * next step. `realWaitMs` gives loopback HTTP round trips (a fake
   * apiserver) real time to finish between steps.
   */
  async advance(ms: number, options: { stepMs?: number; realWaitMs?: number } = {}): Promise<void> {
    const stepMs = options.stepMs ?? 100;
    const end = this.current + ms;
    while (this.current < end) {
      this.current = Math.min(end, this.current + stepMs);
      this.wake();
      await settle();
      if (options.realWaitMs) await new Promise<void>((r) => setTimeout(r, options.realWaitMs));
    }
  }

  private wake(): void {
    const due = this.sleepers.filter((s) => s.at <= this.current).sort((a, b) => a.at - b.at);
    this.sleepers = this.sleepers.filter((s) => s.at > this.current);
    for (const s of due) {
      if (s.signal && s.onAbort) s.signal.removeEventListener('abort', s.onAbort);
      s.resolve();
    }
  }
}

/** Lets pending promise callbacks and loopback I/O run. */
export async function settle(rounds = 3): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((r) => setImmediate(r));
}

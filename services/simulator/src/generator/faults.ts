import type { FaultConfig } from './config.js';
import type { MalformedKind } from './completions.js';
import { Prng, deriveSeed } from './sampler.js';

/**
 * Fault injection for `/v1/completions`. One draw per request, in arrival
 * order, from a stream seeded by the generator seed: with a fixed seed and
 * requests sent one after another, the exact sequence of faults is fixed, so
 * tests assert exact counts rather than timing.
 */

/** What to do with one completion request. */
export type FaultDecision =
  | { kind: 'none' }
  | { kind: 'error' }
  | { kind: 'hang' }
  | { kind: 'rate-limit'; retryAfterSeconds: number }
  | { kind: 'malformed'; malformed: MalformedKind };

/** Draws fault decisions in order. */
export class FaultInjector {
  private readonly rng: Prng;
  private answered = 0;

  constructor(
    private readonly config: FaultConfig,
    seed: number,
  ) {
    this.rng = new Prng(deriveSeed('tandem-sim-faults', seed));
  }

  /** The decision for the next request. Always draws, so the stream does not depend on the config. */
  next(): FaultDecision {
    const u = this.rng.next();
    const pick = this.rng.next();
    const f = this.config;
    let edge = f.errorFraction;
    if (u < edge) return { kind: 'error' };
    edge += f.hangFraction;
    if (u < edge) return { kind: 'hang' };
    edge += f.rateLimitFraction;
    if (u < edge) return { kind: 'rate-limit', retryAfterSeconds: f.retryAfterSeconds };
    edge += f.malformedFraction;
    if (u < edge) {
      const kinds = f.malformedKinds;
      const malformed = kinds[Math.min(kinds.length - 1, Math.floor(pick * kinds.length))] ?? 'bad-json';
      return { kind: 'malformed', malformed };
    }
    return { kind: 'none' };
  }

  /**
   * Counts an answered completion request; true once `dieAfterRequests`
   * have been answered (the process should then die).
   */
  recordAnswered(): boolean {
    this.answered++;
    return this.config.dieAfterRequests !== null && this.answered >= this.config.dieAfterRequests;
  }
}

import { describe, expect, it } from 'vitest';
import { fullJitterDelayMs, retryAfterMs } from './backoff.js';

describe('full-jitter backoff', () => {
  it('stays within [0, min(cap, base·2^attempt)] and grows', () => {
    expect(fullJitterDelayMs(0, 100, 10_000, () => 0.999)).toBe(99);
    expect(fullJitterDelayMs(3, 100, 10_000, () => 0.5)).toBe(400);
    expect(fullJitterDelayMs(20, 100, 10_000, () => 0.999)).toBe(9990);
    expect(fullJitterDelayMs(5, 100, 10_000, () => 0)).toBe(0);
  });

  it('spreads retries: different random draws give different delays', () => {
    let seed = 1;
    const random = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
    const delays = new Set(Array.from({ length: 50 }, () => fullJitterDelayMs(4, 100, 10_000, random)));
    expect(delays.size).toBeGreaterThan(40);
  });

  it('parses Retry-After in seconds and as an HTTP date', () => {
    expect(retryAfterMs('2', 0)).toBe(2000);
    expect(retryAfterMs(new Date(5000).toUTCString(), 1000)).toBe(4000);
    expect(retryAfterMs('soon', 0)).toBeUndefined();
    expect(retryAfterMs(null, 0)).toBeUndefined();
  });
});

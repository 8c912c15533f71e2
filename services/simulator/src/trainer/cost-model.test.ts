import { describe, expect, it } from 'vitest';
import { broadcastTimeMs, trainTimeMs } from './cost-model.js';
import { backoffDelayMs } from './backoff.js';

describe('trainTimeMs', () => {
  const model = { stepOverheadMs: 2000, msPerKiloToken: 40, timeScale: 1 };

  it('is the step overhead plus a per-kilotoken cost', () => {
    expect(trainTimeMs(model, 0)).toBe(2000);
    expect(trainTimeMs(model, 1000)).toBe(2040);
    expect(trainTimeMs(model, 65_536)).toBeCloseTo(2000 + 65.536 * 40, 9);
  });

  it('scales everything by timeScale', () => {
    expect(trainTimeMs({ ...model, timeScale: 0.001 }, 1000)).toBeCloseTo(2.04, 12);
    expect(trainTimeMs({ ...model, timeScale: 2 }, 500)).toBe(2 * (2000 + 20));
  });

  it('grows linearly in tokens', () => {
    const a = trainTimeMs(model, 10_000) - trainTimeMs(model, 0);
    const b = trainTimeMs(model, 20_000) - trainTimeMs(model, 10_000);
    expect(a).toBeCloseTo(b, 9);
  });

  it('rejects a negative or non-finite token count', () => {
    expect(() => trainTimeMs(model, -1)).toThrow(RangeError);
    expect(() => trainTimeMs(model, Number.NaN)).toThrow(/tokens/);
  });
});

describe('broadcastTimeMs', () => {
  it('is bytes over bandwidth, in scaled milliseconds', () => {
    expect(broadcastTimeMs(1e9, 10e9, 1)).toBe(100);
    expect(broadcastTimeMs(1e9, 10e9, 0.01)).toBeCloseTo(1, 12);
    expect(broadcastTimeMs(0, 10e9, 1)).toBe(0);
  });

  it('rejects a zero bandwidth', () => {
    expect(() => broadcastTimeMs(1, 0, 1)).toThrow(/bandwidth/);
  });
});

describe('backoffDelayMs', () => {
  const policy = { initialMs: 100, maxMs: 1000 };

  it('doubles from initialMs and stays within [ceiling/2, ceiling]', () => {
    expect(backoffDelayMs(policy, 0, () => 0)).toBe(50);
    expect(backoffDelayMs(policy, 0, () => 1)).toBe(100);
    expect(backoffDelayMs(policy, 1, () => 1)).toBe(200);
    expect(backoffDelayMs(policy, 2, () => 0.5)).toBe(300);
  });

  it('is capped at maxMs however many attempts failed', () => {
    expect(backoffDelayMs(policy, 4, () => 1)).toBe(1000);
    expect(backoffDelayMs(policy, 10_000, () => 1)).toBe(1000);
    expect(backoffDelayMs(policy, 10_000, () => 0)).toBe(500);
  });
});

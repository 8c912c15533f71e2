import { describe, expect, it } from 'vitest';
import { ControlPlaneMetrics } from '../metrics/control-plane-metrics.js';
import { ageStats } from './control-plane-hooks.js';

describe('age statistics for the RLRun status', () => {
  it('mean from the histogram, max as the smallest bucket bound holding every observation', async () => {
    const m = new ControlPlaneMetrics();
    expect(await ageStats(m, 'r')).toEqual({});
    for (const age of [0, 0, 1, 1, 1, 2]) m.trajectoryAge.observe({ run: 'r' }, age);
    m.trajectoryAge.observe({ run: 'other' }, 40);
    expect(await ageStats(m, 'r')).toEqual({ meanAgeSteps: 5 / 6, maxAgeSteps: 2 });
    m.trajectoryAge.observe({ run: 'r' }, 5);
    expect((await ageStats(m, 'r')).maxAgeSteps).toBe(6); // an upper bound above 4
  });
});

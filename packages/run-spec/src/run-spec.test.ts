import { describe, expect, it } from 'vitest';
import { TandemError } from '@tandem/common';
import { parseRunSpec, queueCapacityGroups, isValidRunId } from './run-spec.js';

const minimal = {
  model: { name: 'qwen2.5-0.5b' },
  dataset: { source: 'builtin', name: 'arithmetic' },
  reward: { kind: 'numeric' },
  maxSteps: 10,
};

function violations(input: unknown): string[] {
  try {
    parseRunSpec(input);
  } catch (err) {
    expect(err).toBeInstanceOf(TandemError);
    return (err as TandemError).fieldViolations.map((v) => v.path);
  }
  throw new Error('expected the spec to be rejected');
}

describe('run spec', () => {
  it('applies defaults', () => {
    const spec = parseRunSpec(minimal);
    expect(spec.algorithm).toMatchObject({ name: 'grpo', groupSize: 8, batchGroups: 16 });
    expect(spec.async).toMatchObject({ maxTrajectoryAgeSteps: 1, inFlightWeightUpdates: true });
    expect(spec.async.weightSync.timeoutMs).toBe(120_000);
    expect(queueCapacityGroups(spec)).toBe(32);
  });

  it('uses an explicit queue capacity', () => {
    const spec = parseRunSpec({ ...minimal, async: { maxTrajectoryAgeSteps: 0, queueCapacityGroups: 40 } });
    expect(queueCapacityGroups(spec)).toBe(40);
  });

  it('names every bad field', () => {
    const paths = violations({
      ...minimal,
      maxSteps: 0,
      algorithm: { groupSize: -1 },
      async: { maxTrajectoryAgeSteps: 1.5 },
    });
    expect(paths).toEqual(expect.arrayContaining(['maxSteps', 'algorithm.groupSize', 'async.maxTrajectoryAgeSteps']));
  });

  it('rejects unknown fields by name', () => {
    expect(violations({ ...minimal, async: { maxTrajectoryAge: 2 } })).toContain('async');
    const err = (() => {
      try {
        parseRunSpec({ ...minimal, async: { maxTrajectoryAge: 2 } });
      } catch (e) {
        return e as TandemError;
      }
      return undefined;
    })();
    expect(err?.message).toContain('maxTrajectoryAge');
  });

  it('rejects a capacity smaller than a batch, naming the field', () => {
    expect(violations({ ...minimal, algorithm: { batchGroups: 8 }, async: { queueCapacityGroups: 4 } })).toEqual([
      'async.queueCapacityGroups',
    ]);
  });

  it('rejects an invalid regex reward', () => {
    expect(violations({ ...minimal, reward: { kind: 'regex', pattern: '(' } })).toEqual(['reward.pattern']);
  });

  it('requires the core fields', () => {
    expect(violations({})).toEqual(expect.arrayContaining(['model', 'dataset', 'reward', 'maxSteps']));
    expect(violations(null)).toEqual(['']);
  });

  it('validates run ids as DNS labels', () => {
    expect(isValidRunId('run-1')).toBe(true);
    expect(isValidRunId('Run_1')).toBe(false);
    // A run id names Kubernetes Services, which must start with a letter (DNS-1035).
    expect(isValidRunId('42-exp')).toBe(false);
    expect(isValidRunId('exp-42')).toBe(true);
    expect(isValidRunId('-a')).toBe(false);
    expect(isValidRunId('a'.repeat(64))).toBe(false);
  });
});

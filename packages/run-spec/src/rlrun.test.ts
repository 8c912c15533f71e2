import { describe, expect, it } from 'vitest';
import { failureActionFor, parseRLRunSpec, RLRunSpecSchema } from './rlrun.js';
import { parseRunSpec, RunSpecSchema } from './run-spec.js';

const base = { model: { name: 'm' }, dataset: { source: 'builtin', name: 'arithmetic' }, reward: { kind: 'numeric' }, maxSteps: 3 };

describe('RLRun spec (the run spec plus the Kubernetes extension)', () => {
  it('accepts every plain run spec, with the same meaning and Kubernetes defaults added', () => {
    const rl = parseRLRunSpec(base);
    const plain = parseRunSpec(base);
    expect(rl).toMatchObject(plain);
    expect(rl).toMatchObject({
      suspend: false,
      generator: { replicas: 1, tensorParallelSize: 1 },
      trainer: { numNodes: 1, procsPerNode: 1 },
      rolloutWorkers: { replicas: 1, concurrency: 64 },
      failurePolicy: { maxRestarts: 3 },
    });
    expect(failureActionFor(rl, 'generator')).toBe('RestartRole');
  });

  it('keeps the run spec strict: extension fields are not run-spec fields', () => {
    expect(RunSpecSchema.safeParse({ ...base, suspend: true }).success).toBe(false);
    expect(RunSpecSchema.safeParse({ ...base, generator: { replicas: 1, image: 'x' } }).success).toBe(false);
    expect(RLRunSpecSchema.safeParse({ ...base, suspend: true, generator: { replicas: 1, image: 'x' } }).success).toBe(true);
  });

  it('keeps the run spec\'s cross-field rules', () => {
    expect(() => parseRLRunSpec({ ...base, algorithm: { batchGroups: 8 }, async: { queueCapacityGroups: 4 } })).toThrow(/async.queueCapacityGroups/);
  });

  it('names bad extension fields', () => {
    expect(() => parseRLRunSpec({ ...base, failurePolicy: { rules: [{ role: 'trainer', action: 'FailRun' }, { role: 'trainer', action: 'RestartRun' }] } })).toThrow(/failurePolicy.rules\[1\].role: duplicate rule for role trainer/);
    expect(() => parseRLRunSpec({ ...base, trainer: { checkpoint: { volumeClaimName: 'a', storage: { size: '1Gi' } } } })).toThrow(/trainer.checkpoint.storage/);
    expect(() => parseRLRunSpec({ ...base, generator: { resources: { limits: { 'nvidia.com/gpu': '1.5x' } } } })).toThrow(/generator.resources.limits.nvidia.com\/gpu/);
    expect(() => parseRLRunSpec({ ...base, trainer: { numNode: 2 } })).toThrow(/Unrecognized key: "numNode"/);
    const rl = parseRLRunSpec({ ...base, failurePolicy: { maxRestarts: 1, rules: [{ role: 'trainer', action: 'RestartRun' }] } });
    expect(failureActionFor(rl, 'trainer')).toBe('RestartRun');
    expect(rl.failurePolicy.maxRestarts).toBe(1);
  });
});

import { describe, expect, it } from 'vitest';
import { PromptGroup } from '@tandem/protocol';
import { syntheticGroup } from '@tandem/rollout-queue';
import { TandemError } from '@tandem/common';
import { buildTrainerReport, type StepStats } from './trainer-report.js';
import { checkBatch } from './batch-validation.js';
import { loadTrainerProcessConfig } from './config.js';

function stats(step: number, over: Partial<StepStats> = {}): StepStats {
  return { step, waitMs: 0, trainMs: 0, pulls: 1, groups: 2, tokens: 32, ages: [0, 1], maxAge: 1, meanAge: 0.5, reserved: false, droppedStale: 0, ...over };
}

const context = {
  runId: 'r',
  trainerId: 't',
  outcome: 'finished' as const,
  firstStep: 0,
  policyVersion: 2,
  reconnects: 0,
  weightSyncs: 0,
  weightSyncSeconds: 0,
  timeScale: 1,
};

describe('buildTrainerReport', () => {
  it('sums steps, computes the idle ratio and an age histogram', () => {
    const r = buildTrainerReport(
      [stats(0, { waitMs: 3000, trainMs: 1000, ages: [0, 0] }), stats(1, { waitMs: 1000, trainMs: 3000, ages: [1, 0], reserved: true, droppedStale: 2 })],
      context,
    );
    expect(r).toMatchObject({
      simulated: true,
      steps: 2,
      groups: 4,
      tokens: 64,
      waitSeconds: 4,
      trainSeconds: 4,
      idleRatio: 0.5,
      reservedBatches: 1,
      droppedStale: 2,
      ages: { max: 1, mean: 0.25, histogram: { '0': 3, '1': 1 } },
    });
    expect(r).not.toHaveProperty('runEnded');
  });

  it('reports an idle ratio of 0 before any step', () => {
    expect(buildTrainerReport([], context)).toMatchObject({ steps: 0, idleRatio: 0, ages: { max: 0, mean: 0, histogram: {} } });
  });
});

describe('checkBatch', () => {
  const encode = (g: PromptGroup): Uint8Array => PromptGroup.encode(g).finish();
  const good = (id: string, v: number): Uint8Array => encode(syntheticGroup(id, { groupSize: 2, tokensPerCompletion: 8, minPolicyVersion: v }));
  const expect2 = { step: 3, maxTrajectoryAgeSteps: 1, batchGroups: 2, groupSize: 2 };

  it('decodes a good batch and computes tokens and ages', () => {
    const b = checkBatch([good('a', 3), good('b', 2)], expect2);
    expect(b.tokens).toBe(32);
    expect(b.ages).toEqual([0, 1]);
    expect(b.groups.map((g) => g.groupId)).toEqual(['a', 'b']);
  });

  it('names every violation: size, staleness, G, lengths', () => {
    const short = syntheticGroup('c', { groupSize: 2, tokensPerCompletion: 8, minPolicyVersion: 3 });
    short.trajectories[1]!.logprobs = short.trajectories[1]!.logprobs.subarray(0, 12);
    const one = syntheticGroup('d', { groupSize: 1, tokensPerCompletion: 8, minPolicyVersion: 3 });
    let caught: unknown;
    try {
      checkBatch([good('a', 1), encode(short), encode(one)], expect2);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(TandemError);
    const paths = (caught as TandemError).fieldViolations.map((v) => v.path);
    expect(paths).toEqual(['groups', 'groups[0].minPolicyVersion', 'groups[1].trajectories[1].logprobs', 'groups[2].trajectories']);
    expect((caught as TandemError).message).toMatch(/age 2 \(step 3 − version 1\) is outside \[0, 1\]/);
  });

  it('learns G from the first group when the control plane does not say', () => {
    expect(() => checkBatch([good('a', 3), encode(syntheticGroup('b', { groupSize: 3, tokensPerCompletion: 4, minPolicyVersion: 3 }))], { ...expect2, groupSize: 0 })).toThrow(
      /groups\[1\]\.trajectories: expected 2 completions, got 3/,
    );
  });
});

describe('loadTrainerProcessConfig', () => {
  it('reads flags over env and applies defaults', () => {
    const c = loadTrainerProcessConfig({
      argv: ['--server', '10.0.0.1:7000', '--run-id=r1', '--time-scale', '0.01', '--crash-at-step', '2', '--checkpoint', '/tmp/c.json'],
      env: { TANDEM_TRAINER_MS_PER_KILO_TOKEN: '7', TANDEM_TRAINER_SERVER: 'ignored:1' },
    });
    expect(c.trainer).toMatchObject({
      server: '10.0.0.1:7000',
      runId: 'r1',
      crashAtStep: 2,
      checkpointPath: '/tmp/c.json',
      pullWaitMs: 10_000,
      maxReceiveMessageBytes: 256 * 1024 * 1024,
      cost: { timeScale: 0.01, msPerKiloToken: 7, stepOverheadMs: 2000 },
    });
    expect(c.logLevel).toBe('info');
  });

  it('names the bad flag', () => {
    expect(() => loadTrainerProcessConfig({ argv: ['--run-id', 'r', '--time-scale', 'fast'], env: {} })).toThrow(/--time-scale "fast"/);
    expect(() => loadTrainerProcessConfig({ argv: ['--run-id', 'r', '--reconnect-initial-ms', '500', '--reconnect-max-ms', '100'], env: {} })).toThrow(
      /--reconnect-max-ms "100": must be at least initialMs/,
    );
    expect(() => loadTrainerProcessConfig({ argv: ['--run-id', 'r', '--server', 'nohost'], env: {} })).toThrow(/--server "nohost": must be host:port/);
    expect(() => loadTrainerProcessConfig({ argv: ['--nope', '1'], env: {} })).toThrow(/unknown flag --nope/);
  });
});

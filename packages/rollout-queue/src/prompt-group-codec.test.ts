import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { PromptGroup } from '@tandem/protocol';
import type { TandemError } from '@tandem/common';
import { encodePromptGroup, encodePromptGroupBytes } from './prompt-group-codec.js';
import { syntheticGroup } from './synthetic-group.js';

const generated = (g: PromptGroup): Buffer => Buffer.from(PromptGroup.encode(g).finish());

const bytes = fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a));
const version = fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 300 }), fc.maxSafeInteger());
const text = fc.oneof(fc.constant(''), fc.string(), fc.string({ unit: 'grapheme' }), fc.string({ unit: 'binary' }));
const trajectory = fc.record({
  tokenIds: bytes,
  logprobs: bytes,
  reward: fc.oneof(fc.constant(0), fc.constant(-0), fc.double()),
  minPolicyVersion: version,
  maxPolicyVersion: version,
  finishReason: text,
  text,
  unscored: fc.boolean(),
});
const group = fc.record({
  groupId: text,
  promptId: text,
  targetStep: version,
  minPolicyVersion: version,
  maxPolicyVersion: version,
  promptTokenIds: bytes,
  trajectories: fc.array(trajectory, { maxLength: 5 }),
  promptText: text,
});

describe('encodePromptGroupBytes', () => {
  it('is byte-identical to the generated encoder on a benchmark-sized group', () => {
    const g = syntheticGroup('12345', { groupSize: 8, tokensPerCompletion: 1024, minPolicyVersion: 3, maxPolicyVersion: 4, targetStep: 4, promptId: 'p-7' });
    const fast = encodePromptGroupBytes(g);
    expect(fast.equals(generated(g))).toBe(true);
    expect(fast.byteLength).toBeGreaterThan(64 * 1024);
    const decoded = PromptGroup.decode(fast);
    expect(decoded.trajectories.map((t) => t.tokenIds.equals(g.trajectories[0]!.tokenIds))).toEqual(Array(8).fill(true));
    expect(generated(decoded).equals(fast)).toBe(true);
  });

  it('is byte-identical to the generated encoder on arbitrary groups', () => {
    fc.assert(
      fc.property(group, (g) => {
        expect(encodePromptGroupBytes(g).equals(generated(g))).toBe(true);
      }),
      { numRuns: 500, seed: 7 },
    );
  });

  it('falls back to the generated encoder for negative versions', () => {
    const g = syntheticGroup('1', { groupSize: 2, tokensPerCompletion: 3, minPolicyVersion: 0 });
    g.targetStep = -1;
    g.trajectories[0]!.maxPolicyVersion = -5;
    expect(encodePromptGroupBytes(g).equals(generated(g))).toBe(true);
  });
});

describe('encodePromptGroup logprob check', () => {
  const limits = { groupSize: 1, maxTokens: 8 };
  const withLogprobs = (values: number[], offset: number) => {
    const g = syntheticGroup('1', { groupSize: 1, tokensPerCompletion: values.length, minPolicyVersion: 0 });
    // Place the packed floats at `offset` inside a larger buffer (aligned or not).
    const backing = Buffer.alloc(values.length * 4 + offset);
    values.forEach((v, i) => backing.writeFloatLE(v, offset + i * 4));
    g.trajectories[0]!.logprobs = backing.subarray(offset);
    return g;
  };
  for (const offset of [0, 1]) {
    it(`reports the first logprob that is not <= 0 (${offset === 0 ? 'aligned' : 'unaligned'} bytes)`, () => {
      expect(() => encodePromptGroup(withLogprobs([-1, -0.5, 0, -Infinity], offset), limits)).not.toThrow();
      for (const [values, index] of [
        [[-1, 0.25, NaN], 1],
        [[-1, -2, NaN], 2],
        [[Infinity, -1], 0],
      ] as Array<[number[], number]>) {
        try {
          encodePromptGroup(withLogprobs(values, offset), limits);
          expect.unreachable();
        } catch (err) {
          expect((err as TandemError).fieldViolations?.map((v) => v.path)).toEqual([`trajectories[0].logprobs[${index}]`]);
        }
      }
    });
  }
});

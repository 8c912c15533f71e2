import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { TandemError } from '@tandem/common';
import { PromptGroup } from '@tandem/protocol';
import { MAX_GROUP_PAYLOAD_BYTES, encodePromptGroup } from './prompt-group-codec.js';
import { syntheticGroup } from './synthetic-group.js';

/**
 * Seeded property test of the finished-group size limit: a group whose
 * encoding is larger than `maxGroupBytes` is refused with INVALID_ARGUMENT
 * naming TANDEM_MAX_GROUP_BYTES and the limit; one at or under it is
 * encoded unchanged.
 */

describe('finished-group size limit (property)', () => {
  it('refuses exactly the groups over the limit, naming it', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 1, max: 256 }),
        fc.integer({ min: -2048, max: 2048 }),
        (groupSize, tokens, slack) => {
          const g = syntheticGroup('7', { groupSize, tokensPerCompletion: tokens, minPolicyVersion: 1, maxPolicyVersion: 2, targetStep: 2, promptId: 'p' });
          const size = PromptGroup.encode(g).finish().byteLength;
          const limit = Math.max(1, size + slack);
          const limits = { groupSize, maxTokens: 256, maxGroupBytes: limit };
          if (size <= limit) {
            expect(encodePromptGroup(g, limits).payload.byteLength).toBe(size);
            return;
          }
          let err: unknown;
          try {
            encodePromptGroup(g, limits);
          } catch (e) {
            err = e;
          }
          expect(err).toBeInstanceOf(TandemError);
          expect((err as TandemError).code).toBe('INVALID_ARGUMENT');
          expect((err as TandemError).message).toBe(
            `invalid prompt group: (root): encoded size ${size} bytes exceeds the limit of ${limit} bytes (TANDEM_MAX_GROUP_BYTES)`,
          );
        },
      ),
      { numRuns: 300, seed: 64 },
    );
  });

  it('defaults to MAX_GROUP_PAYLOAD_BYTES', () => {
    const g = syntheticGroup('8', { groupSize: 2, tokensPerCompletion: 4, minPolicyVersion: 0, maxPolicyVersion: 0, targetStep: 0, promptId: 'p' });
    expect(encodePromptGroup(g, { groupSize: 2, maxTokens: 4 }).payload.byteLength).toBeLessThan(MAX_GROUP_PAYLOAD_BYTES);
    expect(MAX_GROUP_PAYLOAD_BYTES).toBe(256 * 1024 * 1024);
  });
});

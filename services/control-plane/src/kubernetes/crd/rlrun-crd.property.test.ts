import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { RLRunSpecSchema, parseRLRunSpec } from '@tandem/run-spec';
import { TandemError } from '@tandem/common';
import { validateAgainstSchema } from '../testing/schema-validator.js';
import { rlrunOpenApiSchema } from './rlrun-crd.js';
import type { StructuralSchema } from './structural-schema.js';

/**
 * Seeded property test of the RLRun CRD's structural schema against the zod
 * schema it is generated from. The apiserver checks the structural schema
 * on `kubectl apply`; the control plane then parses the spec with zod. The
 * structural schema can say less than zod (no strict objects, no
 * refinements), never more: whatever zod accepts the apiserver must accept,
 * or a valid RLRun could not be created. What the apiserver accepts and zod
 * refuses reaches the reconciler, which reports the zod error naming the
 * field; both validators name fields, never throw.
 */

const specSchema = rlrunOpenApiSchema().properties?.spec as StructuralSchema;

const bases: unknown[] = [
  { model: { name: 'm' }, dataset: { source: 'builtin', name: 'arithmetic' }, reward: { kind: 'numeric' }, maxSteps: 3 },
  {
    model: { name: 'm', revision: 'r' },
    dataset: { source: 'inline', prompts: [{ prompt: 'p', answer: 'a', promptTokenIds: [1, 2] }] },
    reward: { kind: 'regex', pattern: 'a+' },
    algorithm: { groupSize: 4, batchGroups: 2, maxTokens: 64, temperature: 0.5 },
    async: { maxTrajectoryAgeSteps: 2, queueCapacityGroups: 8, weightSync: { timeoutMs: 1000 } },
    maxSteps: 5,
    generator: { replicas: 2, tensorParallelSize: 2, resources: { limits: { 'nvidia.com/gpu': 2 } }, tolerations: [{ key: 'gpu', operator: 'Exists' }], vllmArgs: ['--x'] },
    trainer: { numNodes: 1, procsPerNode: 2, env: [{ name: 'A', value: 'b' }], checkpoint: { storage: { size: '10Gi' } } },
    rolloutWorkers: { replicas: 1, concurrency: 4 },
    failurePolicy: { maxRestarts: 2, rules: [{ role: 'trainer', action: 'RestartRun' }] },
    suspend: false,
    activeDeadlineSeconds: 60,
    scheduling: { queueName: 'q' },
  },
];

type Json = unknown;
function paths(v: Json, prefix: Array<string | number> = []): Array<Array<string | number>> {
  const out: Array<Array<string | number>> = [prefix];
  if (Array.isArray(v)) v.forEach((x, i) => out.push(...paths(x, [...prefix, i])));
  else if (v !== null && typeof v === 'object') for (const [k, x] of Object.entries(v)) out.push(...paths(x, [...prefix, k]));
  return out;
}

function replaceAt(base: Json, at: Array<string | number>, value: Json, remove: boolean): Json {
  if (at.length === 0) return value;
  const copy = structuredClone(base) as Record<string | number, unknown>;
  let parent: Record<string | number, unknown> = copy;
  for (const p of at.slice(0, -1)) parent = parent[p] as Record<string | number, unknown>;
  const last = at[at.length - 1] as string | number;
  if (remove && !Array.isArray(parent)) delete parent[last];
  else parent[last] = value;
  return copy;
}

const replacement = fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.constantFrom(-1, 0, 1, 0.5, 2 ** 31, '', 'x'.repeat(300), '10Gi', 'lots', [], {}, null, true));
const mutated = fc
  .tuple(fc.constantFrom(...bases), fc.array(fc.tuple(fc.nat(), replacement, fc.boolean()), { minLength: 1, maxLength: 3 }))
  .map(([base, edits]) => {
    let v: Json = base;
    for (const [pick, value, remove] of edits) {
      const all = paths(v);
      v = replaceAt(v, all[pick % all.length] as Array<string | number>, value, remove);
    }
    return v;
  });

describe('RLRun CRD schema vs zod (property)', () => {
  it('accepts every spec zod accepts, and both name the fields they refuse', () => {
    let acceptedByZod = 0;
    fc.assert(
      fc.property(mutated, (spec) => {
        const crd = validateAgainstSchema(specSchema, spec, 'spec');
        for (const e of crd) {
          expect(e.field.startsWith('spec')).toBe(true);
          expect(e.message.length).toBeGreaterThan(0);
        }
        const zod = RLRunSpecSchema.safeParse(spec);
        if (zod.success) {
          acceptedByZod++;
          expect(crd, JSON.stringify(spec)).toEqual([]);
          return;
        }
        try {
          parseRLRunSpec(spec);
        } catch (err) {
          expect(err).toBeInstanceOf(TandemError);
          expect((err as TandemError).fieldViolations.length).toBeGreaterThan(0);
          return;
        }
        throw new Error('zod refused a spec that parseRLRunSpec accepted');
      }),
      { numRuns: 1500, seed: 2026 },
    );
    // The mutations must leave enough valid specs for the first half to mean something.
    expect(acceptedByZod).toBeGreaterThan(100);
  });
});

import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { TandemError, formatPath } from '@tandem/common';
import { RunSpecSchema, parseRunSpec } from './run-spec.js';
import { RLRunSpecSchema, parseRLRunSpec } from './rlrun.js';

/**
 * Seeded property tests of run-spec validation: arbitrary JSON values and
 * random mutations of valid specs (a field replaced, removed or added at
 * any depth) are either accepted — and then the parsed spec parses again
 * to itself — or rejected with INVALID_ARGUMENT whose message names each
 * violated field by its path. Nothing else is ever thrown.
 */

const valid: unknown[] = [
  { model: { name: 'm' }, dataset: { source: 'builtin', name: 'arithmetic' }, reward: { kind: 'numeric' }, maxSteps: 3 },
  {
    name: 'full',
    model: { name: 'qwen', revision: 'main' },
    dataset: { source: 'inline', prompts: [{ prompt: 'p', answer: 'a', promptTokenIds: [1, 2] }] },
    reward: { kind: 'remote', url: 'http://127.0.0.1:9/reward', timeoutMs: 1000 },
    algorithm: { name: 'grpo', groupSize: 4, batchGroups: 2, maxTokens: 64, temperature: 0.7 },
    async: { maxTrajectoryAgeSteps: 2, queueCapacityGroups: 8, inFlightWeightUpdates: false, weightSync: { timeoutMs: 1000 } },
    maxSteps: 10,
    generator: { replicas: 2 },
    rolloutWorkers: { replicas: 1, concurrency: 8 },
    failurePolicy: { maxRestarts: 1 },
    simulation: { timeScale: 0.01, seed: 3, generator: { medianOutputTokens: 32 }, trainer: { stepOverheadMs: 10 } },
  },
  { model: { name: 'm' }, dataset: { source: 'jsonl', path: '/data/p.jsonl' }, reward: { kind: 'regex', pattern: '\\d+' }, maxSteps: 1 },
];

const validRLRun: unknown[] = [
  ...valid,
  {
    model: { name: 'm' },
    dataset: { source: 'builtin', name: 'arithmetic' },
    reward: { kind: 'exact_match' },
    maxSteps: 5,
    generator: { replicas: 2, tensorParallelSize: 2, resources: { limits: { 'nvidia.com/gpu': 2 } }, tolerations: [{ key: 'gpu', operator: 'Exists' }] },
    trainer: { numNodes: 1, procsPerNode: 2, checkpoint: { storage: { size: '10Gi' } } },
    failurePolicy: { maxRestarts: 2, rules: [{ role: 'trainer', action: 'RestartRun' }] },
    suspend: false,
    scheduling: { queueName: 'q' },
  },
];

/** Values a mutation puts in place: JSON of every kind plus the edge cases schemas trip on. */
const replacement = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.constantFrom(-1, 0, 0.5, 1e308, -0, 2 ** 53, Number.NaN, Number.POSITIVE_INFINITY, '', 'x'.repeat(70_000), [], {}, null, true, '__proto__', 'constructor'),
);

type Json = unknown;
/** Every path to a value inside `v` (objects and arrays). */
function paths(v: Json, prefix: Array<string | number> = []): Array<Array<string | number>> {
  const out: Array<Array<string | number>> = [prefix];
  if (Array.isArray(v)) v.forEach((x, i) => out.push(...paths(x, [...prefix, i])));
  else if (v !== null && typeof v === 'object') for (const [k, x] of Object.entries(v)) out.push(...paths(x, [...prefix, k]));
  return out;
}

function mutate(base: Json, at: Array<string | number>, mode: number, value: Json, key: string): Json {
  const copy = structuredClone(base) as Record<string | number, unknown>;
  if (at.length === 0) return mode === 0 ? value : copy;
  let parent: Record<string | number, unknown> = copy;
  for (const p of at.slice(0, -1)) parent = parent[p] as Record<string | number, unknown>;
  const last = at[at.length - 1] as string | number;
  if (mode === 0) parent[last] = value;
  else if (mode === 1) {
    if (Array.isArray(parent)) parent.splice(Number(last), 1);
    else delete parent[last];
  } else {
    const target = parent[last];
    if (target !== null && typeof target === 'object' && !Array.isArray(target)) (target as Record<string, unknown>)[key] = value;
    else parent[last] = value;
  }
  return copy;
}

const mutation = (bases: unknown[]) =>
  fc
    .tuple(fc.constantFrom(...bases), fc.nat(), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 2 }), replacement, fc.string({ maxLength: 10 })), { minLength: 1, maxLength: 3 }))
    .map(([base, _seed, edits]) => {
      let v: Json = base;
      for (const [pick, mode, value, key] of edits) {
        const all = paths(v);
        v = mutate(v, all[pick % all.length] as Array<string | number>, mode, value, key);
      }
      return v;
    });

/** Accepted specs round-trip; rejected ones name every violated field. */
function checkOutcome(parse: (v: unknown) => unknown, schema: { safeParse: (v: unknown) => { success: boolean; error?: { issues: Array<{ path: PropertyKey[] }> } } }, input: unknown): void {
  let parsed: unknown;
  try {
    parsed = parse(input);
  } catch (err) {
    expect(err).toBeInstanceOf(TandemError);
    const e = err as TandemError;
    expect(e.code).toBe('INVALID_ARGUMENT');
    expect(e.fieldViolations.length).toBeGreaterThan(0);
    const issues = schema.safeParse(input).error?.issues ?? [];
    expect(issues.length).toBe(e.fieldViolations.length);
    for (const v of e.fieldViolations) {
      expect(v.message.length).toBeGreaterThan(0);
      // The message carries each violation with its path ((root) for the top level).
      expect(e.message).toContain(`${v.path || '(root)'}: `);
    }
    expect(e.fieldViolations.map((v) => v.path).sort()).toEqual(issues.map((i) => formatPath(i.path)).sort());
    return;
  }
  // Accepted: the stored spec is valid as it is, and parsing it again changes nothing.
  // (Compared as JSON, the form it is stored in: -0 is stored as 0.)
  const stored = JSON.stringify(parsed);
  expect(JSON.stringify(parse(JSON.parse(stored)))).toBe(stored);
}

describe('run spec validation (property)', () => {
  it('arbitrary JSON is accepted or rejected naming fields, never anything else', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 5 }), (v) => checkOutcome(parseRunSpec, RunSpecSchema, v)),
      { numRuns: 500, seed: 11 },
    );
  });

  it('mutations of valid specs are accepted (and round-trip) or rejected naming the mutated fields', () => {
    fc.assert(
      fc.property(mutation(valid), (v) => checkOutcome(parseRunSpec, RunSpecSchema, v)),
      { numRuns: 1500, seed: 12 },
    );
  });

  it('the same holds for RLRun specs', () => {
    fc.assert(
      fc.property(fc.oneof(mutation(validRLRun), fc.jsonValue({ maxDepth: 4 })), (v) => checkOutcome(parseRLRunSpec, RLRunSpecSchema, v)),
      { numRuns: 1000, seed: 13 },
    );
  });

  it('names the size limits of inline datasets: prompt length, token ids, prompt count', () => {
    const base = (prompts: unknown[]): unknown => ({ model: { name: 'm' }, dataset: { source: 'inline', prompts }, reward: { kind: 'exact_match' }, maxSteps: 1 });
    const cases: Array<[unknown, string, string]> = [
      [base([{ prompt: 'x'.repeat(65_537) }]), 'dataset.prompts[0].prompt', '65536'],
      [base([{ prompt: 'p', promptTokenIds: new Array(131_073).fill(1) }]), 'dataset.prompts[0].promptTokenIds', '131072'],
      [base(new Array(100_001).fill({ prompt: 'p' })), 'dataset.prompts', '100000'],
      [base([{ prompt: 'p', promptTokenIds: [2 ** 31] }]), 'dataset.prompts[0].promptTokenIds[0]', '2147483647'],
    ];
    for (const [input, path, limit] of cases) {
      const err = (() => {
        try {
          parseRunSpec(input);
        } catch (e) {
          return e as TandemError;
        }
        throw new Error(`accepted ${path}`);
      })();
      expect(err.fieldViolations.map((v) => v.path)).toContain(path);
      expect(err.fieldViolations.find((v) => v.path === path)?.message).toContain(limit);
    }
  });
});

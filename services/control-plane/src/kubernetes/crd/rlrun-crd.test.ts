import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { parse } from 'yaml';
import { RLRunSpecSchema } from '@tandem/run-spec';
import { formatPath } from '@tandem/common';
import { validateAgainstSchema } from '../testing/schema-validator.js';
import { rlrunCrd, rlrunCrdYaml, rlrunOpenApiSchema } from './rlrun-crd.js';
import { structuralViolations, toStructuralSchema, type JsonSchema, type StructuralSchema } from './structural-schema.js';

const ROOT = fileURLToPath(new URL('../../../../../', import.meta.url));

describe('the RLRun CRD', () => {
  it('is committed exactly as `pnpm gen:crd` generates it from the zod schemas', () => {
    const committed = readFileSync(`${ROOT}k8s/crd/rlruns.tandem.dev.yaml`, 'utf8');
    // On failure: `pnpm build && pnpm gen:crd`, and commit k8s/crd/rlruns.tandem.dev.yaml.
    expect(committed).toBe(rlrunCrdYaml());
    expect(parse(committed)).toEqual(rlrunCrd());
  });

  it('has a structural schema (no $ref, typed nodes, junctors without types)', () => {
    const schema = rlrunOpenApiSchema();
    expect(structuralViolations(schema)).toEqual([]);
    expect(JSON.stringify(schema)).not.toContain('$ref');
    expect(JSON.stringify(schema)).not.toContain('"additionalProperties":false');
    expect(JSON.stringify(schema)).not.toContain('"default"');
  });

  it('carries the Kubernetes extension: generator, trainer, rolloutWorkers, suspend, deadline, failure policy, scheduling', () => {
    const spec = rlrunOpenApiSchema().properties?.spec as StructuralSchema;
    const p = spec.properties ?? {};
    expect(Object.keys(p.generator?.properties ?? {})).toEqual(expect.arrayContaining(['replicas', 'image', 'tensorParallelSize', 'resources', 'nodeSelector', 'tolerations', 'vllmArgs']));
    expect(Object.keys(p.trainer?.properties ?? {})).toEqual(expect.arrayContaining(['image', 'numNodes', 'procsPerNode', 'resources', 'checkpoint']));
    expect(Object.keys(p.rolloutWorkers?.properties ?? {})).toEqual(expect.arrayContaining(['replicas', 'concurrency', 'resources']));
    expect(p.suspend?.type).toBe('boolean');
    expect(p.activeDeadlineSeconds).toMatchObject({ type: 'integer', minimum: 1 });
    expect(p.failurePolicy?.properties?.rules?.items?.properties?.action?.enum).toEqual(['RestartRole', 'RestartRun', 'FailRun']);
    expect(Object.keys(p.scheduling?.properties ?? {})).toEqual(['queueName', 'schedulerName', 'priorityClassName']);
    const gpu = p.generator?.properties?.resources?.properties?.limits?.additionalProperties;
    expect(gpu).toMatchObject({ 'x-kubernetes-int-or-string': true, anyOf: [{ type: 'integer' }, { type: 'string' }] });
    const status = rlrunOpenApiSchema().properties?.status as StructuralSchema;
    expect(status.properties?.conditions).toMatchObject({ 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['type'] });
    expect(Object.keys(status.properties?.progress?.properties ?? {})).toEqual(
      expect.arrayContaining(['trainerStep', 'policyVersion', 'minGeneratorVersion', 'maxGeneratorVersion', 'meanAgeSteps', 'maxAgeSteps', 'queueDepth', 'tokensPerSecond', 'lastUpdateTime']),
    );
    const crd = rlrunCrd() as any;
    expect(crd.spec.versions[0].additionalPrinterColumns.map((c: any) => c.name)).toEqual(['Phase', 'Step', 'Policy', 'Mean-Age', 'Queue', 'Generators', 'Age']);
    expect(crd.spec.versions[0].subresources).toEqual({ status: {} });
  });
});

describe('CRD schema and zod schema agree', () => {
  const specSchema = rlrunOpenApiSchema().properties?.spec as StructuralSchema;
  const base = (): any => ({ model: { name: 'm' }, dataset: { source: 'builtin', name: 'arithmetic' }, reward: { kind: 'numeric' }, maxSteps: 3 });

  it('both accept every example in k8s/examples', () => {
    const dir = `${ROOT}k8s/examples`;
    const files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));
    expect(files.length).toBeGreaterThanOrEqual(2);
    for (const f of files) {
      const o = parse(readFileSync(`${dir}/${f}`, 'utf8'));
      expect(validateAgainstSchema(specSchema, o.spec, 'spec'), f).toEqual([]);
      const zod = RLRunSpecSchema.safeParse(o.spec);
      expect(zod.success ? [] : zod.error.issues, f).toEqual([]);
    }
  });

  const invalid: Array<[string, (s: any) => void, string]> = [
    ['maxSteps 0', (s) => (s.maxSteps = 0), 'maxSteps'],
    ['unknown dataset source', (s) => (s.dataset = { source: 'csv' }), 'dataset.source'],
    ['regex reward without pattern', (s) => (s.reward = { kind: 'regex' }), 'reward.pattern'],
    ['negative generator replicas', (s) => (s.generator = { replicas: -1 }), 'generator.replicas'],
    ['tensorParallelSize 0', (s) => (s.generator = { tensorParallelSize: 0 }), 'generator.tensorParallelSize'],
    ['GPU quantity that is not one', (s) => (s.trainer = { resources: { limits: { 'nvidia.com/gpu': 'lots' } } }), 'trainer.resources.limits.nvidia.com/gpu'],
    ['toleration operator', (s) => (s.generator = { tolerations: [{ operator: 'Maybe' }] }), 'generator.tolerations[0].operator'],
    ['failure action', (s) => (s.failurePolicy = { rules: [{ role: 'trainer', action: 'Explode' }] }), 'failurePolicy.rules[0].action'],
    ['suspend as a string', (s) => (s.suspend = 'yes'), 'suspend'],
    ['missing model', (s) => delete s.model, 'model'],
  ];
  for (const [what, mutate, path] of invalid) {
    it(`both reject ${what}, naming ${path}`, () => {
      const s = base();
      mutate(s);
      const crdFields = validateAgainstSchema(specSchema, s, 'spec').map((e) => e.field.replace(/^spec\./, '').replace(/\[([^\]\d][^\]]*)\]/g, '.$1'));
      const zod = RLRunSpecSchema.safeParse(s);
      expect(zod.success).toBe(false);
      const zodFields = zod.success ? [] : zod.error.issues.map((i) => formatPath(i.path));
      expect(crdFields).toContain(path);
      expect(zodFields.some((f) => f === path || path.startsWith(f))).toBe(true);
    });
  }
});

describe('zod → structural schema', () => {
  const convert = (schema: z.ZodType): StructuralSchema => toStructuralSchema(z.toJSONSchema(schema, { io: 'input' }) as JsonSchema);

  it('turns a discriminated union into one object with a oneOf of required fields', () => {
    const s = convert(z.discriminatedUnion('kind', [z.strictObject({ kind: z.literal('a'), x: z.number() }), z.strictObject({ kind: z.literal('b'), y: z.string().optional() })]));
    expect(s).toEqual({
      type: 'object',
      properties: { kind: { type: 'string', enum: ['a', 'b'] }, x: { type: 'number' }, y: { type: 'string' } },
      required: ['kind'],
      oneOf: [
        { properties: { kind: { enum: ['a'] } }, required: ['kind', 'x'] },
        { properties: { kind: { enum: ['b'] } }, required: ['kind'] },
      ],
    });
    expect(structuralViolations(s)).toEqual([]);
  });

  it('converts draft-2020 exclusive bounds to OpenAPI 3.0 and drops safe-integer bounds', () => {
    expect(convert(z.number().int().positive())).toEqual({ type: 'integer', minimum: 1 });
    expect(convert(z.number().positive().lt(2))).toEqual({ type: 'number', minimum: 0, exclusiveMinimum: true, maximum: 2, exclusiveMaximum: true });
    expect(convert(z.number().int().nonnegative())).toEqual({ type: 'integer', minimum: 0 });
  });

  it('keeps maps and unknown values structural', () => {
    expect(convert(z.record(z.string(), z.string()))).toEqual({ type: 'object', additionalProperties: { type: 'string' } });
    expect(convert(z.object({ any: z.unknown() }))).toMatchObject({ properties: { any: { 'x-kubernetes-preserve-unknown-fields': true } } });
  });

  it('refuses what a structural schema cannot say', () => {
    expect(() => convert(z.union([z.string(), z.number()]))).toThrow(/not supported|unions of objects/);
    expect(() => convert(z.tuple([z.string(), z.number()]))).toThrow(/tuples/);
    expect(() => convert(z.union([z.strictObject({ a: z.string() }), z.strictObject({ b: z.string() })]))).toThrow(/discriminator/);
  });
});

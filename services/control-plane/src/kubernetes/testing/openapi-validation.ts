import { Lease } from 'kubernetes-models/coordination.k8s.io/v1/Lease';
import { EndpointSlice } from 'kubernetes-models/discovery.k8s.io/v1/EndpointSlice';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { StatefulSet } from 'kubernetes-models/apps/v1/StatefulSet';
import { Job } from 'kubernetes-models/batch/v1/Job';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Event } from 'kubernetes-models/v1/Event';
import { PersistentVolumeClaim } from 'kubernetes-models/v1/PersistentVolumeClaim';
import { Pod } from 'kubernetes-models/v1/Pod';
import { Secret } from 'kubernetes-models/v1/Secret';
import { Service } from 'kubernetes-models/v1/Service';
import type { FieldError, FieldErrorReason } from './schema-validator.js';

/**
 * Checks objects against Kubernetes' own OpenAPI schemas, as compiled into
 * the `kubernetes-models` package (generated from the upstream OpenAPI
 * spec; each model's `validate()` runs its kind's schema): types, required
 * fields, enums and formats such as quantities — what a real apiserver
 * needs to decode the object at all. It does not run the apiserver's Go
 * validation (name formats, immutable fields, cross-field rules;
 * `builtin-validation.ts` covers the part the controller relies on), and
 * the upstream schemas do not forbid unknown fields.
 *
 * Test-only: the package is a dev dependency of the control plane.
 */

/** What `kubernetes-models` exposes per kind: a class whose instances validate themselves. */
type ModelClass = new (data: never) => { validate(): void };

/** The kinds the fake apiserver serves, checked on every write. */
const SERVED: Record<string, ModelClass> = {
  'v1/Pod': Pod,
  'v1/Service': Service,
  'v1/ConfigMap': ConfigMap,
  'v1/Secret': Secret,
  'v1/PersistentVolumeClaim': PersistentVolumeClaim,
  'v1/Event': Event,
  'apps/v1/StatefulSet': StatefulSet,
  'apps/v1/Deployment': Deployment,
  'batch/v1/Job': Job,
  'coordination.k8s.io/v1/Lease': Lease,
  'discovery.k8s.io/v1/EndpointSlice': EndpointSlice,
};

/** One error as ajv reports it (the shape kubernetes-models' ValidationError carries). */
interface SchemaError {
  instancePath: string;
  keyword: string;
  message?: string;
  params: { missingProperty?: string; allowedValues?: unknown[] };
}

/** `/spec/containers/0/ports/0/containerPort` → `spec.containers[0].ports[0].containerPort`. */
function fieldPath(instancePath: string, missing?: string): string {
  const parts = instancePath.split('/').filter(Boolean);
  if (missing) parts.push(missing);
  return parts.reduce((path, p) => (/^\d+$/.test(p) ? `${path}[${p}]` : path ? `${path}.${p}` : p), '');
}

const REASONS: Record<string, FieldErrorReason> = { type: 'FieldValueTypeInvalid', required: 'FieldValueRequired', enum: 'FieldValueNotSupported' };

function run(Model: ModelClass, obj: object): FieldError[] {
  try {
    new Model(structuredClone(obj) as never).validate();
    return [];
  } catch (err) {
    const errors = (err as { errors?: SchemaError[] }).errors;
    if (!Array.isArray(errors)) return [{ reason: 'FieldValueInvalid', field: '', message: err instanceof Error ? err.message : String(err) }];
    return errors.map((e) => {
      const field = fieldPath(e.instancePath, e.params.missingProperty);
      const reason = REASONS[e.keyword] ?? 'FieldValueInvalid';
      const detail = e.keyword === 'enum' ? `supported values: ${(e.params.allowedValues ?? []).map((v) => JSON.stringify(v)).join(', ')}` : (e.message ?? e.keyword);
      return { reason, field, message: `${field}: ${detail}` };
    });
  }
}

/**
 * Schema errors of an object of a kind the fake apiserver serves ([] when
 * valid, or when the kind is not one of them). Synchronous, so that the
 * fake can run it on every create, update and patch.
 */
export function servedKindSchemaErrors(obj: { apiVersion?: unknown; kind?: unknown }): FieldError[] {
  const Model = SERVED[`${String(obj.apiVersion)}/${String(obj.kind)}`];
  return Model ? run(Model, obj) : [];
}

/** Module path inside kubernetes-models for an apiVersion ("v1" is the core group). */
function modulePath(apiVersion: string, kind: string): string {
  return `kubernetes-models/${apiVersion}/${kind}`;
}

const loaded = new Map<string, ModelClass | undefined>();

/**
 * The schema errors of any built-in object (manifests: RBAC, PDBs, CRDs…),
 * as one line each ([] when valid). An apiVersion/kind that Kubernetes does
 * not define (a custom resource, a typo) is an error too, so a test cannot
 * pass by naming a kind nobody checks.
 */
export async function validateAgainstKubernetesSchema(obj: { apiVersion?: unknown; kind?: unknown; metadata?: { name?: unknown } }): Promise<string[]> {
  const apiVersion = String(obj.apiVersion);
  const kind = String(obj.kind);
  const key = `${apiVersion}/${kind}`;
  if (!loaded.has(key)) {
    try {
      const mod = (await import(modulePath(apiVersion, kind))) as Record<string, unknown>;
      loaded.set(key, mod[kind] as ModelClass | undefined);
    } catch {
      loaded.set(key, undefined);
    }
  }
  const Model = loaded.get(key);
  if (!Model) return [`${apiVersion} ${kind}: not a built-in Kubernetes kind`];
  return run(Model, obj).map((e) => `${kind}/${String(obj.metadata?.name)}: ${e.message}`);
}

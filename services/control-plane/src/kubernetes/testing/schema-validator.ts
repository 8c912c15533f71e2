import type { StructuralSchema } from '../crd/structural-schema.js';

/**
 * Validates a custom resource against its CRD's structural OpenAPI v3
 * schema the way the apiserver does (k8s.io/apiextensions-apiserver on
 * kube-openapi's validator), with its error texts, so that tests can check
 * what `kubectl apply` prints. It covers what structural schemas hold:
 * type, required, enum, bounds (OpenAPI 3.0 boolean exclusive bounds),
 * lengths, pattern, items, formats `uri`/`date-time`, oneOf of
 * discriminated unions, int-or-string and preserve-unknown-fields.
 * CEL rules (`x-kubernetes-validations`) are not evaluated.
 */

/** metav1.StatusCause reasons the apiserver uses for field errors. */
export type FieldErrorReason =
  | 'FieldValueInvalid'
  | 'FieldValueRequired'
  | 'FieldValueNotSupported'
  | 'FieldValueTypeInvalid'
  | 'FieldValueTooLong'
  | 'FieldValueTooMany'
  | 'FieldValueForbidden';

/** One invalid field, as a StatusCause. */
export interface FieldError {
  reason: FieldErrorReason;
  field: string;
  message: string;
}

function show(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (v === null) return 'null';
  if (Array.isArray(v)) return '"array"';
  if (typeof v === 'object') return '"object"';
  return String(v);
}

function typeOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

const FORMATS: Record<string, (s: string) => boolean> = {
  uri: (s) => {
    try {
      const u = new URL(s);
      return u.protocol.length > 1;
    } catch {
      return false;
    }
  },
  'date-time': (s) => !Number.isNaN(Date.parse(s)) && /^\d{4}-\d{2}-\d{2}T/.test(s),
};

/** Validates `value` at `path` (dotted, e.g. `spec`) against `schema`. */
export function validateAgainstSchema(schema: StructuralSchema, value: unknown, path: string): FieldError[] {
  const errors: FieldError[] = [];
  const invalid = (message: string): void => void errors.push({ reason: 'FieldValueInvalid', field: path, message: `Invalid value: ${show(value)}: ${message}` });

  if (schema['x-kubernetes-int-or-string']) {
    if (!(typeof value === 'string' || (typeof value === 'number' && Number.isInteger(value)))) {
      errors.push({ reason: 'FieldValueTypeInvalid', field: path, message: `Invalid value: ${show(value)}: ${path} in body must be of type integer,string: ${show(typeOf(value))}` });
    } else if (typeof value === 'string' && schema.pattern && !new RegExp(schema.pattern).test(value)) {
      invalid(`${path} in body should match '${schema.pattern}'`);
    }
    return errors;
  }
  if (schema['x-kubernetes-preserve-unknown-fields'] && !schema.type) return errors;

  const actual = typeOf(value);
  const type = schema.type;
  const typeOk = type === undefined || actual === type || (type === 'number' && actual === 'integer');
  if (!typeOk) {
    errors.push({ reason: 'FieldValueTypeInvalid', field: path, message: `Invalid value: ${show(value)}: ${path} in body must be of type ${type}: ${show(actual)}` });
    return errors;
  }
  if (schema.enum && !schema.enum.some((e) => e === value)) {
    errors.push({
      reason: 'FieldValueNotSupported',
      field: path,
      message: `Unsupported value: ${show(value)}: supported values: ${schema.enum.map((e) => show(e)).join(', ')}`,
    });
  }
  if (typeof value === 'number') {
    if (schema.minimum !== undefined) {
      if (schema.exclusiveMinimum ? value <= schema.minimum : value < schema.minimum) {
        invalid(`${path} in body should be greater than ${schema.exclusiveMinimum ? '' : 'or equal to '}${schema.minimum}`);
      }
    }
    if (schema.maximum !== undefined) {
      if (schema.exclusiveMaximum ? value >= schema.maximum : value > schema.maximum) {
        invalid(`${path} in body should be less than ${schema.exclusiveMaximum ? '' : 'or equal to '}${schema.maximum}`);
      }
    }
  }
  if (typeof value === 'string') {
    const length = [...value].length;
    if (schema.minLength !== undefined && length < schema.minLength) invalid(`${path} in body should be at least ${schema.minLength} chars long`);
    if (schema.maxLength !== undefined && length > schema.maxLength) {
      errors.push({ reason: 'FieldValueTooLong', field: path, message: `Too long: may not be more than ${schema.maxLength} bytes` });
    }
    if (schema.pattern !== undefined && !new RegExp(schema.pattern, 'u').test(value)) invalid(`${path} in body should match '${schema.pattern}'`);
    const check = schema.format === undefined ? undefined : FORMATS[schema.format];
    if (check && !check(value)) invalid(`${path} in body must be of type ${schema.format}: ${show(value)}`);
  }
  if (Array.isArray(value)) {
    if (schema.minItems !== undefined && value.length < schema.minItems) invalid(`${path} in body should have at least ${schema.minItems} items`);
    if (schema.maxItems !== undefined && value.length > schema.maxItems) {
      errors.push({ reason: 'FieldValueTooMany', field: path, message: `Too many: ${value.length}: must have at most ${schema.maxItems} items` });
    }
    if (schema.items) value.forEach((item, i) => errors.push(...validateAgainstSchema(schema.items as StructuralSchema, item, `${path}[${i}]`)));
    const keys = schema['x-kubernetes-list-map-keys'];
    if (schema['x-kubernetes-list-type'] === 'map' && keys) {
      const seen = new Set<string>();
      value.forEach((item, i) => {
        const key = JSON.stringify(keys.map((k) => (item as Record<string, unknown>)?.[k]));
        if (seen.has(key)) errors.push({ reason: 'FieldValueInvalid', field: `${path}[${i}]`, message: `Duplicate value: ${key}` });
        seen.add(key);
      });
    }
  }
  if (actual === 'object') {
    const obj = value as Record<string, unknown>;
    for (const name of schema.required ?? []) {
      if (obj[name] === undefined) errors.push({ reason: 'FieldValueRequired', field: `${path}.${name}`, message: 'Required value' });
    }
    for (const [name, sub] of Object.entries(schema.properties ?? {})) {
      if (obj[name] !== undefined) errors.push(...validateAgainstSchema(sub, obj[name], `${path}.${name}`));
    }
    if (schema.additionalProperties) {
      for (const [name, v] of Object.entries(obj)) {
        if (!schema.properties?.[name]) errors.push(...validateAgainstSchema(schema.additionalProperties, v, `${path}[${name}]`));
      }
    }
    if (schema.oneOf && errors.length === 0) errors.push(...validateOneOf(schema.oneOf, obj, path));
  }
  return errors;
}

/**
 * oneOf of a discriminated union: exactly one branch must hold. When the
 * discriminator picks a branch, its own errors are reported (they name the
 * missing field), which is what a user needs to fix the object.
 */
function validateOneOf(branches: StructuralSchema[], obj: Record<string, unknown>, path: string): FieldError[] {
  const results = branches.map((b) => validateAgainstSchema({ ...b, type: 'object' }, obj, path));
  const passing = results.filter((r) => r.length === 0).length;
  if (passing === 1) return [];
  if (passing === 0) {
    const picked = branches.findIndex((b) =>
      Object.entries(b.properties ?? {}).every(([k, s]) => s.enum === undefined || s.enum.includes(obj[k])),
    );
    if (picked >= 0) return results[picked] ?? [];
  }
  return [{ reason: 'FieldValueInvalid', field: path, message: `Invalid value: "object": ${path} in body must validate one and only one schema (oneOf). Found ${passing === 0 ? 'none' : passing} valid` }];
}

/**
 * Paths of fields the schema does not declare (what pruning would drop),
 * as `.spec.foo` — the form `fieldValidation=Strict` reports them in.
 */
export function unknownFields(schema: StructuralSchema, value: unknown, path: string): string[] {
  if (schema['x-kubernetes-preserve-unknown-fields'] || schema['x-kubernetes-int-or-string']) return [];
  const out: string[] = [];
  if (Array.isArray(value) && schema.items) value.forEach((v, i) => out.push(...unknownFields(schema.items as StructuralSchema, v, `${path}[${i}]`)));
  else if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    for (const [name, v] of Object.entries(value as Record<string, unknown>)) {
      const sub = schema.properties?.[name] ?? schema.additionalProperties;
      if (!sub) out.push(`${path}.${name}`);
      else out.push(...unknownFields(sub, v, schema.properties?.[name] ? `${path}.${name}` : `${path}[${name}]`));
    }
  }
  return out;
}

/** Removes undeclared fields in place (structural pruning). */
export function prune(schema: StructuralSchema, value: unknown): void {
  if (schema['x-kubernetes-preserve-unknown-fields'] || schema['x-kubernetes-int-or-string']) return;
  if (Array.isArray(value) && schema.items) value.forEach((v) => prune(schema.items as StructuralSchema, v));
  else if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const obj = value as Record<string, unknown>;
    for (const name of Object.keys(obj)) {
      const sub = schema.properties?.[name] ?? schema.additionalProperties;
      if (!sub) delete obj[name];
      else prune(sub, obj[name]);
    }
  }
}

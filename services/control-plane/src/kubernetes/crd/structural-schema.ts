/**
 * Turns the JSON Schema that zod emits (`z.toJSONSchema`, draft 2020-12)
 * into a Kubernetes *structural* OpenAPI v3 schema, the only kind a v1 CRD
 * accepts (https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/#specifying-a-structural-schema):
 *
 * - every node has a `type`, except int-or-string and preserve-unknown-fields nodes;
 * - no `$ref`, no `additionalProperties: false` (unknown fields are pruned, or
 *   rejected by `fieldValidation=Strict`), no `default` (the controller applies
 *   the zod defaults, so there is one place that knows them);
 * - discriminated unions (`oneOf` of objects) become one object whose
 *   properties are the union of the branches', plus a `oneOf` that only
 *   says which discriminator value requires which fields (inside junctors
 *   structural schemas forbid type, description and default);
 * - draft-2020 numeric `exclusiveMinimum: n` becomes OpenAPI v3.0's
 *   `minimum` (+1 for integers) or `minimum: n, exclusiveMinimum: true`.
 *
 * Anything else that zod can emit but a structural schema cannot hold throws,
 * so a schema change that would silently weaken the CRD fails the build.
 */

/** A JSON Schema node as zod emits it (loosely typed: it is data). */
export type JsonSchema = { [key: string]: unknown };

/** A structural OpenAPI v3 schema node. */
export interface StructuralSchema {
  type?: 'object' | 'array' | 'string' | 'integer' | 'number' | 'boolean';
  description?: string;
  properties?: Record<string, StructuralSchema>;
  required?: string[];
  additionalProperties?: StructuralSchema;
  items?: StructuralSchema;
  enum?: unknown[];
  format?: string;
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: boolean;
  exclusiveMaximum?: boolean;
  minItems?: number;
  maxItems?: number;
  oneOf?: StructuralSchema[];
  anyOf?: StructuralSchema[];
  'x-kubernetes-int-or-string'?: true;
  'x-kubernetes-preserve-unknown-fields'?: true;
  'x-kubernetes-list-type'?: 'atomic' | 'set' | 'map';
  'x-kubernetes-list-map-keys'?: string[];
}

/** Formats the apiserver validates (k8s.io/apiextensions-apiserver, kube-openapi strfmt). */
const KUBE_FORMATS = new Set(['uri', 'email', 'hostname', 'ipv4', 'ipv6', 'cidr', 'mac', 'uuid', 'date', 'date-time', 'duration', 'byte', 'int32', 'int64', 'float', 'double', 'password']);

/** Converts zod's JSON Schema to a structural schema. `path` names the node in errors. */
export function toStructuralSchema(node: JsonSchema, path = ''): StructuralSchema {
  for (const key of Object.keys(node)) {
    if (key === '$ref' || key === '$defs' || key === 'definitions') {
      throw new Error(`${path || '(root)'}: ${key} is not allowed in a structural schema; zod must inline it`);
    }
  }
  const description = typeof node.description === 'string' ? node.description : undefined;
  if (node['x-kubernetes-int-or-string'] === true) return intOrString(node, description);
  const union = (node.oneOf ?? node.anyOf) as JsonSchema[] | undefined;
  if (union !== undefined) return objectUnion(union, description, path);
  if (node.const !== undefined || node.enum !== undefined) return enumNode(node, description, path);

  const type = node.type;
  if (type === undefined) {
    // `z.unknown()` / `z.any()`: keep whatever is there.
    return withExtensions(node, { ...(description ? { description } : {}), 'x-kubernetes-preserve-unknown-fields': true });
  }
  switch (type) {
    case 'object':
      return objectNode(node, description, path);
    case 'array': {
      if (typeof node.items !== 'object' || node.items === null || Array.isArray(node.items)) {
        throw new Error(`${path}: arrays need one items schema (tuples are not structural)`);
      }
      return withExtensions(node, {
        type: 'array',
        ...(description ? { description } : {}),
        items: toStructuralSchema(node.items as JsonSchema, `${path}[]`),
        ...num(node, 'minItems'),
        ...num(node, 'maxItems'),
      });
    }
    case 'string':
      return withExtensions(node, {
        type: 'string',
        ...(description ? { description } : {}),
        ...(typeof node.format === 'string' && KUBE_FORMATS.has(node.format) ? { format: node.format } : {}),
        ...(typeof node.pattern === 'string' ? { pattern: node.pattern } : {}),
        ...num(node, 'minLength'),
        ...num(node, 'maxLength'),
      });
    case 'integer':
    case 'number':
      return withExtensions(node, numeric(node, type === 'integer' ? 'integer' : 'number', description));
    case 'boolean':
      return withExtensions(node, { type: 'boolean', ...(description ? { description } : {}) });
    default:
      throw new Error(`${path}: type ${JSON.stringify(type)} is not supported in a structural schema`);
  }
}

function objectNode(node: JsonSchema, description: string | undefined, path: string): StructuralSchema {
  const props = node.properties as Record<string, JsonSchema> | undefined;
  const extra = node.additionalProperties;
  const out: StructuralSchema = { type: 'object', ...(description ? { description } : {}) };
  if (props && Object.keys(props).length > 0) {
    out.properties = {};
    for (const [name, sub] of Object.entries(props)) out.properties[name] = toStructuralSchema(sub, join(path, name));
    const required = (node.required as string[] | undefined) ?? [];
    if (required.length > 0) out.required = [...required];
  } else if (typeof extra === 'object' && extra !== null) {
    // A map (z.record): values have a schema, keys are free.
    out.additionalProperties = toStructuralSchema(extra as JsonSchema, `${path}[*]`);
  } else if (extra !== false) {
    out['x-kubernetes-preserve-unknown-fields'] = true;
  }
  return withExtensions(node, out);
}

/**
 * A discriminated union of objects: the structural core holds every
 * branch's properties; `oneOf` keeps which discriminator value goes with
 * which required fields.
 */
function objectUnion(branches: JsonSchema[], description: string | undefined, path: string): StructuralSchema {
  if (!branches.every((b) => b.type === 'object' && typeof b.properties === 'object')) {
    throw new Error(`${path}: only unions of objects (discriminated unions) are supported`);
  }
  const discriminator = findDiscriminator(branches, path);
  const properties: Record<string, StructuralSchema> = {};
  const discValues: unknown[] = [];
  const oneOf: StructuralSchema[] = [];
  for (const branch of branches) {
    const props = branch.properties as Record<string, JsonSchema>;
    for (const [name, sub] of Object.entries(props)) {
      if (name === discriminator) continue;
      const converted = toStructuralSchema(sub, join(path, name));
      const existing = properties[name];
      if (existing && JSON.stringify(existing) !== JSON.stringify(converted)) {
        throw new Error(`${join(path, name)}: branches of the union give this field different schemas`);
      }
      properties[name] = converted;
    }
    const value = constOf(props[discriminator] as JsonSchema);
    discValues.push(value);
    oneOf.push({
      properties: { [discriminator]: { enum: [value] } },
      required: [...new Set([discriminator, ...((branch.required as string[] | undefined) ?? [])])],
    });
  }
  if (!discValues.every((v) => typeof v === 'string')) throw new Error(`${join(path, discriminator)}: discriminator values must be strings`);
  return {
    type: 'object',
    ...(description ? { description } : {}),
    properties: { [discriminator]: { type: 'string', enum: discValues }, ...properties },
    required: [discriminator],
    oneOf,
  };
}

function findDiscriminator(branches: JsonSchema[], path: string): string {
  const first = branches[0]?.properties as Record<string, JsonSchema> | undefined;
  for (const name of Object.keys(first ?? {})) {
    if (branches.every((b) => constOf((b.properties as Record<string, JsonSchema>)[name]) !== undefined)) return name;
  }
  throw new Error(`${path}: union has no discriminator (a field with a literal value in every branch)`);
}

function constOf(node: JsonSchema | undefined): unknown {
  if (!node) return undefined;
  if (node.const !== undefined) return node.const;
  if (Array.isArray(node.enum) && node.enum.length === 1) return node.enum[0];
  return undefined;
}

function enumNode(node: JsonSchema, description: string | undefined, path: string): StructuralSchema {
  const values = node.const !== undefined ? [node.const] : (node.enum as unknown[]);
  const kinds = new Set(values.map((v) => typeof v));
  if (kinds.size !== 1) throw new Error(`${path}: enum values must share one type`);
  const kind = [...kinds][0];
  const type = kind === 'string' ? 'string' : kind === 'boolean' ? 'boolean' : kind === 'number' ? (values.every((v) => Number.isInteger(v)) ? 'integer' : 'number') : undefined;
  if (type === undefined) throw new Error(`${path}: enum of ${kind} is not supported`);
  return { type, ...(description ? { description } : {}), enum: [...values] };
}

function intOrString(node: JsonSchema, description: string | undefined): StructuralSchema {
  const branches = ((node.anyOf ?? node.oneOf) as JsonSchema[] | undefined) ?? [];
  const pattern = branches.find((b) => b.type === 'string')?.pattern;
  // The exact form controller-gen emits for resource.Quantity and IntOrString.
  return {
    ...(description ? { description } : {}),
    anyOf: [{ type: 'integer' }, { type: 'string' }],
    ...(typeof pattern === 'string' ? { pattern } : {}),
    'x-kubernetes-int-or-string': true,
  };
}

function numeric(node: JsonSchema, type: 'integer' | 'number', description: string | undefined): StructuralSchema {
  const out: StructuralSchema = { type, ...(description ? { description } : {}) };
  const safe = (v: unknown): v is number => typeof v === 'number' && Math.abs(v) < Number.MAX_SAFE_INTEGER;
  if (safe(node.minimum)) out.minimum = node.minimum;
  if (safe(node.maximum)) out.maximum = node.maximum;
  if (safe(node.exclusiveMinimum)) {
    if (type === 'integer') out.minimum = node.exclusiveMinimum + 1;
    else {
      out.minimum = node.exclusiveMinimum;
      out.exclusiveMinimum = true;
    }
  }
  if (safe(node.exclusiveMaximum)) {
    if (type === 'integer') out.maximum = node.exclusiveMaximum - 1;
    else {
      out.maximum = node.exclusiveMaximum;
      out.exclusiveMaximum = true;
    }
  }
  return out;
}

function num(node: JsonSchema, key: 'minItems' | 'maxItems' | 'minLength' | 'maxLength'): Partial<StructuralSchema> {
  const v = node[key];
  return typeof v === 'number' ? { [key]: v } : {};
}

/** Passes through `x-kubernetes-*` list annotations set with zod's `.meta()`. */
function withExtensions(node: JsonSchema, out: StructuralSchema): StructuralSchema {
  for (const key of ['x-kubernetes-list-type', 'x-kubernetes-list-map-keys', 'x-kubernetes-preserve-unknown-fields'] as const) {
    if (node[key] !== undefined) (out as Record<string, unknown>)[key] = node[key];
  }
  return out;
}

function join(path: string, name: string): string {
  return path ? `${path}.${name}` : name;
}

/**
 * Checks the structural rules the apiserver enforces on a CRD schema, so a
 * generated schema that a real cluster would refuse fails here first.
 * Returns the violations (empty when structural).
 */
export function structuralViolations(schema: StructuralSchema, path = '', inJunctor = false): string[] {
  const out: string[] = [];
  const where = path || '(root)';
  const s = schema as Record<string, unknown>;
  if (inJunctor) {
    for (const key of ['type', 'description', 'default', 'additionalProperties', 'nullable']) {
      if (s[key] !== undefined) out.push(`${where}: ${key} must not be set inside anyOf/oneOf/allOf/not`);
    }
  } else if (!schema.type && !schema['x-kubernetes-int-or-string'] && !schema['x-kubernetes-preserve-unknown-fields']) {
    out.push(`${where}: type must be set`);
  }
  if (schema.properties && schema.additionalProperties) out.push(`${where}: properties and additionalProperties are mutually exclusive`);
  if ('$ref' in s) out.push(`${where}: $ref is not allowed`);
  for (const [name, sub] of Object.entries(schema.properties ?? {})) out.push(...structuralViolations(sub, join(path, name), inJunctor));
  if (schema.items) out.push(...structuralViolations(schema.items, `${path}[]`, inJunctor));
  if (schema.additionalProperties) out.push(...structuralViolations(schema.additionalProperties, `${path}[*]`, inJunctor));
  for (const junctor of ['oneOf', 'anyOf'] as const) {
    const branches = schema[junctor];
    if (!branches) continue;
    const intOrString = schema['x-kubernetes-int-or-string'] && junctor === 'anyOf';
    for (const branch of branches) {
      if (intOrString) continue; // the one exception: anyOf [{type: integer}, {type: string}]
      out.push(...structuralViolations(branch, path, true));
      for (const name of Object.keys(branch.properties ?? {})) {
        if (!schema.properties?.[name]) out.push(`${join(path, name)}: field in ${junctor} is missing from the structural core`);
      }
    }
  }
  return out;
}

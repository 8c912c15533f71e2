import type { KubeObject } from '../resources.js';
import type { FieldError } from './schema-validator.js';

/**
 * A hand-written fraction of the real apiserver's validation of built-in
 * kinds: the rules a controller most easily breaks (names, labels,
 * selectors that match their template, containers with a name and an image,
 * quantities, extended resources with limit = request, Job restart policy,
 * immutable Job templates, Service ports). It is not the apiserver's full
 * validation; it exists so that tests fail when the controller builds an
 * object a real cluster would refuse for these reasons.
 */

const DNS_1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const QUALIFIED_NAME = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const QUANTITY = /^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$/;

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : {});
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

export function validateBuiltin(kind: string, o: KubeObject, old: KubeObject | undefined): FieldError[] {
  const errors: FieldError[] = [];
  const required = (field: string, detail = ''): void => void errors.push({ reason: 'FieldValueRequired', field, message: `Required value${detail ? `: ${detail}` : ''}` });
  const invalid = (field: string, value: unknown, why: string): void =>
    void errors.push({ reason: 'FieldValueInvalid', field, message: `Invalid value: ${JSON.stringify(value)}: ${why}` });

  const name = o.metadata.name ?? '';
  if (kind === 'Service') {
    // Service names are DNS-1035 labels: they must start with a letter.
    if (name.length > 63 || !DNS_1035_LABEL.test(name)) {
      invalid('metadata.name', name, "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character");
    }
  } else if (name.length > 253 || !DNS_SUBDOMAIN.test(name)) {
    invalid('metadata.name', name, "a lowercase RFC 1123 name must consist of lower case alphanumeric characters or '-'");
  }
  labels(o.metadata.labels, 'metadata.labels', invalid);

  const spec = obj(o.spec);
  switch (kind) {
    case 'StatefulSet':
    case 'Deployment': {
      if (typeof spec.replicas === 'number' && spec.replicas < 0) invalid('spec.replicas', spec.replicas, 'must be greater than or equal to 0');
      selectorMatches(spec, 'spec', required, invalid);
      if (kind === 'StatefulSet') {
        const policy = obj(obj(spec.template).spec).restartPolicy;
        if (policy !== undefined && policy !== 'Always') invalid('spec.template.spec.restartPolicy', policy, 'must be Always');
      }
      podSpec(obj(obj(spec.template).spec), 'spec.template.spec', required, invalid);
      labels(obj(obj(spec.template).metadata).labels as Record<string, string>, 'spec.template.metadata.labels', invalid);
      break;
    }
    case 'Job': {
      const tspec = obj(obj(spec.template).spec);
      const policy = tspec.restartPolicy;
      if (policy !== 'Never' && policy !== 'OnFailure') required('spec.template.spec.restartPolicy', 'valid values: "OnFailure", "Never"');
      if (spec.completionMode === 'Indexed' && typeof spec.completions !== 'number') required('spec.completions', 'when completion mode is Indexed');
      podSpec(tspec, 'spec.template.spec', required, invalid);
      if (old && JSON.stringify(obj(old.spec).template) !== JSON.stringify(spec.template) && obj(old.spec).suspend !== true) {
        invalid('spec.template', '...', 'field is immutable');
      }
      if (old && obj(old.spec).completions !== spec.completions && spec.completions !== spec.parallelism) invalid('spec.completions', spec.completions, 'field is immutable');
      break;
    }
    case 'Pod':
      podSpec(spec, 'spec', required, invalid);
      break;
    case 'Service': {
      const headless = spec.clusterIP === 'None';
      const ports = arr(spec.ports);
      if (ports.length === 0 && !headless) required('spec.ports');
      const names = new Set<string>();
      ports.forEach((p, i) => {
        const port = obj(p);
        if (typeof port.port !== 'number' || port.port < 1 || port.port > 65535) invalid(`spec.ports[${i}].port`, port.port, 'must be between 1 and 65535, inclusive');
        if (ports.length > 1 && typeof port.name !== 'string') required(`spec.ports[${i}].name`);
        if (typeof port.name === 'string') {
          if (names.has(port.name)) errors.push({ reason: 'FieldValueInvalid', field: `spec.ports[${i}].name`, message: `Duplicate value: ${JSON.stringify(port.name)}` });
          names.add(port.name);
        }
      });
      break;
    }
    case 'ConfigMap':
      for (const [k, v] of Object.entries(obj(o.data))) {
        if (typeof v !== 'string') invalid(`data[${k}]`, v, 'must be a string');
        if (!/^[-._a-zA-Z0-9]+$/.test(k)) invalid(`data[${k}]`, k, 'a valid config key must consist of alphanumeric characters, \'-\', \'_\' or \'.\'');
      }
      break;
    case 'PersistentVolumeClaim': {
      if (arr(spec.accessModes).length === 0) required('spec.accessModes');
      if (obj(obj(spec.resources).requests).storage === undefined) required('spec.resources[storage]');
      // Immutable after creation except the storage request (which this fake
      // lets through unchanged only: it does not compare quantities).
      const before = old ? obj(old.spec) : undefined;
      if (before && (JSON.stringify(before.accessModes) !== JSON.stringify(spec.accessModes) || before.storageClassName !== spec.storageClassName ||
        JSON.stringify(obj(before.resources).requests) !== JSON.stringify(obj(spec.resources).requests))) {
        errors.push({ reason: 'FieldValueForbidden', field: 'spec', message: 'Forbidden: spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims' });
      }
      break;
    }
    case 'Lease': {
      const d = spec.leaseDurationSeconds;
      if (d !== undefined && (typeof d !== 'number' || d <= 0)) invalid('spec.leaseDurationSeconds', d, 'must be greater than 0');
      break;
    }
  }
  return errors;
}

function labels(l: Record<string, string> | undefined, field: string, invalid: (f: string, v: unknown, why: string) => void): void {
  for (const [k, v] of Object.entries(l ?? {})) {
    if (!QUALIFIED_NAME.test(k) || k.split('/').at(-1)!.length > 63) invalid(field, k, 'name part must consist of alphanumeric characters, \'-\', \'_\' or \'.\'');
    if (typeof v !== 'string' || v.length > 63 || !LABEL_VALUE.test(v)) invalid(`${field}[${k}]`, v, 'a valid label must be an empty string or consist of alphanumeric characters, \'-\', \'_\' or \'.\', at most 63 characters');
  }
}

function selectorMatches(spec: Obj, field: string, required: (f: string) => void, invalid: (f: string, v: unknown, why: string) => void): void {
  const selector = obj(obj(spec.selector).matchLabels) as Record<string, string>;
  if (Object.keys(selector).length === 0) {
    required(`${field}.selector`);
    return;
  }
  const tmpl = obj(obj(obj(spec.template).metadata).labels) as Record<string, string>;
  if (!Object.entries(selector).every(([k, v]) => tmpl[k] === v)) {
    invalid(`${field}.template.metadata.labels`, tmpl, '`selector` does not match template `labels`');
  }
}

function podSpec(spec: Obj, field: string, required: (f: string, d?: string) => void, invalid: (f: string, v: unknown, why: string) => void): void {
  const containers = arr(spec.containers);
  if (containers.length === 0) required(`${field}.containers`);
  const all = [...containers.map((c, i) => [c, `${field}.containers[${i}]`] as const), ...arr(spec.initContainers).map((c, i) => [c, `${field}.initContainers[${i}]`] as const)];
  const names = new Set<string>();
  for (const [c, path] of all) {
    const container = obj(c);
    const name = container.name;
    if (typeof name !== 'string' || !DNS_LABEL.test(name)) required(`${path}.name`);
    else if (names.has(name)) invalid(`${path}.name`, name, 'Duplicate value');
    else names.add(name);
    if (typeof container.image !== 'string' || container.image === '') required(`${path}.image`);
    const resources = obj(container.resources);
    const limits = obj(resources.limits);
    const requests = obj(resources.requests);
    for (const [kindOf, values] of [['limits', limits], ['requests', requests]] as const) {
      for (const [r, q] of Object.entries(values)) {
        if (!(typeof q === 'number' || (typeof q === 'string' && QUANTITY.test(q)))) invalid(`${path}.resources.${kindOf}[${r}]`, q, 'must be a valid quantity');
      }
    }
    // Extended resources (GPUs) cannot be overcommitted: limit required, request = limit.
    for (const r of new Set([...Object.keys(limits), ...Object.keys(requests)])) {
      if (!r.includes('/') || r.startsWith('kubernetes.io/')) continue;
      if (limits[r] === undefined) required(`${path}.resources.limits[${r}]`, 'Limit must be set for non overcommitable resources');
      else if (requests[r] !== undefined && String(requests[r]) !== String(limits[r])) {
        invalid(`${path}.resources.requests[${r}]`, requests[r], `must be equal to ${r} limit of ${String(limits[r])}`);
      }
    }
    arr(container.ports).forEach((p, i) => {
      const port = obj(p).containerPort;
      if (typeof port !== 'number' || port < 1 || port > 65535) invalid(`${path}.ports[${i}].containerPort`, port, 'must be between 1 and 65535, inclusive');
    });
  }
  const vols = new Set(arr(spec.volumes).map((v) => obj(v).name));
  for (const [c, path] of all) {
    arr(obj(c).volumeMounts).forEach((m, i) => {
      const mount = obj(m);
      if (!vols.has(mount.name)) invalid(`${path}.volumeMounts[${i}].name`, mount.name, 'not found');
    });
  }
}

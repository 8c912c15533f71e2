import type { StructuralSchema } from '../crd/structural-schema.js';
import type { PrinterColumn } from '../crd/rlrun-crd.js';
import type { KubeObject, ResourceType } from '../resources.js';
import { CONFIGMAP, DEPLOYMENT, ENDPOINTSLICE, EVENT, JOB, LEASE, POD, PVC, SECRET, SERVICE, STATEFULSET } from '../resources.js';
import type { FieldError } from './schema-validator.js';
import { validateBuiltin } from './builtin-validation.js';
import { servedKindSchemaErrors } from './openapi-validation.js';

/** What the fake apiserver knows about one kind. */
export interface KindInfo extends ResourceType {
  singular: string;
  shortNames: string[];
  categories: string[];
  /** Has a `/status` subresource: the main resource ignores status, `/status` ignores the rest. */
  statusSubresource: boolean;
  /** A custom resource: validated by its schema; strategic merge patch is refused (415). */
  custom: boolean;
  /** `metadata.generation` counts spec changes. */
  tracksGeneration: boolean;
  schema?: StructuralSchema;
  printerColumns?: PrinterColumn[];
  /** Checks of built-in kinds: their OpenAPI schema and a fraction of the real apiserver's Go validation. */
  validate?: (obj: KubeObject, old: KubeObject | undefined) => FieldError[];
}

function builtin(t: ResourceType, extra: Partial<KindInfo> = {}): KindInfo {
  return {
    ...t,
    singular: t.kind.toLowerCase(),
    shortNames: [],
    categories: [],
    statusSubresource: false,
    custom: false,
    tracksGeneration: false,
    // Kubernetes' OpenAPI schema first (can the apiserver decode it at
    // all?), then the hand-written part of its Go validation.
    validate: (obj, old) => [...servedKindSchemaErrors(obj), ...validateBuiltin(t.kind, obj, old)],
    ...extra,
  };
}

/** The built-in kinds the fake serves: the ones Tandem's controller uses. */
export function builtinKinds(): KindInfo[] {
  return [
    builtin(POD, { shortNames: ['po'], categories: ['all'], statusSubresource: true }),
    builtin(SERVICE, { shortNames: ['svc'], categories: ['all'], statusSubresource: true }),
    builtin(CONFIGMAP, { shortNames: ['cm'] }),
    builtin(SECRET),
    builtin(PVC, { shortNames: ['pvc'], statusSubresource: true }),
    builtin(EVENT, { shortNames: ['ev'] }),
    builtin(STATEFULSET, { shortNames: ['sts'], categories: ['all'], statusSubresource: true, tracksGeneration: true }),
    builtin(DEPLOYMENT, { shortNames: ['deploy'], categories: ['all'], statusSubresource: true, tracksGeneration: true }),
    builtin(JOB, { categories: ['all'], statusSubresource: true, tracksGeneration: true }),
    builtin(LEASE),
    builtin(ENDPOINTSLICE),
  ];
}

/** A kind from a v1 CustomResourceDefinition object (its storage version). */
export function kindFromCrd(crd: Record<string, unknown>): KindInfo {
  const spec = crd.spec as {
    group: string;
    scope: string;
    names: { kind: string; plural: string; singular?: string; shortNames?: string[]; categories?: string[] };
    versions: Array<{ name: string; storage: boolean; subresources?: { status?: unknown }; schema?: { openAPIV3Schema: StructuralSchema }; additionalPrinterColumns?: PrinterColumn[] }>;
  };
  const version = spec.versions.find((v) => v.storage) ?? spec.versions[0];
  if (!version) throw new Error('CRD has no versions');
  return {
    group: spec.group,
    version: version.name,
    kind: spec.names.kind,
    plural: spec.names.plural,
    namespaced: spec.scope === 'Namespaced',
    singular: spec.names.singular ?? spec.names.kind.toLowerCase(),
    shortNames: spec.names.shortNames ?? [],
    categories: spec.names.categories ?? [],
    statusSubresource: version.subresources?.status !== undefined,
    custom: true,
    tracksGeneration: true,
    ...(version.schema ? { schema: version.schema.openAPIV3Schema } : {}),
    ...(version.additionalPrinterColumns ? { printerColumns: version.additionalPrinterColumns } : {}),
  };
}

/** `group/version/plural`, the store's key of a kind. */
export function kindKey(t: { group: string; version: string; plural: string }): string {
  return `${t.group}/${t.version}/${t.plural}`;
}

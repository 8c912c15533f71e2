import type { KubeObject } from '../resources.js';
import type { KindInfo } from './api-catalog.js';

/**
 * Server-side printing (`Accept: application/json;as=Table;g=meta.k8s.io;v=v1`),
 * which is how `kubectl get` gets its columns: a CRD's
 * additionalPrinterColumns, or Name and Age for other kinds.
 */

/** `.status.progress.trainerStep` → the value, or undefined. Only simple dotted paths. */
export function evalJsonPath(o: unknown, path: string): unknown {
  let cur: unknown = o;
  for (const part of path.replace(/^\./, '').split('.')) {
    if (part === '') continue;
    const m = /^([^[\]]+)(?:\[(\d+)\])?$/.exec(part);
    if (!m || cur === null || typeof cur !== 'object') return undefined;
    cur = (cur as Record<string, unknown>)[m[1] as string];
    if (m[2] !== undefined) cur = Array.isArray(cur) ? cur[Number(m[2])] : undefined;
  }
  return cur;
}

/** Kubernetes' HumanDuration (`45s`, `3m12s`, `5h`, `2d`). */
export function humanDuration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 10) return s % 60 === 0 ? `${m}m` : `${m}m${s % 60}s`;
  if (m < 180) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 8) return m % 60 === 0 ? `${h}h` : `${h}h${m % 60}m`;
  if (h < 48) return `${h}h`;
  const d = Math.floor(h / 24);
  if (d < 8) return h % 24 === 0 ? `${d}d` : `${d}d${h % 24}h`;
  if (d < 365 * 2) return `${d}d`;
  return `${Math.floor(d / 365)}y`;
}

/** A meta.k8s.io/v1 Table of `items`. */
export function toTable(kind: KindInfo, items: KubeObject[], now: number, resourceVersion: string): Record<string, unknown> {
  const columns = [
    { name: 'Name', type: 'string', format: 'name', description: 'Name must be unique within a namespace.', priority: 0 },
    ...(kind.printerColumns ?? [{ name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp', description: '', priority: 0 }]).map((c) => ({
      name: c.name,
      type: c.type,
      format: '',
      description: c.description ?? '',
      priority: c.priority ?? 0,
      jsonPath: c.jsonPath,
    })),
  ];
  const rows = items.map((o) => ({
    cells: columns.map((c) => {
      if (c.name === 'Name' && !('jsonPath' in c)) return o.metadata.name;
      const v = evalJsonPath(o, (c as { jsonPath: string }).jsonPath);
      if (c.type === 'date') return typeof v === 'string' ? humanDuration(now - Date.parse(v)) : '<unknown>';
      return v === undefined ? null : v;
    }),
    object: { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: o.metadata },
  }));
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: { resourceVersion },
    columnDefinitions: columns.map(({ name, type, format, description, priority }) => ({ name, type, format, description, priority })),
    rows,
  };
}

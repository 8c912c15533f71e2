import { randomUUID } from 'node:crypto';
import { parse as parseYaml } from 'yaml';
import type { KubeObject } from '../resources.js';
import { matchesSelector, type Requirement } from '../label-selector.js';
import { kindKey, type KindInfo } from './api-catalog.js';
import { apiErrors, ApiStatusError } from './api-errors.js';
import { clone, jsonPatch, mergePatch, serverSideApply, type FieldOwnership, type Json, type JsonPatchOp } from './patches.js';
import { prune, unknownFields, validateAgainstSchema, type FieldError } from './schema-validator.js';

/**
 * The fake apiserver's storage: objects by kind/namespace/name, one global
 * resourceVersion counter, a bounded event history for watches that resume,
 * finalizers, and garbage collection by ownerReferences (done synchronously
 * here; in a real cluster the controller-manager's garbage collector does it
 * shortly after).
 */

/** A change, as watches and the fake controllers see it. */
export interface StoreEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  kind: KindInfo;
  object: KubeObject;
  rv: number;
}

/** How unknown fields of custom resources are handled (`?fieldValidation=`). */
export type FieldValidation = 'Strict' | 'Warn' | 'Ignore';

/** Options common to writes. */
export interface WriteOptions {
  fieldValidation?: FieldValidation;
  dryRun?: boolean;
  subresource?: 'status';
}

/** A write's answer. */
export interface WriteResult {
  object: KubeObject;
  warnings: string[];
  created: boolean;
}

/** Patch content types the fake understands. */
export type PatchType = 'merge' | 'json' | 'strategic' | 'apply';

/** Parameters of {@link ObjectStore.patch}. */
export interface PatchRequest extends WriteOptions {
  type: PatchType;
  body: string;
  fieldManager?: string;
  force?: boolean;
}

/** Deletion options (`propagationPolicy`). */
export interface DeleteOptions {
  propagationPolicy?: 'Background' | 'Foreground' | 'Orphan';
}

/** Options of the store. */
export interface ObjectStoreOptions {
  now: () => number;
  /** Watch events kept for resuming watches; older resumes get 410. @default 10000 */
  historyLimit?: number;
}

export class ObjectStore {
  private readonly kinds = new Map<string, KindInfo>();
  private readonly objects = new Map<string, KubeObject>();
  private readonly byUid = new Map<string, string>();
  private readonly ownership = new Map<string, FieldOwnership>();
  private readonly listeners = new Set<(e: StoreEvent) => void>();
  private history: StoreEvent[] = [];
  private rv = 1;
  /** Events at or below this resourceVersion are no longer available to watches. */
  private compactedThrough = 0;
  private readonly now: () => number;
  private readonly historyLimit: number;

  constructor(options: ObjectStoreOptions) {
    this.now = options.now;
    this.historyLimit = options.historyLimit ?? 10_000;
  }

  register(kind: KindInfo): void {
    this.kinds.set(kindKey(kind), kind);
  }

  allKinds(): KindInfo[] {
    return [...this.kinds.values()];
  }

  /** The kind served at group/version/plural. */
  kind(group: string, version: string, plural: string): KindInfo | undefined {
    return this.kinds.get(kindKey({ group, version, plural }));
  }

  currentResourceVersion(): string {
    return String(this.rv);
  }

  /** Listens to every change (watches, fake controllers). */
  subscribe(listener: (e: StoreEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Events after `rv`, or 'gone' when the history no longer reaches back that far. */
  eventsSince(rv: number): StoreEvent[] | 'gone' {
    if (rv < this.compactedThrough) return 'gone';
    return this.history.filter((e) => e.rv > rv);
  }

  /** The oldest resourceVersion a watch can still resume from. */
  oldestResumable(): number {
    return this.compactedThrough;
  }

  /** Forgets the watch history (etcd compaction): resuming from older versions gets 410 Gone. */
  compact(): void {
    this.compactedThrough = this.rv;
    this.history = [];
  }

  private key(kind: KindInfo, ns: string | undefined, name: string): string {
    return `${kindKey(kind)}|${kind.namespaced ? (ns ?? '') : ''}|${name}`;
  }

  get(kind: KindInfo, ns: string | undefined, name: string): KubeObject | undefined {
    return clone(this.objects.get(this.key(kind, ns, name)));
  }

  mustGet(kind: KindInfo, ns: string | undefined, name: string): KubeObject {
    const o = this.get(kind, ns, name);
    if (!o) throw apiErrors.notFound(kind, name);
    return o;
  }

  list(kind: KindInfo, ns: string | undefined, selector: Requirement[] = [], fieldName?: string): { items: KubeObject[]; resourceVersion: string } {
    const prefix = `${kindKey(kind)}|`;
    const items: KubeObject[] = [];
    for (const [key, o] of this.objects) {
      if (!key.startsWith(prefix)) continue;
      if (kind.namespaced && ns !== undefined && o.metadata.namespace !== ns) continue;
      if (!matchesSelector(selector, o.metadata.labels)) continue;
      if (fieldName !== undefined && o.metadata.name !== fieldName) continue;
      items.push(clone(o));
    }
    items.sort((a, b) => `${a.metadata.namespace}/${a.metadata.name}`.localeCompare(`${b.metadata.namespace}/${b.metadata.name}`));
    return { items, resourceVersion: this.currentResourceVersion() };
  }

  create(kind: KindInfo, ns: string | undefined, body: KubeObject, options: WriteOptions = {}): WriteResult {
    const o = clone(body);
    o.apiVersion = kind.group ? `${kind.group}/${kind.version}` : kind.version;
    o.kind = kind.kind;
    o.metadata = o.metadata ?? {};
    if (kind.namespaced) {
      if (o.metadata.namespace && ns && o.metadata.namespace !== ns) {
        throw apiErrors.badRequest('the namespace of the provided object does not match the namespace sent on the request');
      }
      o.metadata.namespace = ns ?? o.metadata.namespace ?? 'default';
    } else delete o.metadata.namespace;
    if (!o.metadata.name && o.metadata.generateName) o.metadata.name = `${o.metadata.generateName}${randomUUID().slice(0, 5)}`;
    if (!o.metadata.name) throw apiErrors.invalid(kind, '', [{ reason: 'FieldValueRequired', field: 'metadata.name', message: 'Required value: name or generateName is required' }]);
    const key = this.key(kind, o.metadata.namespace, o.metadata.name);
    if (this.objects.has(key)) throw apiErrors.alreadyExists(kind, o.metadata.name);
    if (kind.statusSubresource) delete o.status;
    for (const f of ['uid', 'resourceVersion', 'creationTimestamp', 'deletionTimestamp', 'generation'] as const) delete o.metadata[f];
    const warnings = this.validate(kind, o, undefined, options.fieldValidation);
    o.metadata.uid = randomUUID();
    o.metadata.creationTimestamp = this.timestamp();
    if (kind.tracksGeneration) o.metadata.generation = 1;
    if (options.dryRun) return { object: o, warnings, created: true };
    this.commit(kind, key, o, 'ADDED');
    this.collectOrphans();
    return { object: clone(this.objects.get(key) ?? o), warnings, created: true };
  }

  /** PUT (the main resource or `/status`). */
  update(kind: KindInfo, ns: string | undefined, name: string, body: KubeObject, options: WriteOptions = {}): WriteResult {
    const existing = this.mustGet(kind, ns, name);
    if (body.metadata?.name && body.metadata.name !== name) throw apiErrors.badRequest('the name of the object does not match the name on the URL');
    return this.write(kind, existing, clone(body), options);
  }

  /** PATCH with any supported content type; apply creates missing objects. */
  patch(kind: KindInfo, ns: string | undefined, name: string, req: PatchRequest): WriteResult {
    const existing = this.get(kind, ns, name);
    if (req.type === 'strategic' && kind.custom) throw apiErrors.unsupportedMediaType('application/strategic-merge-patch+json');
    if (req.type === 'apply') return this.apply(kind, ns, name, existing, req);
    if (!existing) throw apiErrors.notFound(kind, name);
    let parsed: Json;
    try {
      parsed = JSON.parse(req.body) as Json;
    } catch (err) {
      throw apiErrors.badRequest(`error decoding patch: ${(err as Error).message}`);
    }
    let next: Json;
    try {
      // Strategic merge patch of built-in kinds is treated as a merge patch:
      // lists are replaced rather than merged by their patch keys.
      next = req.type === 'json' ? jsonPatch(existing as unknown as Json, parsed as unknown as JsonPatchOp[]) : mergePatch(existing as unknown as Json, parsed);
    } catch (err) {
      throw new ApiStatusError({ ...apiErrors.badRequest('').status, code: 422, reason: 'Invalid', message: `the server rejected our request due to an error in our request: ${(err as Error).message}` });
    }
    const nextObj = next as unknown as KubeObject;
    // A merge patch that names no resourceVersion is unconditional.
    const patchRv = (parsed as { metadata?: { resourceVersion?: string } } | null)?.metadata?.resourceVersion;
    if (req.type !== 'json' && patchRv === undefined) nextObj.metadata.resourceVersion = existing.metadata.resourceVersion as string;
    return this.write(kind, existing, nextObj, req);
  }

  private apply(kind: KindInfo, ns: string | undefined, name: string, existing: KubeObject | undefined, req: PatchRequest): WriteResult {
    if (!req.fieldManager) throw apiErrors.badRequest('PATCH, application/apply-patch+yaml requests require a fieldManager (query parameter fieldManager)');
    let config: Json;
    try {
      config = parseYaml(req.body) as Json;
    } catch (err) {
      throw apiErrors.badRequest(`error decoding YAML: ${(err as Error).message}`);
    }
    const cfg = config as unknown as KubeObject;
    if (!cfg || typeof cfg !== 'object' || !cfg.metadata) throw apiErrors.badRequest('apply: the configuration needs apiVersion, kind and metadata');
    if (cfg.metadata.name !== name) throw apiErrors.badRequest('the name of the object does not match the name on the URL');
    const scopeStatus = req.subresource === 'status';
    const ownKey = `${this.key(kind, ns, name)}${scopeStatus ? '#status' : ''}`;
    const ignore = (p: string[]): boolean =>
      p[0] === 'apiVersion' || p[0] === 'kind' || (p[0] === 'metadata' && ['name', 'namespace', 'resourceVersion', 'uid'].includes(p[1] ?? '')) || (scopeStatus ? p[0] !== 'status' : kind.statusSubresource && p[0] === 'status');
    const result = serverSideApply({
      live: existing as unknown as Json | undefined,
      config,
      manager: req.fieldManager,
      force: req.force ?? false,
      ownership: this.ownership.get(ownKey) ?? new Map(),
      ignore,
    });
    if (!result.ok) throw apiErrors.applyConflict(kind, name, result.conflicts);
    const merged = result.object as unknown as KubeObject;
    let out: WriteResult;
    if (!existing) {
      if (scopeStatus) throw apiErrors.notFound(kind, name);
      out = this.create(kind, ns, { ...merged, metadata: { ...merged.metadata, name } }, req);
    } else {
      if (cfg.metadata.resourceVersion === undefined) merged.metadata.resourceVersion = existing.metadata.resourceVersion as string;
      out = this.write(kind, existing, merged, req);
    }
    if (!req.dryRun) this.ownership.set(ownKey, result.ownership);
    return out;
  }

  private write(kind: KindInfo, existing: KubeObject, next: KubeObject, options: WriteOptions): WriteResult {
    const name = existing.metadata.name as string;
    const rv = next.metadata?.resourceVersion;
    if (rv !== undefined && rv !== '' && rv !== existing.metadata.resourceVersion) throw apiErrors.conflict(kind, name);
    let o: KubeObject;
    if (options.subresource === 'status') {
      o = clone(existing);
      o.status = next.status;
      if (o.status === undefined) delete o.status;
    } else {
      o = next;
      o.metadata = { ...next.metadata };
      if (kind.statusSubresource) {
        if (existing.status === undefined) delete o.status;
        else o.status = clone(existing.status);
      }
      for (const f of ['uid', 'creationTimestamp', 'namespace', 'name', 'deletionTimestamp', 'generation'] as const) {
        if (existing.metadata[f] === undefined) delete o.metadata[f];
        else (o.metadata as Record<string, unknown>)[f] = existing.metadata[f];
      }
      if (existing.metadata.deletionTimestamp) {
        const added = (o.metadata.finalizers ?? []).filter((f) => !(existing.metadata.finalizers ?? []).includes(f));
        if (added.length > 0) {
          throw apiErrors.invalid(kind, name, [{ reason: 'FieldValueInvalid', field: 'metadata.finalizers', message: 'Forbidden: no new finalizers can be added if the object is being deleted' }]);
        }
      }
    }
    o.apiVersion = existing.apiVersion as string;
    o.kind = existing.kind as string;
    o.metadata.resourceVersion = existing.metadata.resourceVersion as string;
    const warnings = this.validate(kind, o, existing, options.fieldValidation);
    if (kind.tracksGeneration && specOf(o) !== specOf(existing)) o.metadata.generation = (existing.metadata.generation ?? 0) + 1;
    if (JSON.stringify(o) === JSON.stringify(existing)) return { object: existing, warnings, created: false }; // no-op: no new resourceVersion
    if (options.dryRun) return { object: o, warnings, created: false };
    const key = this.key(kind, existing.metadata.namespace, name);
    if (o.metadata.deletionTimestamp && (o.metadata.finalizers ?? []).length === 0) {
      this.remove(kind, key, o, 'Background');
      return { object: o, warnings, created: false };
    }
    this.commit(kind, key, o, 'MODIFIED');
    return { object: clone(this.objects.get(key) as KubeObject), warnings, created: false };
  }

  delete(kind: KindInfo, ns: string | undefined, name: string, options: DeleteOptions = {}): KubeObject {
    const existing = this.mustGet(kind, ns, name);
    const key = this.key(kind, existing.metadata.namespace, name);
    if ((existing.metadata.finalizers ?? []).length > 0) {
      if (existing.metadata.deletionTimestamp) return existing;
      existing.metadata.deletionTimestamp = this.timestamp();
      this.commit(kind, key, existing, 'MODIFIED');
      return clone(this.objects.get(key) as KubeObject);
    }
    this.remove(kind, key, existing, options.propagationPolicy ?? 'Background');
    return existing;
  }

  private remove(kind: KindInfo, key: string, o: KubeObject, policy: DeleteOptions['propagationPolicy']): void {
    this.objects.delete(key);
    this.byUid.delete(o.metadata.uid as string);
    this.ownership.delete(key);
    this.ownership.delete(`${key}#status`);
    this.rv++;
    o.metadata.resourceVersion = String(this.rv);
    this.emit({ type: 'DELETED', kind, object: clone(o), rv: this.rv });
    this.collectDependents(o.metadata.uid as string, policy);
  }

  /** Deletes (or orphans) the dependents of a deleted owner. */
  private collectDependents(uid: string, policy: DeleteOptions['propagationPolicy']): void {
    for (const [key, o] of [...this.objects]) {
      const refs = o.metadata.ownerReferences ?? [];
      if (!refs.some((r) => r.uid === uid)) continue;
      const kind = this.kindOfKey(key);
      if (policy === 'Orphan') {
        const next = clone(o);
        next.metadata.ownerReferences = refs.filter((r) => r.uid !== uid);
        if (next.metadata.ownerReferences.length === 0) delete next.metadata.ownerReferences;
        this.commit(kind, key, next, 'MODIFIED');
        continue;
      }
      if (refs.some((r) => r.uid !== uid && this.byUid.has(r.uid))) continue; // another owner lives
      if (this.objects.has(key)) this.delete(kind, o.metadata.namespace, o.metadata.name as string, { propagationPolicy: 'Background' });
    }
  }

  /** Objects whose every owner is gone are deleted (what the garbage collector does). */
  private collectOrphans(): void {
    for (const [key, o] of [...this.objects]) {
      const refs = o.metadata.ownerReferences ?? [];
      if (refs.length === 0 || refs.some((r) => this.byUid.has(r.uid))) continue;
      if (this.objects.has(key)) this.delete(this.kindOfKey(key), o.metadata.namespace, o.metadata.name as string);
    }
  }

  private kindOfKey(key: string): KindInfo {
    const kk = key.split('|')[0] as string;
    const kind = this.kinds.get(kk);
    if (!kind) throw apiErrors.internal(`unknown kind ${kk}`);
    return kind;
  }

  private commit(kind: KindInfo, key: string, o: KubeObject, type: StoreEvent['type']): void {
    this.rv++;
    o.metadata.resourceVersion = String(this.rv);
    this.objects.set(key, clone(o));
    this.byUid.set(o.metadata.uid as string, key);
    this.emit({ type, kind, object: clone(o), rv: this.rv });
  }

  private emit(e: StoreEvent): void {
    this.history.push(e);
    if (this.history.length > this.historyLimit) {
      const dropped = this.history.splice(0, this.history.length - this.historyLimit);
      this.compactedThrough = dropped[dropped.length - 1]?.rv ?? this.compactedThrough;
    }
    for (const l of [...this.listeners]) l(e);
  }

  private validate(kind: KindInfo, o: KubeObject, old: KubeObject | undefined, fieldValidation: FieldValidation = 'Warn'): string[] {
    const errors: FieldError[] = [];
    const warnings: string[] = [];
    if (kind.schema) {
      const unknown: string[] = [];
      const top = kind.schema.properties ?? {};
      for (const [field, value] of Object.entries(o)) {
        if (field === 'metadata' || field === 'apiVersion' || field === 'kind') continue;
        const sub = top[field];
        if (!sub) unknown.push(`.${field}`);
        else unknown.push(...unknownFields(sub, value, `.${field}`));
      }
      if (unknown.length > 0 && fieldValidation === 'Strict') {
        throw apiErrors.badRequest(
          `${kind.kind} in version "${kind.version}" cannot be handled as a ${kind.kind}: strict decoding error: ${unknown.map((u) => `unknown field "${u.slice(1)}"`).join(', ')}`,
        );
      }
      if (unknown.length > 0 && fieldValidation === 'Warn') warnings.push(...unknown.map((u) => `unknown field "${u.slice(1)}"`));
      for (const [field, sub] of Object.entries(top)) {
        if (field === 'metadata') {
          const nameSchema = sub.properties?.name;
          if (nameSchema) errors.push(...validateAgainstSchema(nameSchema, o.metadata.name, 'metadata.name'));
          continue;
        }
        const value = (o as Record<string, unknown>)[field];
        if (value === undefined) {
          if (kind.schema.required?.includes(field)) errors.push({ reason: 'FieldValueRequired', field, message: 'Required value' });
          continue;
        }
        prune(sub, value);
        errors.push(...validateAgainstSchema(sub, value, field));
      }
      for (const field of Object.keys(o)) if (!top[field] && !['metadata', 'apiVersion', 'kind'].includes(field)) delete (o as Record<string, unknown>)[field];
    }
    if (kind.validate) errors.push(...kind.validate(o, old));
    if (errors.length > 0) throw apiErrors.invalid(kind, o.metadata.name ?? '', errors);
    return warnings;
  }

  private timestamp(): string {
    return new Date(Math.floor(this.now() / 1000) * 1000).toISOString().replace('.000Z', 'Z');
  }
}

function specOf(o: KubeObject): string {
  const { metadata: _m, status: _s, ...rest } = o;
  return JSON.stringify(rest);
}

/**
 * Patch semantics of the fake apiserver: JSON merge patch (RFC 7386), JSON
 * patch (RFC 6902), and a subset of server-side apply.
 *
 * Server-side apply subset: each field manager owns the leaf paths of the
 * configuration it last applied. Applying again sets those fields, removes
 * fields the manager owned before and no longer applies (unless another
 * manager owns them too), and fails with 409 when another manager owns a
 * field with a different value, unless `force`. Lists are atomic (the real
 * apiserver merges `listType: map` lists such as `containers` by key), and
 * non-apply writers (PUT, merge patch) own nothing.
 */

/** A JSON value. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

function isObject(v: unknown): v is Record<string, Json> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** Deep copy of JSON data. */
export function clone<T>(v: T): T {
  return v === undefined ? v : (JSON.parse(JSON.stringify(v)) as T);
}

/** RFC 7386: objects merge, `null` deletes, everything else replaces. */
export function mergePatch(target: Json | undefined, patch: Json): Json {
  if (!isObject(patch)) return clone(patch);
  const out: Record<string, Json> = isObject(target) ? clone(target) : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete out[key];
    else out[key] = mergePatch(out[key], value);
  }
  return out;
}

/** A JSON patch operation. */
export interface JsonPatchOp {
  op: 'add' | 'remove' | 'replace' | 'test' | 'move' | 'copy';
  path: string;
  value?: Json;
  from?: string;
}

/** RFC 6902 (add, remove, replace, test, move, copy); throws on a failed op. */
export function jsonPatch(target: Json, ops: JsonPatchOp[]): Json {
  let doc = clone(target);
  const parse = (p: string): string[] => (p === '' ? [] : p.slice(1).split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~')));
  const get = (parts: string[]): Json | undefined => {
    let cur: Json | undefined = doc;
    for (const part of parts) {
      if (Array.isArray(cur)) cur = cur[Number(part)];
      else if (isObject(cur)) cur = cur[part];
      else return undefined;
    }
    return cur;
  };
  const parentOf = (parts: string[]): { parent: Json | undefined; key: string } => ({
    parent: get(parts.slice(0, -1)),
    key: parts[parts.length - 1] ?? '',
  });
  const remove = (parts: string[]): Json => {
    const { parent, key } = parentOf(parts);
    if (Array.isArray(parent)) {
      const i = Number(key);
      if (!(i >= 0 && i < parent.length)) throw new Error(`remove: index ${key} out of range`);
      return parent.splice(i, 1)[0] as Json;
    }
    if (isObject(parent) && key in parent) {
      const v = parent[key] as Json;
      delete parent[key];
      return v;
    }
    throw new Error(`remove: path /${parts.join('/')} does not exist`);
  };
  const add = (parts: string[], value: Json): void => {
    if (parts.length === 0) {
      doc = value;
      return;
    }
    const { parent, key } = parentOf(parts);
    if (Array.isArray(parent)) {
      const i = key === '-' ? parent.length : Number(key);
      if (!(i >= 0 && i <= parent.length)) throw new Error(`add: index ${key} out of range`);
      parent.splice(i, 0, value);
    } else if (isObject(parent)) parent[key] = value;
    else throw new Error(`add: parent of /${parts.join('/')} does not exist`);
  };
  for (const op of ops) {
    const parts = parse(op.path);
    switch (op.op) {
      case 'add':
        add(parts, clone(op.value ?? null));
        break;
      case 'remove':
        remove(parts);
        break;
      case 'replace':
        remove(parts);
        add(parts, clone(op.value ?? null));
        break;
      case 'test':
        if (JSON.stringify(get(parts)) !== JSON.stringify(op.value)) throw new Error(`test: /${parts.join('/')} does not match`);
        break;
      case 'move':
        add(parts, remove(parse(op.from ?? '')));
        break;
      case 'copy':
        add(parts, clone(get(parse(op.from ?? '')) ?? null));
        break;
      default:
        throw new Error(`unknown op ${String((op as { op: unknown }).op)}`);
    }
  }
  return doc;
}

/** Leaf paths of an applied configuration (objects recurse; lists and scalars are leaves). */
export function leafPaths(v: Json, prefix: string[] = []): string[][] {
  if (!isObject(v) || Object.keys(v).length === 0) return [prefix];
  return Object.entries(v).flatMap(([k, sub]) => leafPaths(sub, [...prefix, k]));
}

function getPath(v: Json | undefined, path: string[]): Json | undefined {
  let cur = v;
  for (const p of path) cur = isObject(cur) ? cur[p] : undefined;
  return cur;
}

function deletePath(v: Json, path: string[]): void {
  let cur: Json | undefined = v;
  for (const p of path.slice(0, -1)) cur = isObject(cur) ? cur[p] : undefined;
  if (isObject(cur)) delete cur[path[path.length - 1] as string];
}

/** Sets leaves of `config` into `live`: objects merge, lists and scalars replace. */
function overlay(live: Json | undefined, config: Json): Json {
  if (!isObject(config) || !isObject(live)) return clone(config);
  const out = clone(live) as Record<string, Json>;
  for (const [k, v] of Object.entries(config)) out[k] = overlay(out[k], v);
  return out;
}

/** Who owns which fields of one object (manager → leaf paths joined with '\u0000'). */
export type FieldOwnership = Map<string, Set<string>>;

/** A conflict with another manager's field. */
export interface ApplyConflict {
  manager: string;
  field: string;
}

/** Result of {@link serverSideApply}. */
export type ApplyResult = { ok: true; object: Json; ownership: FieldOwnership } | { ok: false; conflicts: ApplyConflict[] };

/**
 * Applies `config` as `manager` to `live` (undefined when creating). The
 * `scope` filter limits which top-level fields count (status vs the rest).
 */
export function serverSideApply(options: {
  live: Json | undefined;
  config: Json;
  manager: string;
  force: boolean;
  ownership: FieldOwnership;
  /** Ignore these paths (metadata identity fields the server owns). */
  ignore?: (path: string[]) => boolean;
}): ApplyResult {
  const { config, manager, force } = options;
  const ignore = options.ignore ?? (() => false);
  const applied = leafPaths(config).filter((p) => !ignore(p));
  const key = (p: string[]): string => p.join('\u0000');
  const conflicts: ApplyConflict[] = [];
  const ownership: FieldOwnership = new Map([...options.ownership].map(([m, s]) => [m, new Set(s)]));
  for (const path of applied) {
    for (const [other, owned] of ownership) {
      if (other === manager || !owned.has(key(path))) continue;
      const liveValue = getPath(options.live, path);
      if (JSON.stringify(liveValue) === JSON.stringify(getPath(config, path))) continue; // shared, same value
      if (force) owned.delete(key(path));
      else conflicts.push({ manager: other, field: `.${path.join('.')}` });
    }
  }
  if (conflicts.length > 0) return { ok: false, conflicts };
  let object: Json = options.live === undefined ? {} : clone(options.live);
  const previous = ownership.get(manager) ?? new Set<string>();
  const now = new Set(applied.map(key));
  for (const old of previous) {
    if (now.has(old)) continue;
    const ownedElsewhere = [...ownership].some(([m, s]) => m !== manager && s.has(old));
    if (!ownedElsewhere) deletePath(object, old.split('\u0000'));
  }
  object = overlay(object, config);
  ownership.set(manager, now);
  return { ok: true, object, ownership };
}

import { request as httpRequest, type IncomingMessage, type RequestOptions } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { KubeConnection } from './kube-config.js';
import { apiVersionOf, type KubeList, type KubeObject, type KubeStatus, type ResourceType, type WatchEvent } from './resources.js';

/**
 * A small typed Kubernetes client on node:http(s): exactly the verbs the
 * controller uses, with the content types the apiserver expects for each
 * kind of write:
 *
 * - server-side apply (`application/apply-patch+yaml`, `fieldManager`,
 *   `force=true`) for the children the controller owns whole, so a
 *   re-reconcile is a no-op and a field set by someone else is taken back;
 * - JSON merge patch (`application/merge-patch+json`) for status and
 *   finalizers — strategic merge patch is not defined for custom resources
 *   and the apiserver answers it with 415;
 * - watches as newline-delimited JSON streams.
 */

/** An error answer of the apiserver (or of the connection). */
export class KubeApiError extends Error {
  override readonly name = 'KubeApiError';
  /** HTTP status; 0 when the request never got an answer. */
  readonly code: number;
  /** metav1.Status reason (`NotFound`, `Conflict`, `Expired`, `Invalid`, …). */
  readonly reason: string;
  readonly status: KubeStatus | undefined;

  constructor(code: number, reason: string, message: string, status?: KubeStatus, cause?: unknown) {
    super(message, cause === undefined ? undefined : { cause });
    this.code = code;
    this.reason = reason;
    this.status = status;
  }

  /**
   * Worth retrying unchanged: no answer, 429, 5xx. 409 Conflict is retried
   * by re-reading (the caller's reconcile), not by resending.
   */
  get retryable(): boolean {
    return this.code === 0 || this.code === 429 || this.code >= 500;
  }
}

/** 410 Gone: the resourceVersion is too old; relist. */
export function isGone(err: unknown): boolean {
  return err instanceof KubeApiError && (err.code === 410 || err.reason === 'Expired' || err.reason === 'Gone');
}

export function isNotFound(err: unknown): boolean {
  return err instanceof KubeApiError && err.code === 404;
}

export function isConflict(err: unknown): boolean {
  return err instanceof KubeApiError && err.code === 409;
}

/** Options of list and watch. */
export interface ListOptions {
  labelSelector?: string;
  fieldSelector?: string;
}

/** Options of a watch. */
export interface WatchOptions extends ListOptions {
  resourceVersion?: string;
  allowWatchBookmarks?: boolean;
  /** Server-side end of the watch (the client then resumes). */
  timeoutSeconds?: number;
}

/** The verbs the controller uses; tests may implement it in memory, the real one is {@link HttpKubeApi}. */
export interface KubeApi {
  get<T extends KubeObject = KubeObject>(type: ResourceType, namespace: string, name: string): Promise<T | undefined>;
  list<T extends KubeObject = KubeObject>(type: ResourceType, namespace: string, options?: ListOptions): Promise<KubeList<T>>;
  create<T extends KubeObject = KubeObject>(type: ResourceType, namespace: string, object: KubeObject): Promise<T>;
  /** PUT; a stale `metadata.resourceVersion` is a 409. */
  replace<T extends KubeObject = KubeObject>(type: ResourceType, namespace: string, object: KubeObject): Promise<T>;
  /** JSON merge patch of the object or its status. */
  mergePatch<T extends KubeObject = KubeObject>(type: ResourceType, namespace: string, name: string, patch: unknown, options?: { subresource?: 'status' }): Promise<T>;
  /** Server-side apply of a whole object as `fieldManager`. */
  apply<T extends KubeObject = KubeObject>(type: ResourceType, namespace: string, object: KubeObject, options: { fieldManager: string; force?: boolean }): Promise<T>;
  /** Deletes; false when it was already gone. */
  delete(type: ResourceType, namespace: string, name: string, options?: { propagationPolicy?: 'Background' | 'Foreground' | 'Orphan' }): Promise<boolean>;
  /** Streams watch events until the server ends the watch (resolves) or it fails (rejects). */
  watch<T extends KubeObject = KubeObject>(type: ResourceType, namespace: string, options: WatchOptions, onEvent: (e: WatchEvent<T>) => void, signal: AbortSignal): Promise<void>;
}

/** Options of {@link HttpKubeApi}. */
export interface HttpKubeApiOptions {
  /** Timeout of one non-watch request. @default 30000 */
  requestTimeoutMs?: number;
  /** User-Agent. @default tandem-control-plane */
  userAgent?: string;
}

/** The real client. */
export class HttpKubeApi implements KubeApi {
  private readonly conn: KubeConnection;
  private readonly timeoutMs: number;
  private readonly userAgent: string;

  constructor(conn: KubeConnection, options: HttpKubeApiOptions = {}) {
    this.conn = conn;
    this.timeoutMs = options.requestTimeoutMs ?? 30_000;
    this.userAgent = options.userAgent ?? 'tandem-control-plane';
  }

  async get<T extends KubeObject>(type: ResourceType, ns: string, name: string): Promise<T | undefined> {
    try {
      return (await this.call('GET', path(type, ns, name))) as T;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async list<T extends KubeObject>(type: ResourceType, ns: string, options: ListOptions = {}): Promise<KubeList<T>> {
    return (await this.call('GET', path(type, ns), { query: selectors(options) })) as KubeList<T>;
  }

  async create<T extends KubeObject>(type: ResourceType, ns: string, object: KubeObject): Promise<T> {
    return (await this.call('POST', path(type, ns), { body: JSON.stringify(withType(type, object)), contentType: 'application/json' })) as T;
  }

  async replace<T extends KubeObject>(type: ResourceType, ns: string, object: KubeObject): Promise<T> {
    return (await this.call('PUT', path(type, ns, object.metadata.name as string), { body: JSON.stringify(withType(type, object)), contentType: 'application/json' })) as T;
  }

  async mergePatch<T extends KubeObject>(type: ResourceType, ns: string, name: string, patch: unknown, options: { subresource?: 'status' } = {}): Promise<T> {
    return (await this.call('PATCH', path(type, ns, name, options.subresource), { body: JSON.stringify(patch), contentType: 'application/merge-patch+json' })) as T;
  }

  async apply<T extends KubeObject>(type: ResourceType, ns: string, object: KubeObject, options: { fieldManager: string; force?: boolean }): Promise<T> {
    const query: Record<string, string> = { fieldManager: options.fieldManager };
    if (options.force) query.force = 'true';
    // JSON is YAML: the apply content type takes either.
    return (await this.call('PATCH', path(type, ns, object.metadata.name as string), {
      body: JSON.stringify(withType(type, object)),
      contentType: 'application/apply-patch+yaml',
      query,
    })) as T;
  }

  async delete(type: ResourceType, ns: string, name: string, options: { propagationPolicy?: 'Background' | 'Foreground' | 'Orphan' } = {}): Promise<boolean> {
    try {
      await this.call('DELETE', path(type, ns, name), {
        body: JSON.stringify({ kind: 'DeleteOptions', apiVersion: 'v1', propagationPolicy: options.propagationPolicy ?? 'Background' }),
        contentType: 'application/json',
      });
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  watch<T extends KubeObject>(type: ResourceType, ns: string, options: WatchOptions, onEvent: (e: WatchEvent<T>) => void, signal: AbortSignal): Promise<void> {
    const query: Record<string, string> = { watch: '1', ...selectors(options) };
    if (options.resourceVersion) query.resourceVersion = options.resourceVersion;
    if (options.allowWatchBookmarks) query.allowWatchBookmarks = 'true';
    if (options.timeoutSeconds) query.timeoutSeconds = String(options.timeoutSeconds);
    return new Promise<void>((resolve, reject) => {
      // Settles exactly once, whichever of end, error, close or abort comes first.
      let settled = false;
      const done = (err?: unknown): void => {
        if (settled) return;
        settled = true;
        signal.removeEventListener('abort', onAbort);
        if (err === undefined) resolve();
        else reject(err);
      };
      const onAbort = (): void => {
        const reason = signal.reason instanceof Error ? signal.reason : new KubeApiError(0, 'Aborted', 'watch aborted');
        done(reason);
        req.destroy(reason);
      };
      if (signal.aborted) {
        reject(signal.reason);
        return;
      }
      const req = this.request('GET', `${path(type, ns)}?${new URLSearchParams(query)}`, undefined, undefined, (res) => {
        if ((res.statusCode ?? 0) !== 200) {
          readAll(res).then((text) => done(toError(res.statusCode ?? 0, text)), done);
          return;
        }
        let buffer = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          buffer += chunk;
          let nl: number;
          while (!settled && (nl = buffer.indexOf('\n')) >= 0) {
            const line = buffer.slice(0, nl).trim();
            buffer = buffer.slice(nl + 1);
            if (line === '') continue;
            let event: WatchEvent<T>;
            try {
              event = JSON.parse(line) as WatchEvent<T>;
            } catch (err) {
              done(new KubeApiError(0, 'BadWatchEvent', `undecodable watch event: ${(err as Error).message}`));
              req.destroy();
              return;
            }
            if (event.type === 'ERROR') {
              const status = event.object as unknown as KubeStatus;
              done(new KubeApiError(status.code ?? 500, status.reason ?? 'Unknown', status.message ?? 'watch error', status));
              req.destroy();
              return;
            }
            onEvent(event);
          }
        });
        res.on('end', () => done());
        res.on('error', (err) => done(new KubeApiError(0, 'WatchAborted', `watch ${type.plural}: ${err.message}`, undefined, err)));
        res.on('close', () => done(new KubeApiError(0, 'WatchAborted', `watch ${type.plural}: connection closed`)));
      });
      signal.addEventListener('abort', onAbort, { once: true });
      req.on('error', (err) => done(err instanceof KubeApiError ? err : new KubeApiError(0, 'ConnectionError', `watch ${type.plural}: ${err.message}`, undefined, err)));
      req.end();
    });
  }

  private call(method: string, p: string, options: { body?: string; contentType?: string; query?: Record<string, string> } = {}): Promise<unknown> {
    const q = options.query && Object.keys(options.query).length > 0 ? `?${new URLSearchParams(options.query)}` : '';
    return new Promise((resolve, reject) => {
      const req = this.request(method, `${p}${q}`, options.contentType, options.body === undefined ? undefined : Buffer.byteLength(options.body), (res) => {
        readAll(res).then((text) => {
          const code = res.statusCode ?? 0;
          if (code >= 200 && code < 300) {
            try {
              resolve(text === '' ? {} : JSON.parse(text));
            } catch (err) {
              reject(new KubeApiError(code, 'BadResponse', `undecodable answer to ${method} ${p}`, undefined, err));
            }
          } else reject(toError(code, text));
        }, reject);
      });
      req.setTimeout(this.timeoutMs, () => req.destroy(new KubeApiError(0, 'Timeout', `${method} ${p} timed out after ${this.timeoutMs} ms`)));
      req.on('error', (err) => reject(err instanceof KubeApiError ? err : new KubeApiError(0, 'ConnectionError', `${method} ${p}: ${err.message}`, undefined, err)));
      if (options.body !== undefined) req.write(options.body);
      req.end();
    });
  }

  private request(method: string, p: string, contentType: string | undefined, contentLength: number | undefined, onResponse: (res: IncomingMessage) => void): ReturnType<typeof httpRequest> {
    const url = new URL(p, this.conn.server);
    const headers: Record<string, string> = { accept: 'application/json', 'user-agent': this.userAgent };
    if (contentType) headers['content-type'] = contentType;
    // Node sends DELETE bodies unframed unless told their length.
    if (contentLength !== undefined) headers['content-length'] = String(contentLength);
    const token = this.conn.token?.();
    if (token) headers.authorization = `Bearer ${token}`;
    const options: RequestOptions & { ca?: string; cert?: string; key?: string; rejectUnauthorized?: boolean } = { method, headers };
    if (url.protocol === 'https:') {
      if (this.conn.ca) options.ca = this.conn.ca;
      if (this.conn.cert) options.cert = this.conn.cert;
      if (this.conn.key) options.key = this.conn.key;
      if (this.conn.insecureSkipTlsVerify) options.rejectUnauthorized = false;
      return httpsRequest(url, options, onResponse);
    }
    return httpRequest(url, options, onResponse);
  }
}

function path(type: ResourceType, ns: string, name?: string, subresource?: string): string {
  const base = type.group === '' ? `/api/${type.version}` : `/apis/${type.group}/${type.version}`;
  const scoped = type.namespaced ? `${base}/namespaces/${encodeURIComponent(ns)}/${type.plural}` : `${base}/${type.plural}`;
  return `${scoped}${name === undefined ? '' : `/${encodeURIComponent(name)}`}${subresource ? `/${subresource}` : ''}`;
}

function selectors(options: ListOptions): Record<string, string> {
  const q: Record<string, string> = {};
  if (options.labelSelector) q.labelSelector = options.labelSelector;
  if (options.fieldSelector) q.fieldSelector = options.fieldSelector;
  return q;
}

function withType(type: ResourceType, o: KubeObject): KubeObject {
  return { ...o, apiVersion: apiVersionOf(type), kind: type.kind };
}

function readAll(res: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    res.on('error', reject);
  });
}

function toError(code: number, text: string): KubeApiError {
  try {
    const status = JSON.parse(text) as KubeStatus;
    if (status.kind === 'Status') return new KubeApiError(code, status.reason || String(code), status.message || text, status);
  } catch {
    // not a Status body: fall through
  }
  return new KubeApiError(code, String(code), text.slice(0, 500) || `HTTP ${code}`);
}

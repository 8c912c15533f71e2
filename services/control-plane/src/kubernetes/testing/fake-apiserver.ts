import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { writeFile } from 'node:fs/promises';
import type { KubeObject } from '../resources.js';
import { matchesSelector, parseSelector } from '../label-selector.js';
import { builtinKinds, kindFromCrd, kindKey, type KindInfo } from './api-catalog.js';
import { apiErrors, ApiStatusError } from './api-errors.js';
import { ObjectStore, type FieldValidation, type PatchType, type StoreEvent } from './object-store.js';
import { toTable } from './table.js';

/**
 * An in-process Kubernetes apiserver for tests, on node:http at
 * 127.0.0.1:<random port>.
 *
 * IT IS A CONTRACT TEST OF THE CONTROLLER, NOT A CLUSTER. It speaks the
 * apiserver's HTTP protocol (discovery, namespaced CRUD, status
 * subresource, merge/JSON patch, a subset of server-side apply, watches that
 * resume from a resourceVersion or answer 410 Gone, finalizers, ownerReference
 * garbage collection, CRD schema validation, server-side Table printing) well
 * enough that the Tandem controller and `kubectl` work against it. Nothing
 * here schedules pods, runs containers, enforces RBAC, quotas or admission,
 * or tells you anything about Kueue, a gang scheduler or GPUs; pods appear
 * only through {@link FakeWorkloadControllers}.
 */

/** A request the server saw (tests assert on content types and verbs). */
export interface RequestRecord {
  method: string;
  path: string;
  query: string;
  contentType: string;
  fieldManager?: string;
  /** The request body (first 4 KiB). */
  body?: string;
}

/** Injected failures. */
export interface FaultRule {
  /** HTTP status to answer (500, 503, 410, 429…). */
  status: number;
  /** How many matching requests fail. @default 1 */
  count?: number;
  /** Which requests; all when omitted. */
  match?: (r: RequestRecord) => boolean;
}

interface WatchConnection {
  res: ServerResponse;
  stalled: boolean;
  close: () => void;
}

/** Options of {@link FakeApiServer.start}. */
export interface FakeApiServerOptions {
  /** Clock for timestamps and printed ages. @default Date.now */
  now?: () => number;
  /** Watch history length (events); older resumes get 410. @default 10000 */
  historyLimit?: number;
  /** BOOKMARK period on watches that ask for bookmarks. @default 1000 */
  bookmarkIntervalMs?: number;
  /** CRD objects to install at start. */
  crds?: Array<Record<string, unknown>>;
}

const CRD_KIND: KindInfo = {
  group: 'apiextensions.k8s.io',
  version: 'v1',
  kind: 'CustomResourceDefinition',
  plural: 'customresourcedefinitions',
  namespaced: false,
  singular: 'customresourcedefinition',
  shortNames: ['crd', 'crds'],
  categories: [],
  statusSubresource: true,
  custom: false,
  tracksGeneration: true,
};

export class FakeApiServer {
  readonly store: ObjectStore;
  readonly requests: RequestRecord[] = [];
  /** Tokens TokenReview knows (POST /apis/authentication.k8s.io/v1/tokenreviews), and who they are. */
  readonly tokenReviewUsers = new Map<string, { username: string; groups?: string[] }>();
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();
  private readonly watches = new Set<WatchConnection>();
  private faultRules: Array<FaultRule & { remaining: number }> = [];
  private readonly now: () => number;
  private readonly bookmarkIntervalMs: number;
  private port = 0;

  private constructor(options: FakeApiServerOptions) {
    this.now = options.now ?? Date.now;
    this.bookmarkIntervalMs = options.bookmarkIntervalMs ?? 1000;
    this.store = new ObjectStore({ now: this.now, ...(options.historyLimit ? { historyLimit: options.historyLimit } : {}) });
    for (const k of builtinKinds()) this.store.register(k);
    this.store.register(CRD_KIND);
    this.store.subscribe((e) => {
      if (e.kind === CRD_KIND && e.type !== 'DELETED') this.store.register(kindFromCrd(e.object));
    });
    this.server = createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => this.sendError(res, err));
    });
    this.server.on('connection', (s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
  }

  /** Starts on 127.0.0.1 with a free port. */
  static async start(options: FakeApiServerOptions = {}): Promise<FakeApiServer> {
    const api = new FakeApiServer(options);
    for (const crd of options.crds ?? []) api.installCrd(crd);
    await new Promise<void>((resolve, reject) => {
      api.server.once('error', reject);
      api.server.listen(0, '127.0.0.1', () => resolve());
    });
    api.port = (api.server.address() as AddressInfo).port;
    return api;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Installs (or replaces) a CRD, as `kubectl apply -f crd.yaml` would. */
  installCrd(crd: Record<string, unknown>): void {
    const name = (crd.metadata as { name: string }).name;
    const existing = this.store.get(CRD_KIND, undefined, name);
    if (existing) this.store.update(CRD_KIND, undefined, name, { ...(crd as KubeObject), metadata: { ...existing.metadata } });
    else this.store.create(CRD_KIND, undefined, crd as KubeObject);
  }

  /** The kind registered for a group and plural. */
  kind(group: string, plural: string): KindInfo {
    const k = this.store.allKinds().find((x) => x.group === group && x.plural === plural);
    if (!k) throw new Error(`unknown kind ${plural}.${group}`);
    return k;
  }

  /** A kubeconfig that points kubectl at this server (no auth). */
  kubeconfig(namespace = 'default'): string {
    return [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      '- name: fake',
      `  cluster: {server: "${this.url}"}`,
      'users:',
      '- name: fake',
      '  user: {}',
      'contexts:',
      '- name: fake',
      `  context: {cluster: fake, user: fake, namespace: ${namespace}}`,
      'current-context: fake',
      '',
    ].join('\n');
  }

  async writeKubeconfig(path: string, namespace = 'default'): Promise<void> {
    await writeFile(path, this.kubeconfig(namespace));
  }

  // ---- fault injection -------------------------------------------------

  /** The next `count` requests matching `match` answer `status`. */
  failNext(rule: FaultRule): void {
    this.faultRules.push({ ...rule, remaining: rule.count ?? 1 });
  }

  /** Cuts every open watch connection (as a proxy or apiserver restart would). */
  dropWatches(): number {
    const n = this.watches.size;
    for (const w of [...this.watches]) {
      w.res.socket?.destroy();
      w.close();
    }
    return n;
  }

  /** Open watches stop receiving anything, events and bookmarks alike, while the connection stays open. */
  stallWatches(): number {
    for (const w of this.watches) w.stalled = true;
    return this.watches.size;
  }

  /** Open watch connections now. */
  get openWatches(): number {
    return this.watches.size;
  }

  async stop(): Promise<void> {
    for (const w of [...this.watches]) w.close();
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  // ---- HTTP ------------------------------------------------------------

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fake');
    const method = req.method ?? 'GET';
    const contentType = (req.headers['content-type'] ?? '').split(';')[0]?.trim() ?? '';
    const record: RequestRecord = { method, path: url.pathname, query: url.search, contentType };
    const fm = url.searchParams.get('fieldManager');
    if (fm) record.fieldManager = fm;
    this.requests.push(record);
    const body = await readBody(req);
    if (body !== '') record.body = body.slice(0, 4096);

    const fault = this.faultRules.find((f) => f.remaining > 0 && (f.match?.(record) ?? true));
    if (fault) {
      fault.remaining--;
      this.faultRules = this.faultRules.filter((f) => f.remaining > 0);
      const err =
        fault.status === 410
          ? apiErrors.gone(url.searchParams.get('resourceVersion') ?? '', this.store.oldestResumable())
          : fault.status === 503
            ? apiErrors.unavailable('injected fault')
            : new ApiStatusError({ ...apiErrors.internal('injected fault').status, code: fault.status });
      return this.sendError(res, err);
    }

    const path = url.pathname.replace(/\/+$/, '');
    if (path === '/apis/authentication.k8s.io/v1/tokenreviews' && method === 'POST') return this.tokenReview(res, body);
    if (path === '/version') return sendJson(res, 200, { major: '1', minor: '32', gitVersion: 'v1.32.0-tandem-fake', platform: 'linux/amd64' });
    if (path === '/healthz' || path === '/readyz' || path === '/livez') return sendText(res, 200, 'ok');
    if (path === '/openapi/v3') return sendJson(res, 200, this.openApiIndex());
    const oapi = /^\/openapi\/v3\/(api\/v1|apis\/[^/]+\/[^/]+)$/.exec(path);
    if (oapi) return sendJson(res, 200, this.openApiGroupVersion(oapi[1] as string));
    if (path === '/api') return sendJson(res, 200, { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: `127.0.0.1:${this.port}` }] });
    if (path === '/apis') return sendJson(res, 200, this.groupList());
    if (path === '/api/v1') return sendJson(res, 200, this.resourceList('', 'v1'));
    const gv = /^\/apis\/([^/]+)\/([^/]+)$/.exec(path);
    if (gv) {
      const list = this.resourceList(gv[1] as string, gv[2] as string);
      if (list.resources.length === 0) return this.sendError(res, apiErrors.notFound({ group: gv[1] as string, plural: '', kind: '' }, `${gv[1]}/${gv[2]}`));
      return sendJson(res, 200, list);
    }
    const m =
      /^\/api\/(v1)(?:\/namespaces\/([^/]+))?\/([^/]+)(?:\/([^/]+))?(?:\/([^/]+))?$/.exec(path) ??
      /^\/apis\/([^/]+\/[^/]+)(?:\/namespaces\/([^/]+))?\/([^/]+)(?:\/([^/]+))?(?:\/([^/]+))?$/.exec(path);
    if (!m) return this.sendError(res, new ApiStatusError({ ...apiErrors.notFound({ group: '', plural: '', kind: '' }, path).status, message: `the server could not find the requested resource (${path})` }));
    const [groupPart, versionPart] = (m[1] as string).includes('/') ? (m[1] as string).split('/') : ['', m[1] as string];
    const kind = this.store.kind(groupPart as string, versionPart as string, m[3] as string);
    if (!kind) return this.sendError(res, new ApiStatusError({ ...apiErrors.notFound({ group: groupPart as string, plural: m[3] as string, kind: '' }, '').status, message: `the server could not find the requested resource` }));
    const ns = kind.namespaced ? m[2] : undefined;
    const name = m[4];
    const sub = m[5];
    if (sub !== undefined && sub !== 'status') return this.sendError(res, apiErrors.notFound(kind, `${name}/${sub}`));
    if (sub === 'status' && !kind.statusSubresource) return this.sendError(res, apiErrors.notFound(kind, `${name}/status`));
    const q = url.searchParams;
    const fieldValidation = (q.get('fieldValidation') ?? 'Warn') as FieldValidation;
    const dryRun = q.get('dryRun') === 'All';
    const subresource = sub === 'status' ? ('status' as const) : undefined;
    const write = { fieldValidation, dryRun, ...(subresource ? { subresource } : {}) };
    const wantsTable = (req.headers.accept ?? '').includes('as=Table');

    if (name === undefined) {
      if (method === 'GET') {
        const selector = parseSelectorOr400(q.get('labelSelector') ?? '');
        const fieldName = parseFieldSelector(q.get('fieldSelector') ?? '');
        if (q.get('watch') === '1' || q.get('watch') === 'true') return this.watch(req, res, kind, ns, q, selector, fieldName);
        const list = this.store.list(kind, ns, selector, fieldName);
        if (wantsTable) return sendJson(res, 200, toTable(kind, list.items, this.now(), list.resourceVersion));
        return sendJson(res, 200, { kind: `${kind.kind}List`, apiVersion: kind.group ? `${kind.group}/${kind.version}` : kind.version, metadata: { resourceVersion: list.resourceVersion }, items: list.items });
      }
      if (method === 'POST') {
        const obj = parseJson(body, contentType);
        const out = this.store.create(kind, ns, obj, write);
        return sendJson(res, 201, out.object, out.warnings);
      }
      return this.sendError(res, apiErrors.methodNotAllowed(method));
    }
    switch (method) {
      case 'GET': {
        const o = this.store.mustGet(kind, ns, name);
        if (wantsTable) return sendJson(res, 200, toTable(kind, [o], this.now(), o.metadata.resourceVersion ?? ''));
        return sendJson(res, 200, o);
      }
      case 'PUT': {
        const out = this.store.update(kind, ns, name, parseJson(body, contentType), write);
        return sendJson(res, 200, out.object, out.warnings);
      }
      case 'PATCH': {
        const type = PATCH_TYPES[contentType];
        if (!type) return this.sendError(res, apiErrors.unsupportedMediaType(contentType));
        const force = q.get('force') === 'true';
        const fieldManager = q.get('fieldManager') ?? undefined;
        const out = this.store.patch(kind, ns, name, { ...write, type, body, force, ...(fieldManager ? { fieldManager } : {}) });
        return sendJson(res, out.created ? 201 : 200, out.object, out.warnings);
      }
      case 'DELETE': {
        let policy = q.get('propagationPolicy') ?? undefined;
        if (body.trim() !== '') {
          const opts = JSON.parse(body) as { propagationPolicy?: string };
          policy = opts.propagationPolicy ?? policy;
        }
        const out = this.store.delete(kind, ns, name, policy ? { propagationPolicy: policy as 'Background' | 'Foreground' | 'Orphan' } : {});
        return sendJson(res, 200, out);
      }
      default:
        return this.sendError(res, apiErrors.methodNotAllowed(method));
    }
  }

  private watch(
    req: IncomingMessage,
    res: ServerResponse,
    kind: KindInfo,
    ns: string | undefined,
    q: URLSearchParams,
    selector: ReturnType<typeof parseSelector>,
    fieldName: string | undefined,
  ): void {
    const rvParam = q.get('resourceVersion');
    const bookmarks = q.get('allowWatchBookmarks') === 'true';
    const timeoutSeconds = Number(q.get('timeoutSeconds') ?? '0');
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-cache, private' });
    // By key, not identity: re-applying a CRD replaces its KindInfo.
    const matches = (e: StoreEvent): boolean =>
      kindKey(e.kind) === kindKey(kind) &&
      (ns === undefined || e.object.metadata.namespace === ns) &&
      (fieldName === undefined || e.object.metadata.name === fieldName) &&
      matchesSelector(selector, e.object.metadata.labels);
    const conn: WatchConnection = { res, stalled: false, close: () => undefined };
    const write = (type: string, object: unknown): void => {
      if (!conn.stalled && !res.writableEnded) res.write(`${JSON.stringify({ type, object })}\n`);
    };
    const timers: NodeJS.Timeout[] = [];
    let unsubscribe = (): void => undefined;
    conn.close = () => {
      unsubscribe();
      timers.forEach((t) => clearTimeout(t));
      this.watches.delete(conn);
      if (!res.writableEnded) res.end();
    };
    req.on('close', conn.close);
    if (rvParam === null || rvParam === '' || rvParam === '0') {
      for (const o of this.store.list(kind, ns, selector, fieldName).items) write('ADDED', o);
    } else {
      const since = this.store.eventsSince(Number(rvParam));
      if (since === 'gone') {
        write('ERROR', apiErrors.gone(rvParam, this.store.oldestResumable()).status);
        conn.close();
        return;
      }
      for (const e of since) if (matches(e)) write(e.type, e.object);
    }
    this.watches.add(conn);
    unsubscribe = this.store.subscribe((e) => {
      if (matches(e)) write(e.type, e.object);
    });
    if (bookmarks) {
      const tick = (): void => {
        write('BOOKMARK', { kind: kind.kind, apiVersion: kind.group ? `${kind.group}/${kind.version}` : kind.version, metadata: { resourceVersion: this.store.currentResourceVersion() } });
        timers[0] = setTimeout(tick, this.bookmarkIntervalMs);
      };
      timers[0] = setTimeout(tick, this.bookmarkIntervalMs);
    }
    if (timeoutSeconds > 0) timers.push(setTimeout(conn.close, timeoutSeconds * 1000));
  }

  /**
   * OpenAPI v3 discovery. kubectl reads it to learn that PATCH takes
   * `fieldValidation` (so it leaves validation to the server), and
   * `kubectl explain` reads the CRD schemas from it.
   */
  private openApiIndex(): Record<string, unknown> {
    const paths: Record<string, { serverRelativeURL: string }> = {};
    for (const k of this.store.allKinds()) {
      const gv = k.group ? `apis/${k.group}/${k.version}` : `api/${k.version}`;
      paths[gv] = { serverRelativeURL: `/openapi/v3/${gv}?hash=${this.store.allKinds().length}` };
    }
    return { paths };
  }

  private openApiGroupVersion(gvPath: string): Record<string, unknown> {
    const paths: Record<string, unknown> = {};
    const schemas: Record<string, unknown> = {};
    for (const k of this.store.allKinds()) {
      const gv = k.group ? `apis/${k.group}/${k.version}` : `api/${k.version}`;
      if (gv !== gvPath) continue;
      const gvk = { group: k.group, version: k.version, kind: k.kind };
      const base = `/${gv}${k.namespaced ? '/namespaces/{namespace}' : ''}/${k.plural}`;
      const params = ['dryRun', 'fieldManager', 'fieldValidation', 'force'].map((name) => ({ name, in: 'query', schema: { type: 'string' } }));
      const op = (verb: string) => ({ operationId: `${verb}${k.kind}`, 'x-kubernetes-action': verb, 'x-kubernetes-group-version-kind': gvk, parameters: params, responses: { '200': { description: 'OK' } } });
      paths[`${base}/{name}`] = { get: op('get'), put: op('put'), patch: op('patch'), delete: op('delete') };
      paths[base] = { get: op('list'), post: op('post') };
      const schemaName = `${k.group ? k.group.split('.').reverse().join('.') : 'io.k8s.api.core'}.${k.version}.${k.kind}`;
      schemas[schemaName] = { ...(k.schema ?? { type: 'object', 'x-kubernetes-preserve-unknown-fields': true }), 'x-kubernetes-group-version-kind': [gvk] };
    }
    return { openapi: '3.0.0', info: { title: 'Kubernetes (Tandem fake apiserver)', version: 'v1.32.0' }, paths, components: { schemas } };
  }

  private groupList(): Record<string, unknown> {
    const groups = new Map<string, Set<string>>();
    for (const k of this.store.allKinds()) {
      if (k.group === '') continue;
      if (!groups.has(k.group)) groups.set(k.group, new Set());
      groups.get(k.group)?.add(k.version);
    }
    return {
      kind: 'APIGroupList',
      apiVersion: 'v1',
      groups: [...groups].map(([name, versions]) => {
        const vs = [...versions].map((v) => ({ groupVersion: `${name}/${v}`, version: v }));
        return { name, versions: vs, preferredVersion: vs[0] };
      }),
    };
  }

  private resourceList(group: string, version: string): { kind: string; apiVersion: string; groupVersion: string; resources: unknown[] } {
    const verbs = ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'];
    const resources = this.store
      .allKinds()
      .filter((k) => k.group === group && k.version === version)
      .flatMap((k) => [
        { name: k.plural, singularName: k.singular, namespaced: k.namespaced, kind: k.kind, verbs, ...(k.shortNames.length ? { shortNames: k.shortNames } : {}), ...(k.categories.length ? { categories: k.categories } : {}) },
        ...(k.statusSubresource ? [{ name: `${k.plural}/status`, singularName: '', namespaced: k.namespaced, kind: k.kind, verbs: ['get', 'patch', 'update'] }] : []),
      ]);
    return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: group ? `${group}/${version}` : version, resources };
  }

  /** TokenReview, as the real apiserver answers it: authenticated with the user, or not (never an error for an unknown token). */
  private tokenReview(res: ServerResponse, body: string): void {
    let token = '';
    try {
      token = String((JSON.parse(body) as { spec?: { token?: unknown } }).spec?.token ?? '');
    } catch {
      return this.sendError(res, new ApiStatusError({ ...apiErrors.internal('bad TokenReview body').status, code: 400, reason: 'BadRequest', message: 'TokenReview body is not JSON' }));
    }
    const user = this.tokenReviewUsers.get(token);
    sendJson(res, 201, {
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenReview',
      metadata: { creationTimestamp: null },
      spec: {},
      status: user ? { authenticated: true, user: { username: user.username, groups: user.groups ?? [] } } : { authenticated: false, error: 'token not found' },
    });
  }

  private sendError(res: ServerResponse, err: unknown): void {
    const status = err instanceof ApiStatusError ? err.status : apiErrors.internal(err instanceof Error ? err.message : String(err)).status;
    if (res.headersSent) {
      res.end();
      return;
    }
    sendJson(res, status.code, status);
  }
}

const PATCH_TYPES: Record<string, PatchType> = {
  'application/merge-patch+json': 'merge',
  'application/json-patch+json': 'json',
  'application/strategic-merge-patch+json': 'strategic',
  'application/apply-patch+yaml': 'apply',
};

function parseSelectorOr400(text: string): ReturnType<typeof parseSelector> {
  try {
    return parseSelector(text);
  } catch (err) {
    throw apiErrors.badRequest(`unable to parse requirement: ${(err as Error).message}`);
  }
}

/** Only `metadata.name=<name>` is supported (what kubectl and informers send). */
function parseFieldSelector(text: string): string | undefined {
  if (text === '') return undefined;
  const m = /^metadata\.name(?:==|=)(.+)$/.exec(text);
  if (!m) throw apiErrors.badRequest(`field selector not supported by the fake apiserver: ${text}`);
  return m[1];
}

function parseJson(body: string, contentType: string): KubeObject {
  if (contentType !== '' && contentType !== 'application/json') throw apiErrors.unsupportedMediaType(contentType);
  try {
    return JSON.parse(body) as KubeObject;
  } catch (err) {
    throw apiErrors.badRequest(`error decoding body: ${(err as Error).message}`);
  }
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > 16 * 1024 * 1024) {
        reject(apiErrors.badRequest('request body too large'));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function sendJson(res: ServerResponse, code: number, body: unknown, warnings: string[] = []): void {
  const text = JSON.stringify(body);
  const headers: Record<string, string | string[]> = { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)) };
  if (warnings.length > 0) headers.warning = warnings.map((w) => `299 - ${JSON.stringify(w)}`);
  res.writeHead(code, headers);
  res.end(text);
}

function sendText(res: ServerResponse, code: number, text: string): void {
  res.writeHead(code, { 'content-type': 'text/plain' });
  res.end(text);
}

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import { ErrorCode, TandemError, parseOrThrow, type Logger } from '@tandem/common';
import { Run, RunEvent } from '@tandem/protocol';
import { TERMINAL_PHASES } from '@tandem/rollout-queue';
import type { Registry } from 'prom-client';
import type { RunManager } from '../runs/run-manager.js';
import type { WeightSyncManager } from '../sync/weight-sync-manager.js';
import { REQUEST_TOO_LARGE, pathSegment, toHttpError } from './http-errors.js';
import { runToProto } from './run-proto.js';
import { createStatusPage } from './status-page.js';
import { ApiAuth } from '../auth/api-auth.js';
import { RunAccess } from '../auth/run-access.js';
import type { Principal } from '../auth/principal.js';
import type { TlsKeyPair } from '../auth/tls.js';

/** Collaborators of the HTTP API. */
export interface HttpApiDeps {
  runs: RunManager;
  syncs: WeightSyncManager;
  registry: Registry;
  /** Readiness: resolves when dependencies (Redis) answer. */
  ready: () => Promise<void>;
  log: Logger;
  maxRequestBytes: number;
  /**
   * Throws when this replica may not change state (a standby: UNAVAILABLE
   * naming the leader); called before every request that is not a GET.
   */
  writable?: () => Promise<void>;
  /** Authentication; off (every caller an admin) when omitted. */
  auth?: ApiAuth;
  /** Serve HTTPS with this certificate; plain HTTP when omitted. */
  tls?: TlsKeyPair;
  /** Per-run credentials, for GET /v1/runs/{id}/credentials (authentication on only). */
  runCredentials?: (runId: string) => Promise<{ token: string; redisUrl: string }>;
}

const SubmitBody = z.strictObject({
  spec: z.unknown(),
  runId: z.string().optional(),
  namespace: z.string().max(63).optional(),
});
const ListQuery = z.strictObject({ namespace: z.string().max(63).optional() });
const CREDENTIALS_PATH = /^\/v1\/runs\/([^/:]+)\/credentials$/;
const STATS_PATH = /^\/v1\/runs\/([^/:]+)\/stats$/;
const CancelBody = z.strictObject({ reason: z.string().max(1024).optional() });
const GeneratorBody = z.strictObject({ id: z.string().min(1).max(128), url: z.url({ protocol: /^https?$/ }).max(2048) });
const GENERATORS_PATH = /^\/v1\/runs\/([^/:]+)\/generators(?:\/([^/]+))?$/;

const EVENTS_PATH = /^\/v1\/runs\/([^/:]+)\/events$/;
const EventsQuery = z.strictObject({ limit: z.coerce.number().int().min(1).max(200).default(50) });
const RUN_PATH = /^\/v1\/runs\/([^/:]+)(?::(cancel|watch|scale))?$/;
const ScaleBody = z.strictObject({ generators: z.number().int().min(0).max(4096) });

/**
 * The HTTP/JSON API: the RunService operations under /v1/runs (same
 * validation and same Run shape as gRPC), /metrics, /healthz and /readyz,
 * and the status page (/ui, status-page.ts).
 */
export function createHttpApi(deps: HttpApiDeps): Server {
  const { runs, log } = deps;
  const auth = deps.auth ?? new ApiAuth();
  const access = new RunAccess(runs);
  const statusPage = createStatusPage({ runs, registry: deps.registry });
  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    handle(req, res).catch((err: unknown) => sendError(res, err));
  };
  const server: Server = deps.tls ? createHttpsServer({ cert: deps.tls.cert, key: deps.tls.key }, onRequest) : createServer(onRequest);
  // Bytes that are not HTTP never reach `handle`: Node's default answer is
  // a bare 400 with no body. Answer with the same JSON error as every other
  // refusal, then close, since the connection's framing is lost.
  server.on('clientError', (err: NodeJS.ErrnoException, socket) => {
    // As Node's own handler: no status line once a response has begun.
    if (!socket.writable || (socket as { _httpMessage?: ServerResponse })._httpMessage?.headersSent) {
      socket.destroy();
      return;
    }
    const tooLarge = err.code === 'HPE_HEADER_OVERFLOW';
    const { body } = toHttpError(
      new TandemError(ErrorCode.InvalidArgument, tooLarge ? 'request headers are too large' : `malformed HTTP request: ${err.code ?? err.message}`, {
        reason: tooLarge ? 'HEADERS_TOO_LARGE' : 'MALFORMED_HTTP',
      }),
    );
    const text = JSON.stringify(body);
    const status = tooLarge ? '431 Request Header Fields Too Large' : '400 Bad Request';
    socket.end(`HTTP/1.1 ${status}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`);
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const path = url.pathname;
    const method = req.method ?? 'GET';
    if (path === '/healthz') return sendJson(res, 200, { status: 'ok' });
    if (path === '/readyz') {
      try {
        await deps.ready();
        return sendJson(res, 200, { status: 'ready' });
      } catch (err) {
        return sendJson(res, 503, { status: 'not ready', reason: TandemError.from(err).message });
      }
    }
    if (path === '/metrics' && method === 'GET') {
      if (auth.metricsRequireAuth) await auth.principal(req.headers.authorization);
      await Promise.all(runs.activeRunIds().map((id) => runs.get(id).catch(() => undefined)));
      res.writeHead(200, { 'content-type': deps.registry.contentType });
      res.end(await deps.registry.metrics());
      return;
    }
    // The status page's HTML is static; the data it polls is authorized below.
    if (path === '/ui' || path === '/ui/') return void (await statusPage.handle(req, res, path, method));
    const principal = await auth.principal(req.headers.authorization);
    if (method !== 'GET' && method !== 'HEAD') await deps.writable?.();
    if (path === '/v1/runs') {
      if (method === 'POST') {
        const body = parseOrThrow(SubmitBody, await readJson(req, deps.maxRequestBytes), 'request');
        const view = await access.submit(principal, {
          spec: body.spec,
          ...(body.runId === undefined ? {} : { runId: body.runId }),
          ...(body.namespace === undefined ? {} : { namespace: body.namespace }),
        });
        return sendJson(res, 201, Run.toJSON(runToProto(view)));
      }
      if (method === 'GET') {
        const query = parseOrThrow(ListQuery, Object.fromEntries(url.searchParams), 'query');
        const views = await access.list(principal, query.namespace);
        return sendJson(res, 200, { runs: views.map((v) => Run.toJSON(runToProto(v))) });
      }
      return methodNotAllowed(method, path);
    }
    const gm = GENERATORS_PATH.exec(path);
    if (gm) {
      const runId = pathSegment(gm[1] as string, 'runId');
      const genId = gm[2] === undefined ? undefined : pathSegment(gm[2], 'generatorId');
      await access.check(principal, runId, method === 'GET' ? 'read' : 'write', method === 'GET' ? 'list generators' : 'change generators');
      if (genId === undefined && method === 'GET') return sendJson(res, 200, { generators: await deps.syncs.listGenerators(runId) });
      if (genId === undefined && method === 'POST') {
        const body = parseOrThrow(GeneratorBody, await readJson(req, deps.maxRequestBytes), 'generator');
        return sendJson(res, 201, await deps.syncs.registerGenerator(runId, body.id, body.url));
      }
      if (genId !== undefined && method === 'DELETE') {
        await deps.syncs.removeGenerator(runId, genId);
        return sendJson(res, 200, { removed: genId });
      }
      return methodNotAllowed(method, path);
    }
    const m = RUN_PATH.exec(path);
    if (m) {
      const id = pathSegment(m[1] as string, 'runId');
      const verb = m[2];
      if (verb === undefined && method === 'GET') return sendJson(res, 200, Run.toJSON(runToProto(await access.get(principal, id))));
      if (verb === 'cancel' && method === 'POST') {
        await access.check(principal, id, 'write', 'cancel runs');
        const body = parseOrThrow(CancelBody, await readJson(req, deps.maxRequestBytes, {}), 'request');
        return sendJson(res, 200, Run.toJSON(runToProto(await access.cancel(principal, id, body.reason ?? ''))));
      }
      if (verb === 'watch' && method === 'GET') return watch(principal, id, req, res);
      if (verb === 'scale' && method === 'POST') {
        await access.check(principal, id, 'write', 'scale runs');
        const body = parseOrThrow(ScaleBody, await readJson(req, deps.maxRequestBytes), 'scale request');
        return sendJson(res, 200, Run.toJSON(runToProto(await access.scale(principal, id, body.generators))));
      }
      return methodNotAllowed(method, path);
    }
    const em = EVENTS_PATH.exec(path);
    if (em) {
      if (method !== 'GET') return methodNotAllowed(method, path);
      const query = parseOrThrow(EventsQuery, Object.fromEntries(url.searchParams), 'query');
      const runId = pathSegment(em[1] as string, 'runId');
      await access.check(principal, runId, 'read', 'read run events');
      const events = await runs.events(runId, query.limit);
      return sendJson(res, 200, { events: events.map((e) => ({ time: new Date(e.atMs).toISOString(), type: e.type, reason: e.reason, message: e.message })) });
    }
    const cm = CREDENTIALS_PATH.exec(path);
    if (cm && method === 'GET' && deps.runCredentials) {
      // What an external trainer and rollout workers of the run present; editors of its namespace may fetch it.
      const runId = pathSegment(cm[1] as string, 'runId');
      const view = await access.check(principal, runId, 'write', 'read run credentials');
      // An ended run's Redis user is gone; issuing would make it again.
      if (TERMINAL_PHASES.has(view.status.phase)) throw new TandemError(ErrorCode.FailedPrecondition, `run ${runId} has ended (${view.status.phase}): it has no credentials any more`);
      return sendJson(res, 200, { runId, ...(await deps.runCredentials(runId)) });
    }
    const sm = STATS_PATH.exec(path);
    if (sm) await access.check(principal, pathSegment(sm[1] as string, 'runId'), 'read', 'read run stats');
    if (await statusPage.handle(req, res, path, method)) return; // GET /v1/runs/{id}/stats
    throw new TandemError(ErrorCode.NotFound, `no route for ${method} ${path}`);
  }

  /** Newline-delimited JSON RunEvents until the run ends or the client goes. */
  async function watch(principal: Principal, id: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    const abort = new AbortController();
    const stream = await access.watch(principal, id, abort.signal); // 404 / 403 before the stream starts
    req.on('close', () => abort.abort());
    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-cache' });
    try {
      for await (const view of stream) {
        const event = RunEvent.fromPartial({ runId: view.id, type: 'status', status: runToProto(view).status });
        res.write(`${JSON.stringify(RunEvent.toJSON(event))}\n`);
      }
    } catch (err) {
      if (!abort.signal.aborted) log.warn({ err, runId: id }, 'watch stream failed');
    }
    res.end();
  }

  function sendError(res: ServerResponse, err: unknown): void {
    const { status, body } = toHttpError(err);
    if (status >= 500) log.error({ err }, 'http request failed');
    if (res.headersSent) {
      res.end();
      return;
    }
    // The rest of an oversized body is not read: close rather than drain it.
    if (status === 413) res.setHeader('connection', 'close');
    sendJson(res, status, body);
  }

  return server;
}

function methodNotAllowed(method: string, path: string): never {
  throw new TandemError(ErrorCode.NotFound, `no route for ${method} ${path}`);
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function bodyTooLarge(limit: number): TandemError {
  return new TandemError(ErrorCode.InvalidArgument, `request body exceeds the limit of ${limit} bytes (TANDEM_MAX_REQUEST_BYTES)`, {
    fieldViolations: [{ path: '', message: `body larger than ${limit} bytes` }],
    reason: REQUEST_TOO_LARGE,
  });
}

async function readJson(req: IncomingMessage, limit: number, empty?: unknown): Promise<unknown> {
  // A declared length over the limit is refused before reading a byte.
  if (Number(req.headers['content-length'] ?? 0) > limit) throw bodyTooLarge(limit);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw bodyTooLarge(limit);
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '' && empty !== undefined) return empty;
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new TandemError(ErrorCode.InvalidArgument, `request body is not valid JSON: ${(err as Error).message}`, {
      fieldViolations: [{ path: '', message: 'not valid JSON' }],
    });
  }
}

/** The port a listening server got (for port 0). */
export function boundPort(server: Server): number {
  return (server.address() as AddressInfo).port;
}

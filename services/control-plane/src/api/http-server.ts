import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import { ErrorCode, TandemError, parseOrThrow, type Logger } from '@tandem/common';
import { Run, RunEvent } from '@tandem/protocol';
import type { Registry } from 'prom-client';
import type { RunManager } from '../runs/run-manager.js';
import type { WeightSyncManager } from '../sync/weight-sync-manager.js';
import { toHttpError } from './http-errors.js';
import { runToProto } from './run-proto.js';
import { createStatusPage } from './status-page.js';

/** Collaborators of the HTTP API. */
export interface HttpApiDeps {
  runs: RunManager;
  syncs: WeightSyncManager;
  registry: Registry;
  /** Readiness: resolves when dependencies (Redis) answer. */
  ready: () => Promise<void>;
  log: Logger;
  maxRequestBytes: number;
}

const SubmitBody = z.strictObject({
  spec: z.unknown(),
  runId: z.string().optional(),
});
const CancelBody = z.strictObject({ reason: z.string().max(1024).optional() });
const GeneratorBody = z.strictObject({ id: z.string().min(1).max(128), url: z.string().min(1).max(2048) });
const GENERATORS_PATH = /^\/v1\/runs\/([^/:]+)\/generators(?:\/([^/]+))?$/;

const RUN_PATH = /^\/v1\/runs\/([^/:]+)(?::(cancel|watch|scale))?$/;
const ScaleBody = z.strictObject({ generators: z.number().int().min(0).max(4096) });

/**
 * The HTTP/JSON API: the RunService operations under /v1/runs (same
 * validation and same Run shape as gRPC), /metrics, /healthz and /readyz,
 * and the status page (/ui, status-page.ts).
 */
export function createHttpApi(deps: HttpApiDeps): Server {
  const { runs, log } = deps;
  const statusPage = createStatusPage({ runs, registry: deps.registry });
  const server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => sendError(res, err));
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
      await Promise.all(runs.activeRunIds().map((id) => runs.get(id).catch(() => undefined)));
      res.writeHead(200, { 'content-type': deps.registry.contentType });
      res.end(await deps.registry.metrics());
      return;
    }
    if (path === '/v1/runs') {
      if (method === 'POST') {
        const body = parseOrThrow(SubmitBody, await readJson(req, deps.maxRequestBytes), 'request');
        const view = await runs.submit({ spec: body.spec, ...(body.runId === undefined ? {} : { runId: body.runId }) });
        return sendJson(res, 201, Run.toJSON(runToProto(view)));
      }
      if (method === 'GET') {
        const views = await runs.list();
        return sendJson(res, 200, { runs: views.map((v) => Run.toJSON(runToProto(v))) });
      }
      return methodNotAllowed(method, path);
    }
    const gm = GENERATORS_PATH.exec(path);
    if (gm) {
      const runId = decodeURIComponent(gm[1] as string);
      const genId = gm[2] === undefined ? undefined : decodeURIComponent(gm[2]);
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
      const id = decodeURIComponent(m[1] as string);
      const verb = m[2];
      if (verb === undefined && method === 'GET') return sendJson(res, 200, Run.toJSON(runToProto(await runs.get(id))));
      if (verb === 'cancel' && method === 'POST') {
        const body = parseOrThrow(CancelBody, await readJson(req, deps.maxRequestBytes, {}), 'request');
        return sendJson(res, 200, Run.toJSON(runToProto(await runs.cancel(id, body.reason ?? ''))));
      }
      if (verb === 'watch' && method === 'GET') return watch(id, req, res);
      if (verb === 'scale' && method === 'POST') {
        const body = parseOrThrow(ScaleBody, await readJson(req, deps.maxRequestBytes), 'scale request');
        return sendJson(res, 200, Run.toJSON(runToProto(await runs.scale(id, body.generators))));
      }
      return methodNotAllowed(method, path);
    }
    if (await statusPage.handle(req, res, path, method)) return; // GET /ui, GET /v1/runs/{id}/stats
    throw new TandemError(ErrorCode.NotFound, `no route for ${method} ${path}`);
  }

  /** Newline-delimited JSON RunEvents until the run ends or the client goes. */
  async function watch(id: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
    await runs.get(id); // 404 before the stream starts
    const abort = new AbortController();
    req.on('close', () => abort.abort());
    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-cache' });
    try {
      for await (const view of runs.watch(id, abort.signal)) {
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

async function readJson(req: IncomingMessage, limit: number, empty?: unknown): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) {
      throw new TandemError(ErrorCode.InvalidArgument, `request body exceeds the limit of ${limit} bytes (TANDEM_MAX_REQUEST_BYTES)`, {
        fieldViolations: [{ path: '', message: `body larger than ${limit} bytes` }],
      });
    }
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

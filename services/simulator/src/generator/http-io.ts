import type { IncomingMessage, ServerResponse } from 'node:http';
import { ErrorCode, TandemError } from '@tandem/common';

/**
 * HTTP plumbing for the simulated generator, and the one place where
 * TandemError codes become HTTP statuses and vLLM-shaped error bodies.
 *
 * vLLM answers in two shapes, and clients see both:
 * - OpenAI routes (`/v1/...`, `/tokenize`): `{"error": {"message", "type", "param", "code"}}`;
 * - FastAPI `HTTPException`s in the dev routes (`/init_weight_transfer_engine`,
 *   `/update_weights`, unknown paths): `{"detail": "..."}`.
 */

/** Header that marks every answer of the simulator. */
export const SIMULATED_HEADER = 'x-tandem-simulated';

/** HTTP status of each error code. */
export function httpStatusOf(code: ErrorCode): number {
  switch (code) {
    case ErrorCode.InvalidArgument:
      return 400;
    case ErrorCode.NotFound:
      return 404;
    case ErrorCode.AlreadyExists:
    case ErrorCode.FailedPrecondition:
    case ErrorCode.Aborted:
      return 409;
    case ErrorCode.ResourceExhausted:
      return 429;
    case ErrorCode.Unavailable:
      return 503;
    case ErrorCode.DeadlineExceeded:
      return 504;
    case ErrorCode.Unauthenticated:
      return 401;
    case ErrorCode.PermissionDenied:
      return 403;
    case ErrorCode.Cancelled:
      return 499;
    case ErrorCode.Internal:
      return 500;
  }
}

/** vLLM's error `type` names per status (ErrorResponse.error.type). */
function errorTypeOf(status: number): string {
  if (status === 400) return 'BadRequestError';
  if (status === 404) return 'NotFoundError';
  if (status === 409) return 'ConflictError';
  if (status === 429) return 'RateLimitError';
  if (status === 503) return 'ServiceUnavailableError';
  return 'InternalServerError';
}

/** Writes a JSON body with the simulator's headers. */
export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  sendRaw(res, status, JSON.stringify(body), headers);
}

/** Writes a pre-serialised JSON body (for deliberately malformed answers). */
export function sendRaw(res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
  if (res.headersSent || res.destroyed) return;
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    [SIMULATED_HEADER]: '1',
    ...headers,
  });
  res.end(text);
}

/** An OpenAI-route error: `{"error": {...}}`. */
export function sendOpenAiError(
  res: ServerResponse,
  status: number,
  message: string,
  options: { param?: string | null; headers?: Record<string, string> } = {},
): void {
  sendJson(
    res,
    status,
    { error: { message, type: errorTypeOf(status), param: options.param ?? null, code: status } },
    options.headers,
  );
}

/** A FastAPI HTTPException: `{"detail": "..."}`. */
export function sendDetail(res: ServerResponse, status: number, detail: string): void {
  sendJson(res, status, { detail });
}

/** Maps anything thrown by a handler to an OpenAI-shaped error answer. */
export function sendErrorFrom(res: ServerResponse, err: unknown): void {
  const e = TandemError.from(err);
  const param = e.fieldViolations[0]?.path ?? null;
  sendOpenAiError(res, httpStatusOf(e.code), e.message, { param: param === '' ? null : param });
}

/** Reads a request body up to `maxBytes`; rejects with INVALID_ARGUMENT past it. */
export async function readBody(req: IncomingMessage, maxBytes: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
    size += buf.length;
    if (size > maxBytes) {
      throw new TandemError(ErrorCode.InvalidArgument, `request body larger than ${maxBytes} bytes`);
    }
    chunks.push(buf);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Result of parsing a JSON body: the value, or why it is not JSON. */
export type JsonBody = { ok: true; value: unknown } | { ok: false; error: string };

/** Parses a body as JSON; an empty body is `{}` (FastAPI routes with optional bodies). */
export function parseJsonBody(text: string): JsonBody {
  if (text.trim() === '') return { ok: true, value: {} };
  try {
    return { ok: true, value: JSON.parse(text) as unknown };
  } catch (err) {
    return { ok: false, error: (err as Error).message };
  }
}

/** A plain object, or undefined for anything else. */
export function asRecord(value: unknown): Record<string, unknown> | undefined {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return undefined;
  return value as Record<string, unknown>;
}

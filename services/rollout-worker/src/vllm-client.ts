import { z } from 'zod';
import { ErrorCode, TandemError } from '@tandem/common';
import { retryAfterMs } from './backoff.js';
import { readCapped } from './read-capped.js';

/**
 * Client for the one vLLM route rollout workers use: `POST /v1/completions`
 * with the request fields TRL's async GRPO rollout worker sends
 * (huggingface/trl `trl/experimental/async_grpo/async_rollout_worker.py`):
 * the prompt (token ids when known), `n`, `max_tokens`, `temperature`,
 * `logprobs: 0` (the sampled token's logprob only) and `return_token_ids:
 * true`; it reads `choices[i].token_ids`, `choices[i].logprobs.token_logprobs`
 * and `finish_reason`. See docs/vllm-routes.md.
 */

/** One completion as Tandem needs it. */
export interface Completion {
  text: string;
  tokenIds: number[];
  logprobs: number[];
  finishReason: string;
}

/** Result of one completions request. */
export interface CompletionsResult {
  completions: Completion[];
  promptTokenIds: number[] | undefined;
  /**
   * Policy versions reported by the server (the simulator's
   * `x-tandem-min/max-policy-version` headers); real vLLM reports none and
   * the worker stamps versions from the weight-sync boundaries instead.
   */
  reportedMinVersion: number | undefined;
  reportedMaxVersion: number | undefined;
}

/** A completions request. */
export interface CompletionsRequest {
  model: string;
  prompt: string | number[];
  n: number;
  maxTokens: number;
  temperature: number;
  seed?: number;
}

/** A failed request, with whether and when to retry. */
export class GenerationError extends TandemError {
  /** How long the server asked us to wait (Retry-After), if it did. */
  readonly retryAfterMs: number | undefined;
  /** Counts toward marking the generator unhealthy. */
  readonly generatorFault: boolean;

  constructor(code: ErrorCode, message: string, options: { retryAfterMs?: number; generatorFault: boolean; cause?: unknown }) {
    super(code, message, options.cause === undefined ? {} : { cause: options.cause });
    this.retryAfterMs = options.retryAfterMs;
    this.generatorFault = options.generatorFault;
  }
}

/** Token ids travel as packed int32 (tandem.v1.PromptGroup): a larger id would be corrupted, not stored. */
export const MAX_TOKEN_ID = 2 ** 31 - 1;
const tokenId = z.number().int().nonnegative().max(MAX_TOKEN_ID);

const Choice = z.object({
  index: z.number().int().nonnegative().optional(),
  text: z.string().default(''),
  token_ids: z.array(tokenId),
  logprobs: z.object({ token_logprobs: z.array(z.number().nullable()) }),
  finish_reason: z.string().max(64).nullable().default('stop'),
  prompt_token_ids: z.array(tokenId).nullable().optional(),
});
const CompletionsResponse = z.object({
  choices: z.array(Choice).min(1),
  prompt_token_ids: z.array(tokenId).nullable().optional(),
});

/**
 * Largest completions body read, for `n` completions of at most
 * `maxTokens`: 1 MiB (the prompt's ids echoed back, framing) plus 512
 * bytes per requested token (its id, logprob and text, escaped). A body
 * past it is a generator fault, not something to buffer.
 */
export function maxCompletionsResponseBytes(n: number, maxTokens: number): number {
  return 1024 * 1024 + n * maxTokens * 512;
}

/** Options of {@link requestCompletions}. */
export interface RequestOptions {
  timeoutMs: number;
  signal?: AbortSignal;
  nowMs: () => number;
  fetch?: typeof fetch;
}

/**
 * Sends one completions request and validates the answer: bad JSON, a
 * token/logprob count mismatch, more tokens than `max_tokens`, a token id
 * that is not an int32, a logprob that is not a finite number ≤ 0, or a
 * body over {@link maxCompletionsResponseBytes} is a malformed response,
 * rejected with the reason (retryable: another attempt may well succeed).
 */
export async function requestCompletions(baseUrl: string, req: CompletionsRequest, options: RequestOptions): Promise<CompletionsResult> {
  const doFetch = options.fetch ?? fetch;
  const timeout = AbortSignal.timeout(options.timeoutMs);
  const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
  let res: Response;
  let text: string;
  try {
    res = await doFetch(`${baseUrl}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: req.model,
        prompt: req.prompt,
        n: req.n,
        max_tokens: req.maxTokens,
        temperature: req.temperature,
        logprobs: 0,
        return_token_ids: true,
        ...(req.seed === undefined ? {} : { seed: req.seed }),
      }),
      signal,
    });
    const limit = maxCompletionsResponseBytes(req.n, req.maxTokens);
    text = await readCapped(res, limit, (declared) =>
      malformed(baseUrl, `body ${declared === undefined ? '' : `of ${declared} bytes `}exceeds the limit of ${limit} bytes (1 MiB + 512 bytes per requested token)`),
    );
  } catch (err) {
    if (err instanceof GenerationError) throw err;
    if (options.signal?.aborted) throw new GenerationError(ErrorCode.Cancelled, 'request aborted', { generatorFault: false, cause: err });
    const what = timeout.aborted ? `timed out after ${options.timeoutMs} ms` : `failed: ${(err as Error).message}`;
    // A dropped connection is also how a pausing vLLM can answer; retryable.
    throw new GenerationError(ErrorCode.Unavailable, `completions request to ${baseUrl} ${what}`, { generatorFault: true, cause: err });
  }
  if (res.status === 429 || res.status === 503) {
    const wait = retryAfterMs(res.headers.get('retry-after'), options.nowMs());
    throw new GenerationError(ErrorCode.ResourceExhausted, `generator ${baseUrl} answered ${res.status}`, {
      generatorFault: false,
      ...(wait === undefined ? {} : { retryAfterMs: wait }),
    });
  }
  if (!res.ok) {
    const code = res.status >= 500 ? ErrorCode.Unavailable : ErrorCode.InvalidArgument;
    throw new GenerationError(code, `generator ${baseUrl} answered ${res.status}: ${text.slice(0, 200)}`, {
      generatorFault: res.status >= 500,
    });
  }
  return parseCompletions(text, req, res.headers, baseUrl);
}

function malformed(baseUrl: string, reason: string): GenerationError {
  return new GenerationError(ErrorCode.Unavailable, `malformed response from ${baseUrl}: ${reason}`, { generatorFault: true });
}

/** Validates a completions body (exported for tests). */
export function parseCompletions(text: string, req: CompletionsRequest, headers: Headers, baseUrl: string): CompletionsResult {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw malformed(baseUrl, 'body is not valid JSON');
  }
  const parsed = CompletionsResponse.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw malformed(baseUrl, `${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}`);
  }
  const choices = parsed.data.choices;
  if (choices.length !== req.n) throw malformed(baseUrl, `${choices.length} choices for n = ${req.n}`);
  const completions = choices.map((c, i): Completion => {
    if (c.logprobs.token_logprobs.length !== c.token_ids.length) {
      throw malformed(baseUrl, `choice ${i} has ${c.token_ids.length} tokens but ${c.logprobs.token_logprobs.length} logprobs`);
    }
    if (c.token_ids.length > req.maxTokens) {
      throw malformed(baseUrl, `choice ${i} has ${c.token_ids.length} tokens, more than max_tokens ${req.maxTokens}`);
    }
    const logprobs = c.logprobs.token_logprobs.map((lp, j) => {
      if (lp === null || !Number.isFinite(lp) || lp > 0) throw malformed(baseUrl, `choice ${i} logprob ${j} is ${lp}`);
      return lp;
    });
    return { text: c.text, tokenIds: c.token_ids, logprobs, finishReason: c.finish_reason ?? 'stop' };
  });
  const header = (name: string): number | undefined => {
    const v = headers.get(name);
    return v === null || v === '' || !Number.isInteger(Number(v)) ? undefined : Number(v);
  };
  return {
    completions,
    promptTokenIds: parsed.data.prompt_token_ids ?? choices[0]?.prompt_token_ids ?? undefined,
    reportedMinVersion: header('x-tandem-min-policy-version'),
    reportedMaxVersion: header('x-tandem-max-policy-version'),
  };
}

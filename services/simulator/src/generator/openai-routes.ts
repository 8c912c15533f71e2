import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { TandemError, zodViolations } from '@tandem/common';
import type { SequenceResult } from './batch-engine.js';
import type { ChoiceOutcome } from './completions.js';
import { buildCompletionResponse, malformedBody, parseCompletionRequest } from './completions.js';
import type { RouteHandler } from './context.js';
import { parseJsonBody, readBody, sendErrorFrom, sendJson, sendOpenAiError, sendRaw } from './http-io.js';
import { deriveSeed, planCompletion } from './sampler.js';
import { decode, encode, renderChat, tokenString } from './tokenizer.js';

/**
 * The OpenAI-compatible routes of the simulated generator: completions,
 * models, tokenize/detokenize. Shapes follow vLLM; Tandem extensions are
 * the `tandem_*` fields and `x-tandem-*` headers.
 */

/** Response headers carrying the policy versions (a Tandem extension). */
export const POLICY_VERSION_HEADER = 'x-tandem-policy-version';
export const MIN_POLICY_VERSION_HEADER = 'x-tandem-min-policy-version';
export const MAX_POLICY_VERSION_HEADER = 'x-tandem-max-policy-version';

/** `GET /v1/models`: vLLM's ModelList, with `max_model_len` (TRL reads it). */
export const listModels: RouteHandler = (ctx, _req, res) => {
  const created = Math.floor(ctx.clock.now() / 1000);
  sendJson(res, 200, {
    object: 'list',
    data: [
      {
        id: ctx.config.model,
        object: 'model',
        created,
        owned_by: 'vllm',
        root: ctx.config.model,
        parent: null,
        max_model_len: ctx.config.maxModelLen,
        permission: [],
        tandem_simulated: true,
      },
    ],
  });
};

/**
 * `POST /v1/completions`. Faults are drawn after validation, so malformed
 * requests never consume a fault draw.
 */
export const createCompletion: RouteHandler = async (ctx, req, res) => {
  const text = await readBody(req, ctx.config.maxRequestBytes);
  const parsed = parseJsonBody(text);
  if (!parsed.ok) {
    sendOpenAiError(res, 400, `Invalid JSON: ${parsed.error}`);
    return;
  }
  let prompts: number[][];
  let request: ReturnType<typeof parseCompletionRequest>['request'];
  try {
    ({ request, prompts } = parseCompletionRequest(parsed.value, ctx.config));
  } catch (err) {
    sendErrorFrom(res, err);
    return;
  }
  ctx.counters.completionRequests++;
  const seq = ctx.nextRequestSeq();
  const fault = ctx.faults.next();
  if (fault.kind === 'error') {
    ctx.counters.injectedErrors++;
    sendOpenAiError(res, 500, 'simulated internal error (Tandem fault injection)');
    return answered(ctx, res);
  }
  if (fault.kind === 'hang') {
    // Never answer; the socket stays open until the client or close() ends it.
    ctx.counters.injectedHangs++;
    ctx.counters.hangingNow++;
    res.on('close', () => ctx.counters.hangingNow--);
    return;
  }
  if (fault.kind === 'rate-limit') {
    ctx.counters.injectedRateLimits++;
    sendOpenAiError(res, 429, 'simulated rate limit (Tandem fault injection)', {
      headers: { 'retry-after': String(fault.retryAfterSeconds) },
    });
    return answered(ctx, res);
  }
  if (ctx.weights.paused && ctx.config.whilePaused === 'reject') {
    ctx.counters.rejectedWhilePaused++;
    sendOpenAiError(res, 503, 'generation is paused (simulator whilePaused=reject)');
    return;
  }

  const n = request.n;
  const maxTokens = request.max_tokens ?? 16;
  const temperature = request.temperature ?? 1;
  const ids: number[] = [];
  const pending: Array<{ index: number; promptTokenIds: number[]; result: Promise<SequenceResult> }> = [];
  prompts.forEach((promptIds, p) => {
    for (let i = 0; i < n; i++) {
      // Seeded requests depend only on (seed, prompt, choice): same input, same
      // completion. Unseeded ones follow the server seed and arrival order.
      const seed =
        request.seed != null
          ? deriveSeed('seeded', request.seed, promptIds, i)
          : deriveSeed('unseeded', ctx.config.seed, seq, p, i);
      const plan = planCompletion({
        seed,
        maxTokens,
        minTokens: request.min_tokens,
        ignoreEos: request.ignore_eos,
        temperature,
        vocabSize: ctx.config.vocabSize,
        eosTokenId: ctx.config.eosTokenId,
        outputLength: ctx.config.outputLength,
      });
      const handle = ctx.engine.submit(plan, promptIds.length);
      ids.push(handle.id);
      pending.push({ index: p * n + i, promptTokenIds: promptIds, result: handle.result });
    }
  });
  let done = false;
  // vLLM aborts a request whose client went away; so do we.
  res.on('close', () => {
    if (!done) for (const id of ids) ctx.engine.cancel(id);
  });
  const outcomes: ChoiceOutcome[] = [];
  for (const p of pending) outcomes.push({ index: p.index, promptTokenIds: p.promptTokenIds, result: await p.result });
  done = true;
  if (res.destroyed) return;

  const body = buildCompletionResponse({
    id: `cmpl-${request.request_id ?? randomUUID().replace(/-/g, '')}`,
    createdS: Math.floor(ctx.clock.now() / 1000),
    model: ctx.config.model,
    request,
    outcomes,
  });
  const headers = versionHeaders(ctx.weights.policyVersion, outcomes);
  if (fault.kind === 'malformed') {
    ctx.counters.injectedMalformed++;
    sendRaw(res, 200, malformedBody(body, fault.malformed), headers);
  } else {
    sendJson(res, 200, body, headers);
  }
  return answered(ctx, res);
};

function versionHeaders(current: number, outcomes: readonly ChoiceOutcome[]): Record<string, string> {
  const headers: Record<string, string> = { [POLICY_VERSION_HEADER]: String(current) };
  const mins = outcomes.map((o) => o.result.minPolicyVersion).filter((v): v is number => v !== null);
  const maxs = outcomes.map((o) => o.result.maxPolicyVersion).filter((v): v is number => v !== null);
  if (mins.length > 0) headers[MIN_POLICY_VERSION_HEADER] = String(Math.min(...mins));
  if (maxs.length > 0) headers[MAX_POLICY_VERSION_HEADER] = String(Math.max(...maxs));
  return headers;
}

/** Counts an answer; trips the die-after-N fault once the answer is flushed. */
function answered(ctx: Parameters<RouteHandler>[0], res: Parameters<RouteHandler>[2]): void {
  ctx.counters.completionsAnswered++;
  if (ctx.faults.recordAnswered()) {
    ctx.log.warn({ answered: ctx.counters.completionsAnswered }, 'die-after-requests fault: dying');
    if (res.writableFinished) ctx.die();
    else res.once('finish', () => ctx.die());
  }
}

const chatPart = z.object({ type: z.string(), text: z.string().optional() });

const TokenizeRequestSchema = z.union([
  z.object({
    model: z.string().nullish(),
    prompt: z.string(),
    add_special_tokens: z.boolean().default(true),
    return_token_strs: z.boolean().nullish(),
  }),
  z.object({
    model: z.string().nullish(),
    messages: z.array(
      z.object({ role: z.string(), content: z.union([z.string(), z.array(chatPart)]).nullish() }),
    ),
    add_generation_prompt: z.boolean().default(true),
    continue_final_message: z.boolean().default(false),
    add_special_tokens: z.boolean().default(false),
    return_token_strs: z.boolean().nullish(),
  }),
]);

/**
 * `POST /tokenize`: `{"prompt": "..."}` or `{"messages": [...],
 * "add_generation_prompt": true}` → `{count, max_model_len, tokens, token_strs}`.
 * The tokenizer and chat template are the simulator's own (see tokenizer.ts).
 */
export const tokenize: RouteHandler = async (ctx, req, res) => {
  try {
    const parsedBody = parseJsonBody(await readBody(req, ctx.config.maxRequestBytes));
    if (!parsedBody.ok) {
      sendOpenAiError(res, 400, `Invalid JSON: ${parsedBody.error}`);
      return;
    }
    const parsed = TokenizeRequestSchema.safeParse(parsedBody.value);
    if (!parsed.success) throw TandemError.invalid('tokenize request', zodViolations(parsed.error));
    const r = parsed.data;
    if ('messages' in r && r.continue_final_message && r.add_generation_prompt) {
      throw TandemError.invalid('tokenize request', [
        { path: 'continue_final_message', message: 'Cannot set both `continue_final_message` and `add_generation_prompt` to True.' },
      ]);
    }
    const textToEncode =
      'messages' in r
        ? renderChat(r.messages, { addGenerationPrompt: r.add_generation_prompt, continueFinalMessage: r.continue_final_message })
        : r.prompt;
    const tokens = encode(textToEncode, { addSpecialTokens: r.add_special_tokens });
    sendJson(res, 200, {
      count: tokens.length,
      max_model_len: ctx.config.maxModelLen,
      tokens,
      token_strs: r.return_token_strs ? tokens.map(tokenString) : null,
    });
  } catch (err) {
    sendErrorFrom(res, err);
  }
};

const DetokenizeRequestSchema = z.object({
  model: z.string().nullish(),
  tokens: z.array(z.number().int().min(0)),
});

/** `POST /detokenize`: `{"tokens": [...]}` → `{"prompt": "..."}`. */
export const detokenize: RouteHandler = async (ctx, req, res) => {
  try {
    const parsedBody = parseJsonBody(await readBody(req, ctx.config.maxRequestBytes));
    if (!parsedBody.ok) {
      sendOpenAiError(res, 400, `Invalid JSON: ${parsedBody.error}`);
      return;
    }
    const parsed = DetokenizeRequestSchema.safeParse(parsedBody.value);
    if (!parsed.success) throw TandemError.invalid('detokenize request', zodViolations(parsed.error));
    sendJson(res, 200, { prompt: decode(parsed.data.tokens) });
  } catch (err) {
    sendErrorFrom(res, err);
  }
};

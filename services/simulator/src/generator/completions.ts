import { z } from 'zod';
import { ErrorCode, TandemError, zodViolations } from '@tandem/common';
import type { SequenceResult } from './batch-engine.js';
import { MIN_LOGPROB } from './sampler.js';
import { decode, encode, tokenString } from './tokenizer.js';

/**
 * The `POST /v1/completions` request and response, shaped as vLLM's
 * CompletionRequest / CompletionResponse (vllm-project/vllm
 * `vllm/entrypoints/openai/completion/protocol.py`). Fields the simulator
 * does not model (top_p, top_k, stop, penalties, ...) are accepted and
 * ignored; vLLM also accepts unknown fields (it logs them).
 */

const tokenId = z.number().int().min(0);

/** The request fields the simulator reads. */
export const CompletionRequestSchema = z.object({
  model: z.string().nullish(),
  prompt: z.union([z.array(tokenId).min(1), z.array(z.array(tokenId).min(1)).min(1), z.string().min(1), z.array(z.string().min(1)).min(1)]),
  max_tokens: z.number().int().min(1).nullish(),
  n: z.number().int().min(1).max(1024).default(1),
  temperature: z.number().min(0).nullish(),
  seed: z.number().int().nullish(),
  logprobs: z.number().int().min(-1).nullish(),
  return_token_ids: z.boolean().nullish(),
  ignore_eos: z.boolean().default(false),
  min_tokens: z.number().int().min(0).default(0),
  add_special_tokens: z.boolean().default(true),
  stream: z.boolean().nullish(),
  echo: z.boolean().nullish(),
  request_id: z.string().optional(),
});

/** A parsed completion request. */
export type CompletionRequest = z.output<typeof CompletionRequestSchema>;

/** vLLM's default when `max_tokens` is absent or null. */
export const DEFAULT_MAX_TOKENS = 16;

/** Parses and checks a request against the served model; throws INVALID_ARGUMENT / NOT_FOUND. */
export function parseCompletionRequest(
  body: unknown,
  served: { model: string; maxModelLen: number; vocabSize: number },
): { request: CompletionRequest; prompts: number[][] } {
  const parsed = CompletionRequestSchema.safeParse(body);
  if (!parsed.success) throw TandemError.invalid('completion request', zodViolations(parsed.error));
  const request = parsed.data;
  if (request.model != null && request.model !== served.model) {
    throw new TandemError(ErrorCode.NotFound, `The model \`${request.model}\` does not exist.`, {
      fieldViolations: [{ path: 'model', message: 'unknown model' }],
    });
  }
  if (request.stream) {
    throw TandemError.invalid('completion request', [
      { path: 'stream', message: 'streaming is not supported by the Tandem simulator' },
    ]);
  }
  if (request.echo) {
    throw TandemError.invalid('completion request', [
      { path: 'echo', message: 'echo is not supported by the Tandem simulator' },
    ]);
  }
  const prompts = normalisePrompts(request.prompt, request.add_special_tokens);
  const maxTokens = request.max_tokens ?? DEFAULT_MAX_TOKENS;
  prompts.forEach((ids, i) => {
    const bad = ids.find((id) => id >= served.vocabSize);
    if (bad !== undefined) {
      throw TandemError.invalid('completion request', [
        { path: `prompt[${i}]`, message: `Token id ${bad} is out of vocabulary` },
      ]);
    }
    if (ids.length + maxTokens > served.maxModelLen) {
      throw new TandemError(
        ErrorCode.InvalidArgument,
        `This model's maximum context length is ${served.maxModelLen} tokens. However, you requested ` +
          `${ids.length + maxTokens} tokens (${ids.length} in the messages, ${maxTokens} in the completion). ` +
          'Please reduce the length of the messages or completion.',
        { fieldViolations: [{ path: 'max_tokens', message: 'prompt + max_tokens exceeds max_model_len' }] },
      );
    }
  });
  return { request, prompts };
}

function normalisePrompts(prompt: CompletionRequest['prompt'], addSpecialTokens: boolean): number[][] {
  if (typeof prompt === 'string') return [encode(prompt, { addSpecialTokens })];
  if (isIdList(prompt)) return [prompt];
  if (isStringList(prompt)) return prompt.map((p) => encode(p, { addSpecialTokens }));
  return prompt;
}

function isIdList(p: readonly unknown[]): p is number[] {
  return p.every((x) => typeof x === 'number');
}

function isStringList(p: readonly unknown[]): p is string[] {
  return p.every((x) => typeof x === 'string');
}

/** One finished choice plus what it was generated from. */
export interface ChoiceOutcome {
  index: number;
  promptTokenIds: number[];
  result: SequenceResult;
}

/** vLLM's `CompletionLogProbs`. */
interface CompletionLogProbs {
  text_offset: number[];
  token_logprobs: number[];
  tokens: string[];
  top_logprobs: Array<Record<string, number>>;
}

/**
 * `logprobs` as vLLM builds it: each sampled token's logprob (clamped at
 * -9999), its string, and a `top_logprobs` dict holding the sampled token
 * plus `k` alternatives. The alternatives are invented (the simulator has no
 * distribution); only the sampled token's entry is meaningful.
 */
function buildLogprobs(ids: readonly number[], lps: readonly number[], k: number): CompletionLogProbs {
  const out: CompletionLogProbs = { text_offset: [], token_logprobs: [], tokens: [], top_logprobs: [] };
  let offset = 0;
  ids.forEach((id, i) => {
    const lp = Math.max(MIN_LOGPROB, lps[i] ?? MIN_LOGPROB);
    const tok = tokenString(id);
    out.text_offset.push(offset);
    out.token_logprobs.push(lp);
    out.tokens.push(tok);
    const top: Record<string, number> = { [tok]: lp };
    for (let j = 1; Object.keys(top).length <= k && j < 4 * k + 8; j++) {
      const alt = tokenString(3 + ((id * 7919 + j * 104_729) % 30_000));
      if (!(alt in top)) top[alt] = Math.max(MIN_LOGPROB, lp - 0.75 * j);
    }
    out.top_logprobs.push(top);
    offset += tok.length;
  });
  return out;
}

/** Tandem's per-choice extension fields (not in vLLM). */
export interface TandemChoiceFields {
  tandem_min_policy_version: number | null;
  tandem_max_policy_version: number | null;
}

/** Builds the vLLM-shaped response body. */
export function buildCompletionResponse(input: {
  id: string;
  createdS: number;
  model: string;
  request: CompletionRequest;
  outcomes: readonly ChoiceOutcome[];
}): Record<string, unknown> {
  const { request } = input;
  const k = request.logprobs == null ? null : request.logprobs === -1 ? 20 : request.logprobs;
  let promptTokens = 0;
  let completionTokens = 0;
  const seenPrompts = new Set<number[]>();
  const choices = input.outcomes.map((o) => {
    if (!seenPrompts.has(o.promptTokenIds)) {
      seenPrompts.add(o.promptTokenIds);
      promptTokens += o.promptTokenIds.length;
    }
    completionTokens += o.result.tokenIds.length;
    const tandem: TandemChoiceFields = {
      tandem_min_policy_version: o.result.minPolicyVersion,
      tandem_max_policy_version: o.result.maxPolicyVersion,
    };
    return {
      index: o.index,
      text: decode(o.result.tokenIds),
      logprobs: k === null ? null : buildLogprobs(o.result.tokenIds, o.result.logprobs, k),
      finish_reason: o.result.finishReason,
      stop_reason: null,
      token_ids: request.return_token_ids ? o.result.tokenIds : null,
      prompt_logprobs: null,
      prompt_token_ids: request.return_token_ids ? o.promptTokenIds : null,
      ...tandem,
    };
  });
  return {
    id: input.id,
    object: 'text_completion',
    created: input.createdS,
    model: input.model,
    choices,
    service_tier: null,
    system_fingerprint: null,
    usage: {
      prompt_tokens: promptTokens,
      total_tokens: promptTokens + completionTokens,
      completion_tokens: completionTokens,
      prompt_tokens_details: null,
    },
    kv_transfer_params: null,
  };
}

/** Kinds of deliberately broken answers (fault injection). */
export type MalformedKind = 'bad-json' | 'wrong-token-count' | 'nan-logprobs';

/**
 * Serialises `body` broken in one of three ways a validator must catch:
 * - `bad-json`: the JSON text cut in half;
 * - `wrong-token-count`: the last token id of each choice dropped, logprobs kept;
 * - `nan-logprobs`: the first logprob of each choice written as `NaN`, which
 *   Python's json module emits by default and JSON.parse rejects.
 */
export function malformedBody(body: Record<string, unknown>, kind: MalformedKind): string {
  const text = JSON.stringify(body);
  const cut = (): string => text.slice(0, Math.max(1, Math.floor(text.length / 2)));
  if (kind === 'bad-json') return cut();
  // Our own serialisation, so the shape is known.
  const copy = JSON.parse(text) as { choices: Array<Record<string, unknown>> };
  const marker = '"__tandem_nan__"';
  let broken = false;
  for (const choice of copy.choices) {
    const ids = choice['token_ids'];
    const lp = choice['logprobs'] as { token_logprobs?: unknown[] } | null;
    if (kind === 'wrong-token-count') {
      if (Array.isArray(ids) && ids.length > 0) {
        ids.pop();
        broken = true;
      } else if (lp?.token_logprobs) {
        lp.token_logprobs.push(-1);
        broken = true;
      }
    } else if (lp?.token_logprobs && lp.token_logprobs.length > 0) {
      lp.token_logprobs[0] = '__tandem_nan__';
      broken = true;
    }
  }
  // Nothing to break (no token_ids nor logprobs asked for): break the JSON instead.
  if (!broken) return cut();
  return JSON.stringify(copy).split(marker).join('NaN');
}

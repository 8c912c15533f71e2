import { describe, expect, it } from 'vitest';
import { parseCompletions, requestCompletions, type CompletionsRequest } from './vllm-client.js';

const req: CompletionsRequest = { model: 'm', prompt: [1, 2], n: 1, maxTokens: 4, temperature: 1 };
const ok = {
  choices: [{ index: 0, text: 'hi', token_ids: [5, 6], logprobs: { token_logprobs: [-0.5, -1] }, finish_reason: 'stop' }],
  prompt_token_ids: [1, 2],
};
const headers = new Headers({ 'x-tandem-min-policy-version': '3', 'x-tandem-max-policy-version': '4' });

describe('completions response validation', () => {
  it('accepts a well-formed vLLM answer and reads version headers', () => {
    const r = parseCompletions(JSON.stringify(ok), req, headers, 'http://g');
    expect(r.completions[0]).toEqual({ text: 'hi', tokenIds: [5, 6], logprobs: [-0.5, -1], finishReason: 'stop' });
    expect(r.promptTokenIds).toEqual([1, 2]);
    expect([r.reportedMinVersion, r.reportedMaxVersion]).toEqual([3, 4]);
  });

  const bad: Array<[string, string]> = [
    ['bad JSON', '{"choices": ['],
    ['wrong token count', JSON.stringify({ choices: [{ ...ok.choices[0], logprobs: { token_logprobs: [-1] } }] })],
    ['NaN logprob', JSON.stringify({ choices: [{ ...ok.choices[0], logprobs: { token_logprobs: [-1, null] } }] })],
    ['positive logprob', JSON.stringify({ choices: [{ ...ok.choices[0], logprobs: { token_logprobs: [-1, 0.5] } }] })],
    ['too many tokens', JSON.stringify({ choices: [{ ...ok.choices[0], token_ids: [1, 2, 3, 4, 5], logprobs: { token_logprobs: [-1, -1, -1, -1, -1] } }] })],
    ['missing token ids', JSON.stringify({ choices: [{ text: 'x', logprobs: { token_logprobs: [] } }] })],
    ['wrong number of choices', JSON.stringify({ choices: [ok.choices[0], ok.choices[0]] })],
  ];
  for (const [what, body] of bad) {
    it(`rejects ${what} as malformed and retryable`, () => {
      let err: unknown;
      try {
        parseCompletions(body, req, new Headers(), 'http://g');
      } catch (e) {
        err = e;
      }
      expect(err).toMatchObject({ code: 'UNAVAILABLE', generatorFault: true });
      expect((err as Error).message).toMatch(/^malformed response from http:\/\/g/);
    });
  }
});

describe('completions request', () => {
  it('sends the fields TRL sends and maps 429 with Retry-After', async () => {
    let sent: any;
    const fakeFetch = (async (_url: string, init: RequestInit) => {
      sent = JSON.parse(String(init.body));
      return new Response('slow down', { status: 429, headers: { 'retry-after': '3' } });
    }) as unknown as typeof fetch;
    const err = await requestCompletions('http://g', req, { timeoutMs: 1000, nowMs: () => 0, fetch: fakeFetch }).catch((e) => e);
    expect(sent).toMatchObject({ model: 'm', prompt: [1, 2], n: 1, max_tokens: 4, temperature: 1, logprobs: 0, return_token_ids: true });
    expect(err).toMatchObject({ code: 'RESOURCE_EXHAUSTED', retryAfterMs: 3000, generatorFault: false });
  });

  it('maps a 4xx to a non-retryable error and a 5xx to a retryable one', async () => {
    const status = (code: number) => (async () => new Response('x', { status: code })) as unknown as typeof fetch;
    const e400 = await requestCompletions('http://g', req, { timeoutMs: 1000, nowMs: () => 0, fetch: status(400) }).catch((e) => e);
    expect(e400.retryable).toBe(false);
    const e500 = await requestCompletions('http://g', req, { timeoutMs: 1000, nowMs: () => 0, fetch: status(500) }).catch((e) => e);
    expect(e500.retryable).toBe(true);
  });
});

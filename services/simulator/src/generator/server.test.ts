import { afterEach, describe, expect, it } from 'vitest';
import type { GeneratorOptions } from './config.js';
import { ManualClock } from './manual-clock.js';
import { createGeneratorServer } from './server.js';
import type { GeneratorServer, GeneratorServerDeps } from './server.js';
import { completionOf, get, post, waitFor } from './test-http.js';

const servers: GeneratorServer[] = [];

async function start(options: GeneratorOptions = {}, deps: GeneratorServerDeps = {}): Promise<GeneratorServer> {
  // timeScale 1e-4: a 100-token completion takes well under a millisecond.
  const server = createGeneratorServer({ timeScale: 1e-4, ...options }, deps);
  servers.push(server);
  await server.listen(0, '127.0.0.1');
  return server;
}

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

const INIT_INFO = { master_address: '127.0.0.1', master_port: 29500, rank_offset: 1, world_size: 2 };
const TRL_REQUEST = { prompt: [1, 17, 42, 99], max_tokens: 32, temperature: 1, n: 1, return_token_ids: true, logprobs: 0 };

describe('simulated generator: OpenAI routes', () => {
  it('answers /health, /v1/models and /get_world_size as vLLM does, labelled simulated', async () => {
    const s = await start({ model: 'sim/m', maxModelLen: 2048, worldSize: 4 });
    const health = await get(s.url, '/health');
    expect(health.status).toBe(200);
    expect(health.text).toBe('');
    expect(health.headers.get('x-tandem-simulated')).toBe('1');
    const models = await get(s.url, '/v1/models');
    expect(models.json).toMatchObject({
      object: 'list',
      data: [{ id: 'sim/m', object: 'model', owned_by: 'vllm', max_model_len: 2048, tandem_simulated: true }],
    });
    expect((await get(s.url, '/get_world_size')).json).toEqual({ world_size: 4 });
    expect((await get(s.url, '/nope')).status).toBe(404);
    expect((await get(s.url, '/v1/completions')).status).toBe(405);
  });

  it('answers a TRL-style completion with token ids and one logprob per token', async () => {
    const s = await start();
    const a = await post(s.url, '/v1/completions', TRL_REQUEST);
    const body = completionOf(a);
    expect(body).toMatchObject({ object: 'text_completion', model: s.config.model });
    expect(body.id).toMatch(/^cmpl-/);
    const choice = body.choices[0];
    expect(choice).toBeDefined();
    if (!choice) return;
    expect(choice.prompt_token_ids).toEqual([1, 17, 42, 99]);
    expect(choice.token_ids?.length).toBeGreaterThan(0);
    expect(choice.logprobs?.token_logprobs).toHaveLength(choice.token_ids?.length ?? -1);
    expect(choice.logprobs?.tokens).toHaveLength(choice.token_ids?.length ?? -1);
    expect(choice.logprobs?.top_logprobs.every((t) => Object.keys(t).length === 1)).toBe(true);
    expect(choice.logprobs?.token_logprobs.every((lp) => Number.isFinite(lp) && lp <= 0)).toBe(true);
    expect(['stop', 'length']).toContain(choice.finish_reason);
    expect(body.usage).toEqual({
      prompt_tokens: 4,
      completion_tokens: choice.token_ids?.length,
      total_tokens: 4 + (choice.token_ids?.length ?? 0),
      prompt_tokens_details: null,
    });
    expect(a.headers.get('x-tandem-policy-version')).toBe('0');
    expect(choice).toMatchObject({ tandem_min_policy_version: 0, tandem_max_policy_version: 0 });
  });

  it('is deterministic for a seeded request and varies without a seed', async () => {
    const s = await start({ seed: 11 });
    const seeded = { ...TRL_REQUEST, seed: 1234, max_tokens: 64 };
    const a = completionOf(await post(s.url, '/v1/completions', seeded));
    const b = completionOf(await post(s.url, '/v1/completions', seeded));
    expect(a.choices[0]?.token_ids).toEqual(b.choices[0]?.token_ids);
    expect(a.choices[0]?.logprobs?.token_logprobs).toEqual(b.choices[0]?.logprobs?.token_logprobs);
    const u1 = completionOf(await post(s.url, '/v1/completions', { ...TRL_REQUEST, max_tokens: 64 }));
    const u2 = completionOf(await post(s.url, '/v1/completions', { ...TRL_REQUEST, max_tokens: 64 }));
    expect(u1.choices[0]?.token_ids).not.toEqual(u2.choices[0]?.token_ids);
    // A fresh server with the same seed replays the same unseeded sequence.
    const again = await start({ seed: 11 });
    await post(again.url, '/v1/completions', seeded);
    await post(again.url, '/v1/completions', seeded);
    const r1 = completionOf(await post(again.url, '/v1/completions', { ...TRL_REQUEST, max_tokens: 64 }));
    expect(r1.choices[0]?.token_ids).toEqual(u1.choices[0]?.token_ids);
  });

  it('returns n choices and batches of prompts, each with consistent counts', async () => {
    const s = await start();
    const body = completionOf(
      await post(s.url, '/v1/completions', { ...TRL_REQUEST, prompt: [[1, 2], [1, 3, 4]], n: 3, max_tokens: 20 }),
    );
    expect(body.choices.map((c) => c.index)).toEqual([0, 1, 2, 3, 4, 5]);
    let completion = 0;
    for (const c of body.choices) {
      expect(c.token_ids?.length).toBe(c.logprobs?.token_logprobs.length);
      expect(c.token_ids?.length).toBeLessThanOrEqual(20);
      if (c.finish_reason === 'length') expect(c.token_ids).toHaveLength(20);
      completion += c.token_ids?.length ?? 0;
    }
    expect(body.choices[4]?.prompt_token_ids).toEqual([1, 3, 4]);
    expect(body.usage.prompt_tokens).toBe(5);
    expect(body.usage.completion_tokens).toBe(completion);
  });

  it('accepts a string prompt, and ignore_eos forces finish_reason "length"', async () => {
    const s = await start();
    const body = completionOf(
      await post(s.url, '/v1/completions', { prompt: 'Hello', max_tokens: 50, ignore_eos: true, return_token_ids: true }),
    );
    expect(body.choices[0]?.prompt_token_ids).toEqual([1, 75, 104, 111, 111, 114]);
    expect(body.choices[0]).toMatchObject({ finish_reason: 'length', logprobs: null });
    expect(body.choices[0]?.token_ids).toHaveLength(50);
  });

  it('rejects bad requests the way vLLM does', async () => {
    const s = await start({ maxModelLen: 100 });
    const tooLong = await post(s.url, '/v1/completions', { prompt: [1, 2, 3], max_tokens: 98 });
    expect(tooLong.status).toBe(400);
    expect(tooLong.json).toMatchObject({ error: { type: 'BadRequestError', code: 400 } });
    expect((await post(s.url, '/v1/completions', { prompt: [1], model: 'other' })).status).toBe(404);
    expect((await post(s.url, '/v1/completions', { prompt: [] })).status).toBe(400);
    expect((await post(s.url, '/v1/completions', { prompt: [1], n: 0 })).status).toBe(400);
    expect((await post(s.url, '/v1/completions', { prompt: [1], stream: true })).status).toBe(400);
  });

  it('tokenizes prompts and chat messages', async () => {
    const s = await start({ maxModelLen: 1024 });
    const plain = await post(s.url, '/tokenize', { prompt: 'ab', return_token_strs: true });
    expect(plain.json).toEqual({ count: 3, max_model_len: 1024, tokens: [1, 100, 101], token_strs: ['<s>', 'a', 'b'] });
    const chat = await post(s.url, '/tokenize', { messages: [{ role: 'user', content: 'hi' }] });
    const tokens = (chat.json as { tokens: number[] }).tokens;
    expect((await post(s.url, '/detokenize', { tokens })).json).toEqual({ prompt: '<|user|>\nhi\n<|assistant|>\n' });
  });
});

describe('simulated generator: pause and weight updates', () => {
  it('mirrors the dev routes: bodies, 400s for missing fields, /is_paused', async () => {
    const s = await start();
    expect((await get(s.url, '/is_paused')).json).toEqual({ is_paused: false });
    expect((await post(s.url, '/pause?mode=keep')).json).toEqual({ status: 'paused' });
    expect((await get(s.url, '/is_paused')).json).toEqual({ is_paused: true });
    expect((await post(s.url, '/pause?mode=sideways')).status).toBe(400);
    expect((await post(s.url, '/resume')).json).toEqual({ status: 'resumed' });
    const missing = await post(s.url, '/init_weight_transfer_engine', {});
    expect(missing).toMatchObject({ status: 400, json: { detail: "Missing 'init_info' in request body" } });
    expect((await post(s.url, '/update_weights', {})).json).toEqual({ detail: "Missing 'update_info' in request body" });
    expect((await post(s.url, '/init_weight_transfer_engine', { init_info: INIT_INFO })).json).toEqual({
      message: 'Weight transfer initialized',
    });
    // update before start: out of order.
    const early = await post(s.url, '/update_weights', { update_info: { names: [], dtype_names: [], shapes: [] } });
    expect(early.status).toBe(409);
  });

  it('answers 500 to update_weights before the NCCL group exists, as vLLM does', async () => {
    const s = await start();
    await post(s.url, '/start_weight_update', { is_checkpoint_format: true });
    const a = await post(s.url, '/update_weights', { update_info: { names: [], dtype_names: [], shapes: [] } });
    expect(a.status).toBe(500);
    expect(a.text).toContain('not initialized');
  });

  it('takes the NCCL packing settings where the mimicked vLLM does, and refuses them elsewhere with 500', async () => {
    const packing = { packed: true, packed_buffer_size_bytes: 1 << 20, packed_num_buffers: 2 };
    const layout = { names: ['w'], dtype_names: ['float32'], shapes: [[4]] };
    const current = await start();
    const refusedInUpdate = async (url: string): Promise<void> => {
      await post(url, '/start_weight_update', {});
      const r = await post(url, '/update_weights', { update_info: { ...layout, ...packing } });
      expect(r).toMatchObject({ status: 500, json: { error: { message: "Invalid update_info for NCCLWeightTransferEngine: unexpected keyword argument 'packed'" } } });
      expect((await post(url, '/update_weights', { update_info: layout })).json).toEqual({ message: 'Weights updated' });
      await post(url, '/finish_weight_update');
    };
    expect((await post(current.url, '/init_weight_transfer_engine', { init_info: { ...INIT_INFO, ...packing } })).status).toBe(200);
    await refusedInUpdate(current.url);

    const older = await start({ weightTransfer: { packingPlacement: 'update' } });
    const refusedAtInit = await post(older.url, '/init_weight_transfer_engine', { init_info: { ...INIT_INFO, ...packing } });
    expect(refusedAtInit).toMatchObject({ status: 500, json: { error: { message: "Invalid init_info for NCCLWeightTransferEngine: unexpected keyword argument 'packed'" } } });
    expect((await post(older.url, '/init_weight_transfer_engine', { init_info: INIT_INFO })).status).toBe(200);
    await post(older.url, '/start_weight_update', {});
    expect((await post(older.url, '/update_weights', { update_info: { ...layout, ...packing } })).json).toEqual({ message: 'Weights updated' });
    await post(older.url, '/finish_weight_update');
  });

  it('publishes a new version through the TRL sequence and reports it per request', async () => {
    const s = await start({ weightTransfer: { modelBytes: 1e6, bandwidthBytesPerSecond: 1e9 } });
    const before = await post(s.url, '/v1/completions', TRL_REQUEST);
    expect(before.headers.get('x-tandem-max-policy-version')).toBe('0');
    await post(s.url, '/init_weight_transfer_engine', { init_info: { ...INIT_INFO, packed: true } });
    await post(s.url, '/pause?mode=keep');
    expect((await post(s.url, '/start_weight_update', { is_checkpoint_format: true })).json).toEqual({
      message: 'Weight update started',
    });
    const update = await post(s.url, '/update_weights', {
      update_info: { names: ['w'], dtype_names: ['bfloat16'], shapes: [[1024, 1024]] },
    });
    expect(update.json).toEqual({ message: 'Weights updated' });
    const finish = await post(s.url, '/finish_weight_update');
    expect(finish.json).toEqual({ message: 'Weight update finished', tandem_policy_version: 1 });
    await post(s.url, '/resume');
    expect((await get(s.url, '/weight_info')).json).toEqual({ weight_version: '1', tandem_policy_version: 1 });
    const after = await post(s.url, '/v1/completions', TRL_REQUEST);
    expect(after.headers.get('x-tandem-policy-version')).toBe('1');
    expect(completionOf(after).choices[0]).toMatchObject({ tandem_min_policy_version: 1, tandem_max_policy_version: 1 });
    // An explicit Tandem version wins over the +1 default.
    await post(s.url, '/start_weight_update', {});
    await post(s.url, '/update_weights?tandem_policy_version=7', { update_info: { names: [], dtype_names: [], shapes: [] } });
    expect((await post(s.url, '/finish_weight_update', {})).json).toMatchObject({ tandem_policy_version: 7 });
  });

  it('keeps a request in flight across a keep-mode update and reports min 0 / max 1', async () => {
    const clock = new ManualClock();
    const s = await start(
      {
        timeScale: 1,
        throughput: { peakTokensPerSecondPerSequence: 10, prefillTokensPerSecond: 1e6 },
        weightTransfer: { modelBytes: 2e9, bandwidthBytesPerSecond: 1e9 },
      },
      { clock },
    );
    await post(s.url, '/init_weight_transfer_engine', { init_info: INIT_INFO });
    const inflight = post(s.url, '/v1/completions', { ...TRL_REQUEST, max_tokens: 20, ignore_eos: true });
    await waitFor(() => s.stats().engine.decoding + s.stats().engine.prefilling === 1, 'request admitted');
    await clock.advance(1000); // ~10 tokens under version 0
    await post(s.url, '/pause?mode=keep');
    const tokensAtPause = s.stats().engine.generatedTokens;
    expect(tokensAtPause).toBeGreaterThanOrEqual(9);
    await clock.advance(60_000);
    expect(s.stats().engine.generatedTokens).toBe(tokensAtPause); // frozen, not aborted
    // A request arriving while paused waits (vLLM keep mode), it is not refused.
    const late = post(s.url, '/v1/completions', { ...TRL_REQUEST, max_tokens: 5, ignore_eos: true });
    await waitFor(() => s.stats().engine.waiting === 1, 'late request queued');

    await post(s.url, '/start_weight_update', { is_checkpoint_format: true });
    const update = post(s.url, '/update_weights', { update_info: { names: [], dtype_names: [], shapes: [] } });
    await waitFor(() => s.stats().weights.updatePhase === 'receiving' && clock.pendingTimers > 0, 'transfer started');
    await clock.advance(2000); // 2e9 bytes at 1e9 B/s
    expect((await update).status).toBe(200);
    await post(s.url, '/finish_weight_update');
    await post(s.url, '/resume');
    await clock.advance(5000);

    const a = await inflight;
    const choice = completionOf(a).choices[0];
    expect(choice?.token_ids).toHaveLength(20);
    expect(choice).toMatchObject({ tandem_min_policy_version: 0, tandem_max_policy_version: 1, finish_reason: 'length' });
    expect(a.headers.get('x-tandem-min-policy-version')).toBe('0');
    expect(a.headers.get('x-tandem-max-policy-version')).toBe('1');
    expect(completionOf(await late).choices[0]).toMatchObject({ tandem_min_policy_version: 1, tandem_max_policy_version: 1 });
  });

  it('pause?mode=abort ends in-flight requests with finish_reason "abort"', async () => {
    const clock = new ManualClock();
    const s = await start({ timeScale: 1, throughput: { peakTokensPerSecondPerSequence: 10 } }, { clock });
    const inflight = post(s.url, '/v1/completions', { ...TRL_REQUEST, max_tokens: 100, ignore_eos: true });
    await waitFor(() => s.stats().engine.decoding + s.stats().engine.prefilling === 1, 'request admitted');
    await clock.advance(1000);
    await post(s.url, '/pause?mode=abort');
    const choice = completionOf(await inflight).choices[0];
    expect(choice?.finish_reason).toBe('abort');
    expect(choice?.token_ids?.length).toBeLessThan(100);
    expect(choice?.token_ids?.length).toBe(choice?.logprobs?.token_logprobs.length);
  });

  it('can refuse new requests with 503 while paused (whilePaused: reject)', async () => {
    const s = await start({ whilePaused: 'reject' });
    await post(s.url, '/pause?mode=keep');
    expect((await post(s.url, '/v1/completions', TRL_REQUEST)).status).toBe(503);
    await post(s.url, '/resume');
    expect((await post(s.url, '/v1/completions', TRL_REQUEST)).status).toBe(200);
  });
});

import { afterEach, describe, expect, it } from 'vitest';
import type { GeneratorOptions } from './config.js';
import { resolveGeneratorConfig } from './config.js';
import { FaultInjector } from './faults.js';
import { createGeneratorServer } from './server.js';
import type { GeneratorServer, GeneratorServerDeps } from './server.js';
import { post, waitFor } from './test-http.js';

const servers: GeneratorServer[] = [];

async function start(options: GeneratorOptions, deps: GeneratorServerDeps = {}): Promise<GeneratorServer> {
  const server = createGeneratorServer({ timeScale: 1e-4, ...options }, deps);
  servers.push(server);
  await server.listen(0, '127.0.0.1');
  return server;
}

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

const REQUEST = { prompt: [1, 5, 9], max_tokens: 8, return_token_ids: true, logprobs: 0 };

type Outcome = 'ok' | 'error' | 'rate-limit' | 'bad-json' | 'wrong-token-count' | 'nan-logprobs';

/** Classifies an answer the way a strict validator would. */
function classify(status: number, text: string): Outcome {
  if (status === 500) return 'error';
  if (status === 429) return 'rate-limit';
  if (text.includes('NaN')) return 'nan-logprobs';
  let body: { choices: Array<{ token_ids: number[]; logprobs: { token_logprobs: number[] } }> };
  try {
    body = JSON.parse(text) as typeof body;
  } catch {
    return 'bad-json';
  }
  const bad = body.choices.some((c) => c.token_ids.length !== c.logprobs.token_logprobs.length);
  return bad ? 'wrong-token-count' : 'ok';
}

describe('fault injection', () => {
  it('honours the configured fractions, with exact counts for a fixed seed', async () => {
    const s = await start({
      seed: 42,
      faults: { errorFraction: 0.1, rateLimitFraction: 0.1, malformedFraction: 0.15 },
    });
    const counts: Record<Outcome, number> = {
      ok: 0,
      error: 0,
      'rate-limit': 0,
      'bad-json': 0,
      'wrong-token-count': 0,
      'nan-logprobs': 0,
    };
    for (let i = 0; i < 200; i++) {
      const a = await post(s.url, '/v1/completions', REQUEST);
      counts[classify(a.status, a.text)]++;
    }
    // Exact for seed 42 and sequential requests: the fault stream is seeded.
    expect(counts).toEqual(EXPECTED_SEED_42);
    // And roughly the configured fractions.
    expect(Math.abs(counts.error - 20)).toBeLessThan(10);
    expect(Math.abs(counts['rate-limit'] - 20)).toBeLessThan(10);
    const malformed = counts['bad-json'] + counts['wrong-token-count'] + counts['nan-logprobs'];
    expect(Math.abs(malformed - 30)).toBeLessThan(12);
    expect(s.stats().requests).toMatchObject({
      completionRequests: 200,
      injectedErrors: counts.error,
      injectedRateLimits: counts['rate-limit'],
      injectedMalformed: malformed,
    });
  });

  it('draws the same fault sequence for the same seed', () => {
    const config = resolveGeneratorConfig({ faults: { errorFraction: 0.3, hangFraction: 0.2 } }).faults;
    const a = new FaultInjector(config, 7);
    const b = new FaultInjector(config, 7);
    const c = new FaultInjector(config, 8);
    const seqA = Array.from({ length: 50 }, () => a.next().kind);
    expect(Array.from({ length: 50 }, () => b.next().kind)).toEqual(seqA);
    expect(Array.from({ length: 50 }, () => c.next().kind)).not.toEqual(seqA);
  });

  it('answers 429 with Retry-After', async () => {
    const s = await start({ faults: { rateLimitFraction: 1, retryAfterSeconds: 7 } });
    const a = await post(s.url, '/v1/completions', REQUEST);
    expect(a.status).toBe(429);
    expect(a.headers.get('retry-after')).toBe('7');
    expect(a.json).toMatchObject({ error: { type: 'RateLimitError', code: 429 } });
  });

  it('hangs requests until the client gives up', async () => {
    const s = await start({ faults: { hangFraction: 1 } });
    const controller = new AbortController();
    const pending = post(s.url, '/v1/completions', REQUEST, controller.signal).then(
      () => 'answered',
      () => 'aborted',
    );
    await waitFor(() => s.stats().requests.hangingNow === 1, 'request hanging');
    controller.abort();
    expect(await pending).toBe('aborted');
    await waitFor(() => s.stats().requests.hangingNow === 0, 'hang released');
  });

  it('dies after answering N requests', async () => {
    let deaths = 0;
    const s = await start({ faults: { dieAfterRequests: 3 } }, { onDie: () => deaths++ });
    for (let i = 0; i < 2; i++) expect((await post(s.url, '/v1/completions', REQUEST)).status).toBe(200);
    expect(deaths).toBe(0);
    expect((await post(s.url, '/v1/completions', REQUEST)).status).toBe(200);
    await waitFor(() => deaths === 1, 'die callback');
  });

  it('by default dies by dropping every connection', async () => {
    const s = await start({ faults: { dieAfterRequests: 1 } });
    expect((await post(s.url, '/v1/completions', REQUEST)).status).toBe(200);
    await expect(post(s.url, '/v1/completions', REQUEST)).rejects.toThrow();
  });
});

/** Observed once for seed 42; a change here means the fault stream changed. */
const EXPECTED_SEED_42: Record<Outcome, number> = {
  ok: 131,
  error: 18,
  'rate-limit': 17,
  'bad-json': 14,
  'wrong-token-count': 8,
  'nan-logprobs': 12,
};

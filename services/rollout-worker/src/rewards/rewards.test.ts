import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { exactMatchReward, lastNumber, numericReward, regexReward, remoteReward } from './index.js';

describe('verifiable rewards', () => {
  const input = { prompt: 'What is 2+2?', answer: '4', completions: ['4', 'The answer is 4.', '5', ' 4 '] };
  it('exact match', async () => expect(await exactMatchReward().score(input)).toEqual([1, 0, 0, 1]));
  it('numeric answer (last number, tolerance)', async () => {
    expect(await numericReward(1e-6).score(input)).toEqual([1, 1, 0, 1]);
    expect(lastNumber('1,234.5 then -7e2')).toBe(-700);
    expect(lastNumber('no digits')).toBeUndefined();
  });
  it('regex', async () => expect(await regexReward('answer is \\d').score(input)).toEqual([0, 1, 0, 0]));
});

describe('remote reward endpoint', () => {
  async function serve(handler: (body: any) => { status: number; body: string }, hang = false) {
    const server = createServer((req, res) => {
      let text = '';
      req.on('data', (d) => (text += d));
      req.on('end', () => {
        if (hang) return;
        const r = handler(JSON.parse(text));
        res.writeHead(r.status, { 'content-type': 'application/json' });
        res.end(r.body);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/reward`, close: () => server.close() };
  }

  it('posts TRL-shaped arguments and reads the rewards', async () => {
    let seen: any;
    const s = await serve((body) => {
      seen = body;
      return { status: 200, body: JSON.stringify({ rewards: body.completions.map((c: string) => c.length) }) };
    });
    const r = await remoteReward({ url: s.url, timeoutMs: 2000, runId: 'r1' }).score({ prompt: 'p', answer: 'a', completions: ['x', 'yy'] });
    expect(r).toEqual([1, 2]);
    expect(seen).toEqual({ runId: 'r1', prompts: ['p', 'p'], completions: ['x', 'yy'], answers: ['a', 'a'] });
    s.close();
  });

  it('rejects wrong counts, non-numbers and bad JSON; times out', async () => {
    const cases: Array<[string, string]> = [
      [JSON.stringify({ rewards: [1] }), 'returned 1 rewards for 2 completions'],
      [JSON.stringify({ rewards: [1, 'x'] }), 'finite numbers'],
      ['not json', 'invalid JSON'],
    ];
    for (const [body, message] of cases) {
      const s = await serve(() => ({ status: 200, body }));
      const err = await remoteReward({ url: s.url, timeoutMs: 2000, runId: 'r' }).score({ prompt: 'p', completions: ['a', 'b'] }).catch((e) => e);
      expect(err.message).toContain(message);
      expect(err.code).toBe('INVALID_ARGUMENT');
      s.close();
    }
    const slow = await serve(() => ({ status: 200, body: '' }), true);
    const err = await remoteReward({ url: slow.url, timeoutMs: 50, runId: 'r' }).score({ prompt: 'p', completions: ['a'] }).catch((e) => e);
    expect(err).toMatchObject({ code: 'UNAVAILABLE' });
    expect(err.message).toContain('timed out after 50 ms');
    slow.close();
  });
});

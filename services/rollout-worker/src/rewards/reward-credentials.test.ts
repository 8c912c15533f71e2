import { createServer, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TandemError } from '@tandem/common';
import { parseRunSpec } from '@tandem/run-spec';
import { rewardFor } from './index.js';
import { withoutUserinfo } from './remote-reward.js';

/**
 * Reward-endpoint credentials: the spec names environment variables, the
 * worker sends their values as headers, and neither the spec nor an error
 * message ever holds the secret.
 */

const SECRET = 'reward-endpoint-secret-7d41';
let url: string;
let close: () => void;
const seen: IncomingHttpHeaders[] = [];

beforeAll(async () => {
  const server = createServer((req, res) => {
    seen.push(req.headers);
    req.resume();
    req.on('end', () => {
      const ok = req.headers.authorization === `Bearer ${SECRET}`;
      res.writeHead(ok ? 200 : 401, { 'content-type': 'application/json' });
      res.end(ok ? JSON.stringify({ rewards: [1, 0] }) : JSON.stringify({ error: 'no' }));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/reward`;
  close = () => server.close();
});
afterAll(() => close?.());

const base = {
  model: { name: 'm' },
  dataset: { source: 'builtin', name: 'arithmetic', size: 4 },
  algorithm: { groupSize: 2, batchGroups: 1 },
  maxSteps: 1,
};

describe('remote reward credentials', () => {
  it('sends headersFromEnv values from the worker environment', async () => {
    const spec = parseRunSpec({ ...base, reward: { kind: 'remote', url, headersFromEnv: { Authorization: 'REWARD_AUTHORIZATION' } } });
    expect(JSON.stringify(spec)).not.toContain(SECRET);
    const reward = rewardFor(spec.reward, 'r1', { REWARD_AUTHORIZATION: `Bearer ${SECRET}` });
    expect(await reward.score({ prompt: 'p', completions: ['a', 'b'] })).toEqual([1, 0]);
    expect(seen.at(-1)?.authorization).toBe(`Bearer ${SECRET}`);
  });

  it('a variable that is not set names the header and the variable', () => {
    const spec = parseRunSpec({ ...base, reward: { kind: 'remote', url, headersFromEnv: { Authorization: 'REWARD_AUTHORIZATION' } } });
    try {
      rewardFor(spec.reward, 'r1', {});
      throw new Error('expected an error');
    } catch (err) {
      expect(TandemError.from(err).fieldViolations).toEqual([
        { path: 'reward.headersFromEnv.Authorization', message: 'environment variable REWARD_AUTHORIZATION is not set in the rollout worker' },
      ]);
    }
  });

  it('refuses credentials in the URL, and bad header or variable names, naming the field', () => {
    const bad = (reward: unknown): string[] => {
      try {
        parseRunSpec({ ...base, reward });
        return [];
      } catch (err) {
        return TandemError.from(err).fieldViolations.map((v) => v.path);
      }
    };
    expect(bad({ kind: 'remote', url: `http://user:${SECRET}@127.0.0.1/reward` })).toEqual(['reward.url']);
    expect(bad({ kind: 'remote', url, headersFromEnv: { 'Bad Header': 'X' } })[0]).toMatch(/^reward\.headersFromEnv/);
    expect(bad({ kind: 'remote', url, headersFromEnv: { Authorization: 'lower-case' } })[0]).toMatch(/^reward\.headersFromEnv/);
  });

  it('error messages never show URL credentials', () => {
    expect(withoutUserinfo(`https://u:${SECRET}@host/x`)).toBe('https://host/x');
    expect(withoutUserinfo('https://host/x')).toBe('https://host/x');
  });
});

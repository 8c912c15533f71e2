import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { createLogger } from '@tandem/common';
import { startRedisServer, type RedisServerHandle } from '@tandem/testkit';
import { ControlPlane } from '../control-plane.js';
import { loadConfig } from '../config.js';
import { makeSelfSignedCertificate } from './testing/self-signed.js';

/**
 * A small simulated run with everything secret turned on: an API token, a
 * Redis password, per-run credentials (trainer token, the workers' own
 * Redis user) and TLS. Every log line of the control plane and of its
 * children (rollout workers and trainer at debug level, forwarded into the
 * control plane's log) is collected, and none may contain a secret.
 */

const API_TOKEN = 'api-token-that-must-never-be-logged-4f1c';
const REDIS_PASSWORD = 'redis-password-that-must-never-be-logged-9b2e';

const spec = {
  model: { name: 'sim-7b' },
  dataset: { source: 'builtin', name: 'arithmetic', size: 100 },
  reward: { kind: 'numeric' },
  algorithm: { groupSize: 2, batchGroups: 2, maxTokens: 64 },
  async: { maxTrajectoryAgeSteps: 1 },
  maxSteps: 3,
  generator: { replicas: 1 },
  rolloutWorkers: { replicas: 1, concurrency: 8 },
  simulation: { timeScale: 0.02, trainer: { stepOverheadMs: 500 } },
};

let redis: RedisServerHandle;
let admin: Redis;
let dir: string;
let ca: Buffer;
let plane: ControlPlane;
let http: string;
const lines: string[] = [];

beforeAll(async () => {
  redis = await startRedisServer({ extraArgs: ['--requirepass', REDIS_PASSWORD] });
  const redisUrl = `redis://:${REDIS_PASSWORD}@127.0.0.1:${redis.port}`;
  admin = new Redis(redisUrl);
  dir = await mkdtemp(join(tmpdir(), 'tandem-secrets-'));
  const cert = await makeSelfSignedCertificate(dir);
  ca = await readFile(cert.caFile);
  await writeFile(join(dir, 'tokens.yaml'), `tokens:\n  - { subject: operator, token: ${API_TOKEN}, role: admin, namespaces: ['*'] }\n`);
  const log = createLogger({ name: 'control-plane', level: 'debug', destination: { write: (s: string) => void lines.push(s) } });
  plane = await ControlPlane.create(
    loadConfig({
      TANDEM_REDIS_URL: redisUrl,
      TANDEM_HTTP_PORT: '0',
      TANDEM_GRPC_PORT: '0',
      TANDEM_AUTH_TOKENS_FILE: join(dir, 'tokens.yaml'),
      TANDEM_TLS_CERT_FILE: cert.certFile,
      TANDEM_TLS_KEY_FILE: cert.keyFile,
      TANDEM_TLS_CA_FILE: cert.caFile,
      TANDEM_REDIS_RUN_USERS: 'required',
    }),
    { log, local: { workerEnv: { TANDEM_LOG_LEVEL: 'debug' }, trainerEnv: { TANDEM_LOG_LEVEL: 'debug' } } },
  );
  http = (await plane.start()).httpUrl;
}, 60_000);

afterAll(async () => {
  admin?.disconnect();
  await plane?.stop();
  await redis?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** One HTTPS request verified against the test CA. */
function call(method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  return new Promise((resolve, reject) => {
    const req = request(`${http}${path}`, { method, ca, headers: { authorization: `Bearer ${API_TOKEN}`, 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) }));
    });
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('secrets never reach the logs', () => {
  it('runs a simulated run over TLS with per-run credentials, and no log line holds a secret', async () => {
    expect((await call('POST', '/v1/runs', { spec, runId: 'secret-run' })).status).toBe(201);
    // The workers connect as the run's own Redis user.
    const clientsOfRun = await until(
      'the rollout worker to connect as the run user',
      async () => {
        const list = String(await admin.call('CLIENT', 'LIST'));
        return list.includes('user=tandem-run-secret-run') ? list : undefined;
      },
      60_000,
    );
    expect(clientsOfRun).toContain('user=tandem-run-secret-run');
    const runToken = (await admin.hget('tandem:auth:run-credentials', 'secret-run')) as string;
    expect(runToken.length).toBeGreaterThan(20);
    const done = await until(
      'the run to end',
      async () => {
        const r = await call('GET', '/v1/runs/secret-run');
        return ['Succeeded', 'Failed', 'Cancelled'].includes(r.json.status.phase) ? r.json : undefined;
      },
      240_000,
    );
    expect(done.status.phase, done.status.message).toBe('Succeeded');
    const l = done.status.ledger;
    expect(Number(l.admitted)).toBe(Number(l.trained ?? 0) + Number(l.droppedStale ?? 0) + Number(l.failed ?? 0) + Number(l.cancelled ?? 0));
    // The run's Redis user is deleted once its workloads stopped.
    await until('the run user to be deleted', async () => ((await admin.call('ACL', 'USERS')) as string[]).includes('tandem-run-secret-run') ? undefined : true, 30_000);
    // Ended: no credentials are handed out any more.
    expect((await call('GET', '/v1/runs/secret-run/credentials')).status).toBe(412);

    const text = lines.join('');
    // The logs cover the control plane and its children, so the grep means something.
    expect(text).toContain('API authentication on');
    expect(text).toMatch(/"process":"rollout-worker-0"/);
    expect(text).toMatch(/"process":"trainer"/);
    for (const secret of [API_TOKEN, REDIS_PASSWORD, runToken]) {
      const hits = lines.filter((line) => line.includes(secret));
      expect(hits, `log lines holding a secret:\n${hits.slice(0, 3).join('')}`).toEqual([]);
    }
  }, 300_000);
});

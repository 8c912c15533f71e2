import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import type { RedisServerHandle } from '@tandem/testkit';
import { TrainerServiceClient, type ControlMessage, type PullBatchResponse } from '@tandem/protocol';
import { runKeys } from '@tandem/rollout-queue';
import type { ControlPlane } from '../control-plane.js';
import { TINY_RUN_SPEC as spec, startTestControlPlane, type TestControlPlane } from '../testing/test-control-plane.js';

/**
 * Per-run credentials over real gRPC and a real redis-server: run A's
 * trainer token cannot pull, ack or attach (report weights) for run B, and
 * run A's Redis user cannot read or write any of run B's keys or channels,
 * nor the credentials themselves.
 */

const EDITOR = 'editor-token-for-run-credentials';

let cp: TestControlPlane;
let redis: RedisServerHandle;
let dir: string;
let plane: ControlPlane;
let http: string;
let trainer: TrainerServiceClient;
const creds: Record<string, { token: string; redisUrl: string }> = {};
const clients: Redis[] = [];

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tandem-runcreds-'));
  await writeFile(join(dir, 'tokens.yaml'), `tokens:\n  - { subject: ed, token: ${EDITOR}, role: editor, namespaces: ['*'] }\n`);
  cp = await startTestControlPlane({ TANDEM_RUNTIME: 'none', TANDEM_AUTH_TOKENS_FILE: join(dir, 'tokens.yaml'), TANDEM_REDIS_RUN_USERS: 'required' });
  ({ redis, plane, httpUrl: http } = cp);
  trainer = new TrainerServiceClient(cp.grpcAddress, credentials.createInsecure());
  for (const id of ['run-a', 'run-b']) {
    const headers = { authorization: `Bearer ${EDITOR}`, 'content-type': 'application/json' };
    expect((await fetch(`${http}/v1/runs`, { method: 'POST', headers, body: JSON.stringify({ spec, runId: id }) })).status).toBe(201);
    const res = await fetch(`${http}/v1/runs/${id}/credentials`, { headers });
    expect(res.status).toBe(200);
    creds[id] = (await res.json()) as { token: string; redisUrl: string };
  }
}, 60_000);

afterAll(async () => {
  for (const c of clients) c.disconnect();
  trainer?.close();
  await cp?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function md(token: string | undefined): Metadata {
  const m = new Metadata();
  if (token !== undefined) m.set('authorization', `Bearer ${token}`);
  return m;
}

function pull(runId: string, token: string | undefined): Promise<{ code: status; res?: PullBatchResponse; details?: string }> {
  return new Promise((resolve) =>
    trainer.pullBatch({ runId, step: 0, waitMs: 0 }, md(token), (err: ServiceError | null, res) =>
      resolve(err ? { code: err.code, details: err.details } : { code: status.OK, res }),
    ),
  );
}

function ack(runId: string, token: string): Promise<{ code: status; details?: string }> {
  return new Promise((resolve) =>
    trainer.ackBatch({ runId, step: 0 }, md(token), (err: ServiceError | null) => resolve(err ? { code: err.code, details: err.details } : { code: status.OK })),
  );
}

/** Attaches to `runId` and reports weights; resolves with the stream's first answer (welcome) or its error. */
function attach(runId: string, token: string): Promise<{ code: status; welcome?: boolean; details?: string }> {
  return new Promise((resolve) => {
    const stream = trainer.attach(md(token));
    stream.on('data', (m: ControlMessage) => {
      if (m.kind?.$case === 'welcome') {
        stream.cancel();
        resolve({ code: status.OK, welcome: true });
      }
    });
    stream.on('error', (err: ServiceError) => resolve({ code: err.code, details: err.details }));
    stream.write({ kind: { $case: 'hello', hello: { runId, trainerId: 'intruder', policyVersion: 7, simulated: true } } });
    stream.write({ kind: { $case: 'weightsReady', weightsReady: { policyVersion: 7, updateInfoJson: '' } } });
  });
}

describe('trainer credentials (TrainerService over real gRPC)', () => {
  it('run A\'s token serves run A', async () => {
    const own = await pull('run-a', creds['run-a']?.token);
    expect(own.code).toBe(status.OK);
    expect(own.res?.runId).toBe('run-a');
    expect((await attach('run-a', creds['run-a']?.token as string)).welcome).toBe(true);
  });

  it('run A\'s token cannot pull, ack or attach to run B', async () => {
    const token = creds['run-a']?.token as string;
    const p = await pull('run-b', token);
    expect(p.code).toBe(status.PERMISSION_DENIED);
    expect(p.details).toContain('run run-b');
    expect((await ack('run-b', token)).code).toBe(status.PERMISSION_DENIED);
    const a = await attach('run-b', token);
    expect(a.code).toBe(status.PERMISSION_DENIED);
    // The weights report that followed hello was not taken: run B has no trainer session.
    expect(plane.sessions.get('run-b')).toBeUndefined();
  });

  it('no token is UNAUTHENTICATED; an API token is not a trainer credential', async () => {
    expect((await pull('run-a', undefined)).code).toBe(status.UNAUTHENTICATED);
    expect((await pull('run-a', EDITOR)).code).toBe(status.PERMISSION_DENIED);
  });

  it('credentials are minted once per run and differ between runs', async () => {
    const again = await fetch(`${http}/v1/runs/run-a/credentials`, { headers: { authorization: `Bearer ${EDITOR}` } });
    expect(((await again.json()) as { token: string }).token).toBe(creds['run-a']?.token);
    expect(creds['run-a']?.token).not.toBe(creds['run-b']?.token);
    expect(creds['run-a']?.token.length).toBeGreaterThanOrEqual(40);
  });
});

describe('rollout-worker Redis users (real redis-server ACL)', () => {
  function connect(url: string): Redis {
    const c = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null });
    c.on('error', () => undefined);
    clients.push(c);
    return c;
  }

  it('run A\'s user reads and writes run A\'s keys only', async () => {
    const url = creds['run-a']?.redisUrl as string;
    expect(new URL(url).username).toBe('tandem-run-run-a');
    const a = connect(url);
    await a.connect();
    const ka = runKeys('run-a', 'tandem');
    const kb = runKeys('run-b', 'tandem');
    expect(await a.hget(`${ka.bullPrefix}:record`, 'id')).toBe('run-a');
    await a.hset(`${ka.bullPrefix}:stats`, 'probe', '1');
    await expect(a.hget(`${kb.bullPrefix}:record`, 'id')).rejects.toThrow(/NOPERM/);
    await expect(a.hset(`${kb.bullPrefix}:stats`, 'probe', '1')).rejects.toThrow(/NOPERM/);
    await expect(a.get(kb.meta)).rejects.toThrow(/NOPERM/);
    await expect(a.hgetall('tandem:auth:run-credentials')).rejects.toThrow(/NOPERM/);
    await expect(a.keys('*')).rejects.toThrow(/NOPERM/);
    await expect(a.flushall()).rejects.toThrow(/NOPERM/);
    await expect(a.call('ACL', 'LIST')).rejects.toThrow(/NOPERM/);
    await expect(a.publish(kb.events, 'x')).rejects.toThrow(/NOPERM/);
    expect(await a.publish(ka.events, 'x')).toBeGreaterThanOrEqual(0);
  });

  it('run A\'s user cannot subscribe to run B\'s events, nor to every run\'s', async () => {
    const sub = connect(creds['run-a']?.redisUrl as string);
    await sub.connect();
    await expect(sub.psubscribe(runKeys('run-b', 'tandem').events)).rejects.toThrow(/NOPERM/);
    await expect(sub.psubscribe('tandem:*:events')).rejects.toThrow(/NOPERM/);
  });

  it('a wrong password is refused', async () => {
    const c = connect(redis.url);
    await c.connect();
    await expect(c.call('AUTH', 'tandem-run-run-a', 'wrong')).rejects.toThrow(/WRONGPASS/);
    expect(await c.call('AUTH', 'tandem-run-run-a', creds['run-a']?.token as string)).toBe('OK');
  });
});

describe('run users after a Redis restart', () => {
  it('are made again when the control plane reconnects (Redis keeps ACL users in memory only)', async () => {
    const admin = new Redis(redis.url);
    clients.push(admin);
    // What a restart without an aclfile does to the users, then the reconnect.
    await admin.call('ACL', 'DELUSER', 'tandem-run-run-a', 'tandem-run-run-b');
    await admin.call('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
    const deadline = Date.now() + 20_000;
    let users: string[] = [];
    while (Date.now() < deadline) {
      users = (await admin.call('ACL', 'USERS')) as string[];
      if (users.includes('tandem-run-run-a') && users.includes('tandem-run-run-b')) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(users).toEqual(expect.arrayContaining(['tandem-run-run-a', 'tandem-run-run-b']));
    const a = new Redis(creds['run-a']?.redisUrl as string);
    clients.push(a);
    expect(await a.hget(`${runKeys('run-a', 'tandem').bullPrefix}:record`, 'id')).toBe('run-a');
  }, 30_000);
});

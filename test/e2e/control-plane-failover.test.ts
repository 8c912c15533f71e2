import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { RolloutStore } from '@tandem/rollout-queue';
import { startControlPlaneReplica, startRedisServer, type ControlPlaneReplica, type RedisServerHandle } from '@tandem/testkit';
import { observedRunSpec } from './support-observability/observed-run.js';

/**
 * Control-plane high availability in local mode: two replicas (real
 * processes) on one Redis, leader election over the Redis lock. The leader
 * runs a simulated run; it is killed with SIGKILL mid-run (its children die
 * with it); the standby takes the run over (raises the run's fence,
 * restarts its processes, the trainer resumes at its acked step) and the
 * run completes with a balanced ledger. The failover time is measured and
 * printed, not asserted.
 */
const STEPS = 8;
const LEASE_MS = 2000;

let redis: RedisServerHandle;
let store: RolloutStore;
const replicas: ControlPlaneReplica[] = [];
const prefix = `tandem-ha-${randomBytes(3).toString('hex')}`;

beforeAll(async () => {
  redis = await startRedisServer();
  store = await RolloutStore.create({ redisUrl: redis.url, keyPrefix: prefix });
});
afterAll(async () => {
  for (const r of replicas) if (r.process.child.exitCode === null && r.process.child.signalCode === null) await r.kill9();
  await store?.close();
  await redis?.stop();
});

type Json = Record<string, unknown>;
async function http(base: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: Json }> {
  const res = await fetch(`${base}${path}`, {
    method,
    ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }),
  });
  return { status: res.status, body: (await res.json()) as Json };
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface RunJson {
  status: { phase: string; trainerStep: number; ledger: Record<string, number> };
}
const num = (v: unknown): number => Number(v ?? 0);

describe('control-plane failover (local mode, leader election over Redis)', () => {
  it('a standby takes over a running run when the leader is killed -9; the run succeeds and the ledger holds', async () => {
    const start = (name: string): Promise<ControlPlaneReplica> =>
      startControlPlaneReplica({ name, redisUrl: redis.url, keyPrefix: prefix, leaseMs: LEASE_MS, renewMs: 200 }).then((r) => {
        replicas.push(r);
        return r;
      });
    const a = await start('replica-a');
    const first = await a.waitForLeading();
    const b = await start('replica-b');

    // The standby: alive, not ready, names the leader; refuses changes with 503 naming it.
    expect((await http(b.httpUrl, 'GET', '/healthz')).status).toBe(200);
    const ready = await http(b.httpUrl, 'GET', '/readyz');
    expect(ready.status).toBe(503);
    expect(String(ready.body.reason)).toContain(a.httpUrl);
    const refused = await http(b.httpUrl, 'POST', '/v1/runs', { spec: observedRunSpec({ steps: STEPS, k: 1, timeScale: 0.05, generators: 2 }) });
    expect(refused.status).toBe(503);
    expect(refused.body.error).toMatchObject({ code: 'UNAVAILABLE', reason: 'NOT_LEADER' });
    expect(String((refused.body.error as Json).message)).toContain(`the leader is at ${a.httpUrl}`);

    const submitted = await http(a.httpUrl, 'POST', '/v1/runs', { spec: observedRunSpec({ steps: STEPS, k: 1, timeScale: 0.05, generators: 2 }) });
    expect(submitted.status).toBe(201);
    const runId = String(submitted.body.id);
    // Reads work on the standby (from Redis).
    expect((await http(b.httpUrl, 'GET', `/v1/runs/${runId}`)).status).toBe(200);

    const stepAtKill = await until(
      'two steps trained under the first leader',
      async () => {
        const run = (await http(a.httpUrl, 'GET', `/v1/runs/${runId}`)).body as unknown as RunJson;
        return run.status.trainerStep >= 2 ? run.status.trainerStep : undefined;
      },
      120_000,
    );
    expect(stepAtKill).toBeLessThan(STEPS);
    const killedAt = await a.kill9();

    // On failure, the new leader's log says why.
    const withLogs = <T,>(p: Promise<T>): Promise<T> =>
      p.catch((err: unknown) => {
        throw new Error(`${String(err)}\n--- ${b.name} log (tail) ---\n${b.process.logs().slice(-6000)}`);
      });
    const takeover = await withLogs(b.waitForLeading({ timeoutMs: LEASE_MS * 10 }));
    expect(takeover.token).toBeGreaterThan(first.token);
    expect(takeover.runs).toContain(runId);
    expect(await store.redis.get(store.forRun(runId).keys.fence)).toBe(String(takeover.token));
    const firstStepAfter = await withLogs(until(
      'a step trained after the takeover',
      async () => {
        const run = (await http(b.httpUrl, 'GET', `/v1/runs/${runId}`)).body as unknown as RunJson;
        return run.status.trainerStep > stepAtKill ? Date.now() : undefined;
      },
      60_000,
    ));
    process.stderr.write(
      `failover: leader killed -> standby leading ${takeover.acquiredAtMs - killedAt} ms (lease ${LEASE_MS} ms), ` +
        `runs resumed after ${takeover.resumedAtMs - killedAt} ms, first step trained after takeover ${firstStepAfter - killedAt} ms ` +
        `(killed at step ${stepAtKill} of ${STEPS})\n`,
    );

    const done = await withLogs(until(
      'the run to end',
      async () => {
        const run = (await http(b.httpUrl, 'GET', `/v1/runs/${runId}`)).body as unknown as RunJson;
        return ['Succeeded', 'Failed', 'Cancelled'].includes(run.status.phase) ? run : undefined;
      },
      180_000,
    ));
    expect(done.status.phase).toBe('Succeeded');
    expect(done.status.trainerStep).toBe(STEPS);
    const l = done.status.ledger;
    expect(num(l.admitted)).toBe(num(l.trained) + num(l.droppedStale) + num(l.failed) + num(l.cancelled));
    expect(num(l.trained)).toBe(STEPS * 8);
    // No group trained twice: the group states agree with the counters.
    const states = [...(await store.forRun(runId).groupStates()).values()];
    expect(states.length).toBe(num(l.admitted));
    expect(states.filter((s) => s === 'trained').length).toBe(num(l.trained));
    // B now ready; a new replica would stand by behind it.
    expect((await http(b.httpUrl, 'GET', '/readyz')).status).toBe(200);
  }, 300_000);
});

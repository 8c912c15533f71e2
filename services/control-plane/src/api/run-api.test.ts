import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { credentials, type Metadata, type ServiceError } from '@grpc/grpc-js';
import { Run, RunServiceClient, type ListRunsResponse, type RunEvent } from '@tandem/protocol';
import { TINY_RUN_SPEC as spec, startTestControlPlane, type TestControlPlane } from '../testing/test-control-plane.js';

/**
 * The run API over both surfaces against a real Redis and real servers on
 * 127.0.0.1:0: the same request gets the same answer, and bad input gets an
 * error naming the field and changes nothing.
 */

let cp: TestControlPlane;
let http: string;
let grpc: RunServiceClient;

beforeAll(async () => {
  cp = await startTestControlPlane();
  http = cp.httpUrl;
  grpc = new RunServiceClient(cp.grpcAddress, credentials.createInsecure());
});
afterAll(async () => {
  grpc?.close();
  await cp?.stop();
});

async function httpJson(method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(`${http}${path}`, {
    method,
    headers: { 'content-type': 'application/json' },
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  });
  return { status: res.status, json: await res.json() };
}

function unary<Res>(invoke: (cb: (err: ServiceError | null, res: Res) => void) => unknown): Promise<Res> {
  return new Promise((resolve, reject) => invoke((err, res) => (err ? reject(err) : resolve(res))));
}

/** A run's JSON without what legitimately differs between two runs. */
function comparable(run: any): unknown {
  const { id: _id, status, ...rest } = run;
  const { createdAt: _c, updatedAt: _u, finishedAt: _f, ...s } = status;
  return { ...rest, status: s };
}

describe('run API parity', () => {
  it('submits and reads a run the same way over HTTP and gRPC', async () => {
    const viaHttp = await httpJson('POST', '/v1/runs', { spec, runId: 'parity-http' });
    expect(viaHttp.status).toBe(201);
    expect(viaHttp.json.id).toBe('parity-http');
    expect(viaHttp.json.spec.algorithm).toMatchObject({ groupSize: 2, batchGroups: 2, name: 'grpo' });
    const viaGrpc = await unary<Run>((cb) => grpc.submitRun({ spec, runId: 'parity-grpc', namespace: '' }, cb));
    expect(viaGrpc.id).toBe('parity-grpc');

    // Cancel both so they stop changing, then compare every read.
    await httpJson('POST', '/v1/runs/parity-http:cancel', { reason: 'test' });
    await unary<Run>((cb) => grpc.cancelRun({ runId: 'parity-grpc', reason: 'test' }, cb));
    const a = await httpJson('GET', '/v1/runs/parity-http');
    const b = Run.toJSON(await unary<Run>((cb) => grpc.getRun({ runId: 'parity-grpc' }, cb)));
    expect(comparable(a.json)).toEqual(comparable(b));
    expect(a.json.status.phase).toBe('Cancelled');
    // The same run read over both surfaces is identical, field for field.
    expect(Run.toJSON(await unary<Run>((cb) => grpc.getRun({ runId: 'parity-http' }, cb)))).toEqual(a.json);

    const listHttp = await httpJson('GET', '/v1/runs');
    const listGrpc = await unary<ListRunsResponse>((cb) => grpc.listRuns({ namespace: '' }, cb));
    expect(listHttp.json.runs).toEqual(listGrpc.runs.map((r) => Run.toJSON(r)));
  });

  it('names every bad field, with 400 and INVALID_ARGUMENT, and creates nothing', async () => {
    const before = (await httpJson('GET', '/v1/runs')).json.runs.length;
    const bad = { ...spec, maxSteps: -1, async: { maxTrajectoryAgeSteps: 'two' } };
    const h = await httpJson('POST', '/v1/runs', { spec: bad });
    expect(h.status).toBe(400);
    expect(h.json.error.code).toBe('INVALID_ARGUMENT');
    const paths = h.json.error.fieldViolations.map((v: { path: string }) => v.path).sort();
    expect(paths).toEqual(['async.maxTrajectoryAgeSteps', 'maxSteps']);
    expect(h.json.error.message).toContain('maxSteps');

    const g = await unary<Run>((cb) => grpc.submitRun({ spec: bad, runId: '', namespace: '' }, cb)).catch((e: ServiceError) => e);
    expect((g as ServiceError).code).toBe(3); // INVALID_ARGUMENT
    expect((g as ServiceError).details).toBe(h.json.error.message);
    const trailer = (g as ServiceError).metadata as Metadata;
    expect(JSON.parse(String(trailer.get('tandem-field-violations')[0]))).toEqual(h.json.error.fieldViolations);

    // A violation quoting non-ASCII input still travels in the trailer
    // (metadata must be printable ASCII), and parses back to the same text.
    const odd = await unary<Run>((cb) => grpc.submitRun({ spec: { ...spec, algorithm: { 'gr\u00e9\u4e2aoupSize\u0000': 2 } }, runId: '', namespace: '' }, cb)).catch((e: ServiceError) => e);
    expect((odd as ServiceError).code).toBe(3);
    const oddViolations = JSON.parse(String(((odd as ServiceError).metadata as Metadata).get('tandem-field-violations')[0])) as Array<{ path: string; message: string }>;
    expect(oddViolations.some((v) => v.message.includes('gr\u00e9\u4e2aoupSize\u0000'))).toBe(true);

    expect((await httpJson('POST', '/v1/runs', '{not json')).status).toBe(400);
    const extra = await httpJson('POST', '/v1/runs', { spec, colour: 'red' });
    expect(extra.status).toBe(400);
    expect(extra.json.error.message).toContain('colour');
    const badId = await httpJson('POST', '/v1/runs', { spec, runId: 'Bad_Id' });
    expect(badId.json.error.fieldViolations[0].path).toBe('runId');
    expect((await httpJson('GET', '/v1/runs')).json.runs.length).toBe(before);
  });

  it('answers 404 and NOT_FOUND for an unknown run', async () => {
    const h = await httpJson('GET', '/v1/runs/nope');
    expect(h.status).toBe(404);
    expect(h.json.error.code).toBe('NOT_FOUND');
    const g = await unary<Run>((cb) => grpc.getRun({ runId: 'nope' }, cb)).catch((e: ServiceError) => e);
    expect((g as ServiceError).code).toBe(5);
    expect((g as ServiceError).details).toBe(h.json.error.message);
    expect((await httpJson('POST', '/v1/runs/nope:cancel', {})).status).toBe(404);
  });

  it('refuses a duplicate run id with 409 / ALREADY_EXISTS', async () => {
    await httpJson('POST', '/v1/runs', { spec, runId: 'dup' });
    expect((await httpJson('POST', '/v1/runs', { spec, runId: 'dup' })).status).toBe(409);
    const g = await unary<Run>((cb) => grpc.submitRun({ spec, runId: 'dup', namespace: '' }, cb)).catch((e: ServiceError) => e);
    expect((g as ServiceError).code).toBe(6);
    await httpJson('POST', '/v1/runs/dup:cancel', {});
  });

  it('cancels: everything admitted ends cancelled and the ledger balances', async () => {
    const { json } = await httpJson('POST', '/v1/runs', { spec });
    // The admitter fills the queue's capacity (batchGroups × (k + 1) = 4).
    let run = json;
    for (let i = 0; i < 50 && run.status.ledger.admitted < 4; i++) {
      await new Promise((r) => setTimeout(r, 20));
      run = (await httpJson('GET', `/v1/runs/${json.id}`)).json;
    }
    expect(run.status.ledger.admitted).toBe(4);
    expect(run.status.inFlight).toBe(4);
    const cancelled = (await httpJson('POST', `/v1/runs/${json.id}:cancel`, { reason: 'no longer needed' })).json;
    expect(cancelled.status).toMatchObject({ phase: 'Cancelled', message: 'no longer needed' });
    // proto3 JSON leaves out zero values: no inFlight means 0.
    expect(cancelled.status.inFlight ?? 0).toBe(0);
    expect(cancelled.status.ledger).toMatchObject({ admitted: 4, cancelled: 4 });
    // Cancelling again is a no-op.
    expect((await httpJson('POST', `/v1/runs/${json.id}:cancel`, {})).json.status.ledger.cancelled).toBe(4);
  });

  it('streams status until the run ends (gRPC WatchRun and HTTP :watch)', async () => {
    const { json } = await httpJson('POST', '/v1/runs', { spec });
    const events: RunEvent[] = [];
    const stream = grpc.watchRun({ runId: json.id });
    const ended = new Promise<void>((resolve, reject) => {
      stream.on('data', (e: RunEvent) => events.push(e));
      stream.on('end', () => resolve());
      stream.on('error', reject);
    });
    const res = await fetch(`${http}/v1/runs/${json.id}:watch`);
    const body = res.text();
    await new Promise((r) => setTimeout(r, 100));
    await httpJson('POST', `/v1/runs/${json.id}:cancel`, {});
    await ended;
    expect(events.at(-1)?.status?.phase).toBe('Cancelled');
    const lines = (await body).trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.at(-1).status.phase).toBe('Cancelled');
    expect(lines.at(-1).runId).toBe(json.id);
  });

  it('serves health, readiness and metrics', async () => {
    expect((await httpJson('GET', '/healthz')).status).toBe(200);
    expect((await httpJson('GET', '/readyz')).status).toBe(200);
    const text = await (await fetch(`${http}/metrics`)).text();
    for (const name of [
      'tandem_groups_total',
      'tandem_rollout_queue_depth',
      'tandem_policy_version',
      'tandem_trainer_step',
      'tandem_admission_wait_seconds',
      'tandem_trajectory_age_steps',
      'tandem_tokens_wasted_total',
      'tandem_trainer_wait_seconds_total',
    ]) {
      expect(text).toContain(`# TYPE ${name}`);
    }
    expect(text).toMatch(/tandem_groups_total\{run="[^"]+",outcome="cancelled"\} [1-9]/);
  });
});

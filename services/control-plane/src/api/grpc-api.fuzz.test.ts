import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, Metadata, credentials, status, type ServiceError } from '@grpc/grpc-js';
import fc from 'fast-check';
import {
  AckBatchRequest,
  CancelRunRequest,
  GetRunRequest,
  PullBatchRequest,
  RunServiceClient,
  ScaleRunRequest,
  SubmitRunRequest,
  TrainerMessage,
  WatchRunRequest,
  type Run,
} from '@tandem/protocol';
import type { ControlPlane } from '../control-plane.js';
import { TINY_RUN_SPEC as spec, startTestControlPlane, type TestControlPlane } from '../testing/test-control-plane.js';

/**
 * Seeded property tests of the gRPC surface over a real grpc-js channel to
 * a real control plane (real Redis, runtime `none`). A generic client with
 * a pass-through serializer sends raw bytes: garbage, truncated and
 * bit-flipped encodings of valid requests, and valid encodings carrying
 * random field values, to every method of RunService and TrainerService.
 * Every refusal is a status a client can act on (INVALID_ARGUMENT,
 * NOT_FOUND, FAILED_PRECONDITION, RESOURCE_EXHAUSTED, …) with a message,
 * never INTERNAL or UNKNOWN; the server keeps serving; a run accepted
 * before the barrage keeps a balanced ledger.
 */

const MAX_GRPC_MESSAGE_BYTES = 64 * 1024;

let cp: TestControlPlane;
let plane: ControlPlane;
let raw: Client;
let typed: RunServiceClient;

const passThrough = (b: Buffer): Buffer => b;

type Outcome = { ok: true } | { ok: false; code: number; details: string };

function unaryRaw(path: string, bytes: Buffer): Promise<Outcome> {
  return new Promise((resolve) => {
    raw.makeUnaryRequest(path, passThrough, passThrough, bytes, new Metadata(), { deadline: Date.now() + 10_000 }, (err: ServiceError | null) =>
      resolve(err ? { ok: false, code: err.code, details: err.details } : { ok: true }),
    );
  });
}

function serverStreamRaw(path: string, bytes: Buffer): Promise<Outcome> {
  return new Promise((resolve) => {
    const call = raw.makeServerStreamRequest(path, passThrough, passThrough, bytes, new Metadata(), { deadline: Date.now() + 10_000 });
    call.on('data', () => undefined);
    call.on('error', (err: ServiceError) => resolve({ ok: false, code: err.code, details: err.details }));
    call.on('end', () => resolve({ ok: true }));
  });
}

/** An Attach stream that sends `messages` and half-closes; the first status or the end wins. */
function attachRaw(messages: Buffer[]): Promise<Outcome> {
  return new Promise((resolve) => {
    const call = raw.makeBidiStreamRequest('/tandem.v1.TrainerService/Attach', passThrough, passThrough, new Metadata(), { deadline: Date.now() + 10_000 });
    call.on('data', () => undefined);
    call.on('error', (err: ServiceError) => resolve({ ok: false, code: err.code, details: err.details }));
    call.on('end', () => resolve({ ok: true }));
    for (const m of messages) call.write(m);
    call.end();
  });
}

const ACCEPTABLE = new Set<number>([
  status.INVALID_ARGUMENT,
  status.NOT_FOUND,
  status.ALREADY_EXISTS,
  status.FAILED_PRECONDITION,
  status.RESOURCE_EXHAUSTED,
  status.ABORTED,
  // DEADLINE_EXCEEDED would be a hang: not acceptable.
]);

function expectClear(o: Outcome, what: string): void {
  if (o.ok) return;
  expect(ACCEPTABLE.has(o.code), `${what} → ${status[o.code]}: ${o.details}`).toBe(true);
  expect(o.details.length, what).toBeGreaterThan(0);
}

beforeAll(async () => {
  cp = await startTestControlPlane({
    TANDEM_RUNTIME: 'none',
    TANDEM_KEY_PREFIX: 'grpc-fuzz',
    TANDEM_MAX_PULL_WAIT_MS: '20',
    TANDEM_MAX_GRPC_MESSAGE_BYTES: String(MAX_GRPC_MESSAGE_BYTES),
  });
  ({ plane } = cp);
  const { grpcAddress } = cp;
  raw = new Client(grpcAddress, credentials.createInsecure());
  typed = new RunServiceClient(grpcAddress, credentials.createInsecure());
  await new Promise<Run>((resolve, reject) => typed.submitRun({ spec, runId: 'fuzz-open', namespace: '' }, (err, r) => (err ? reject(err) : resolve(r))));
  await new Promise<Run>((resolve, reject) => typed.submitRun({ spec, runId: 'fuzz-done', namespace: '' }, (err, r) => (err ? reject(err) : resolve(r))));
  await new Promise<Run>((resolve, reject) => typed.cancelRun({ runId: 'fuzz-done', reason: 'ended' }, (err, r) => (err ? reject(err) : resolve(r))));
}, 60_000);

afterAll(async () => {
  raw?.close();
  typed?.close();
  await cp?.stop();
});

const runId = fc.oneof(fc.constantFrom('fuzz-open', 'fuzz-done', '', 'Bad_Id', 'x'.repeat(70), '{tag}', 'a\u0000b'), fc.string({ maxLength: 20 }));
const int64 = fc.oneof(fc.integer({ min: -5, max: 10 }), fc.constantFrom(-1, 2 ** 31, Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER));
const uint32 = fc.oneof(fc.integer({ min: 0, max: 10 }), fc.constantFrom(4096, 4097, 2 ** 32 - 1));

/** A valid encoding of each unary method's request with random field values. */
const unaryRequests = fc.oneof(
  fc.tuple(runId, fc.option(fc.jsonValue({ maxDepth: 3 }), { nil: undefined }), fc.boolean()).map(([id, value, useSpec]) => ({
    path: '/tandem.v1.RunService/SubmitRun',
    bytes: Buffer.from(
      SubmitRunRequest.encode(
        SubmitRunRequest.fromPartial({
          runId: id === 'fuzz-open' ? 'fuzz-new' : id,
          spec: useSpec ? { ...spec, maxSteps: value } : typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : { value },
        }),
      ).finish(),
    ),
  })),
  runId.map((id) => ({ path: '/tandem.v1.RunService/GetRun', bytes: Buffer.from(GetRunRequest.encode({ runId: id }).finish()) })),
  fc.constant({ path: '/tandem.v1.RunService/ListRuns', bytes: Buffer.alloc(0) }),
  fc.tuple(runId, fc.string({ maxLength: 2000 })).map(([id, reason]) => ({
    path: '/tandem.v1.RunService/CancelRun',
    bytes: Buffer.from(CancelRunRequest.encode({ runId: id === 'fuzz-open' ? 'fuzz-done' : id, reason }).finish()),
  })),
  fc.tuple(runId, uint32).map(([id, generators]) => ({ path: '/tandem.v1.RunService/ScaleRun', bytes: Buffer.from(ScaleRunRequest.encode({ runId: id, generators }).finish()) })),
  fc.tuple(runId, int64, uint32).map(([id, step, waitMs]) => ({ path: '/tandem.v1.TrainerService/PullBatch', bytes: Buffer.from(PullBatchRequest.encode({ runId: id, step, waitMs }).finish()) })),
  fc.tuple(runId, int64).map(([id, step]) => ({ path: '/tandem.v1.TrainerService/AckBatch', bytes: Buffer.from(AckBatchRequest.encode({ runId: id, step }).finish()) })),
);

/** Protobuf length-delimited field `field` holding `body`. */
function delimited(field: number, body: Buffer): Buffer {
  const len: number[] = [];
  let n = body.length;
  while (n > 0x7f) {
    len.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  len.push(n);
  return Buffer.concat([Buffer.from([(field << 3) | 2, ...len]), body]);
}

/** A SubmitRunRequest whose spec nests `depth` lists (google.protobuf.Value.list_value = 6, ListValue.values = 1). */
function deeplyNestedSpec(depth: number): Buffer {
  let value: Buffer = Buffer.alloc(0);
  for (let i = 0; i < depth; i++) value = delimited(6, delimited(1, value));
  const entry = Buffer.concat([delimited(1, Buffer.from('model')), delimited(2, value)]);
  return delimited(1, delimited(1, entry));
}

/** Bytes that are not, or not quite, a valid message. */
function corrupt(bytes: Buffer, how: number, at: number, junk: Uint8Array): Buffer {
  if (how === 0) return Buffer.from(junk);
  if (how === 1) return bytes.subarray(0, bytes.length === 0 ? 0 : at % bytes.length); // truncated
  if (how === 2) {
    const copy = Buffer.from(bytes);
    if (copy.length > 0) copy[at % copy.length] = ((copy[at % copy.length] as number) ^ (junk[0] ?? 0xff)) & 0xff;
    return copy;
  }
  return Buffer.concat([bytes, Buffer.from(junk)]); // trailing garbage
}
const corrupted = fc
  .tuple(unaryRequests, fc.integer({ min: 0, max: 3 }), fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 64 }))
  .map(([r, how, at, junk]) => ({ path: r.path, bytes: corrupt(r.bytes, how, at, junk) }));

describe('gRPC API under arbitrary input (property)', () => {
  it('answers well-formed requests with random field values with a clear status, never INTERNAL or UNKNOWN', async () => {
    await fc.assert(
      fc.asyncProperty(unaryRequests, async ({ path, bytes }) => expectClear(await unaryRaw(path, bytes), path)),
      { numRuns: 200, seed: 4242 },
    );
  }, 60_000);

  it('answers garbage, truncated and bit-flipped messages with INVALID_ARGUMENT or another clear status', async () => {
    await fc.assert(
      fc.asyncProperty(corrupted, async ({ path, bytes }) => expectClear(await unaryRaw(path, bytes), path)),
      {
        numRuns: 200,
        seed: 777,
        examples: [
          // Found by this property: bytes that do not decode were INTERNAL.
          [{ path: '/tandem.v1.RunService/GetRun', bytes: Buffer.from([0x0a, 0x05, 0x61]) }],
          [{ path: '/tandem.v1.TrainerService/PullBatch', bytes: Buffer.from([0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]) }],
          // Nesting deep enough to exhaust the decoder's stack, within the size limit.
          [{ path: '/tandem.v1.RunService/SubmitRun', bytes: deeplyNestedSpec(8_000) }],
        ],
      },
    );
    const undecodable = await unaryRaw('/tandem.v1.RunService/GetRun', Buffer.from([0x0a, 0x05, 0x61]));
    expect(undecodable).toMatchObject({ ok: false, code: status.INVALID_ARGUMENT });
    expect((undecodable as { details: string }).details).toMatch(/^invalid \/tandem\.v1\.RunService\/GetRun request: \(root\): the message does not decode/);
  }, 60_000);

  it('answers WatchRun and Attach streams carrying bad messages with a clear status', async () => {
    const trainerMessage = fc.oneof(
      fc.uint8Array({ minLength: 1, maxLength: 64 }).map((b) => Buffer.from(b)),
      fc.tuple(runId, fc.string({ maxLength: 10 }), int64).map(([id, trainerId, v]) =>
        Buffer.from(TrainerMessage.encode({ kind: { $case: 'hello', hello: { runId: id === 'fuzz-open' ? 'fuzz-done' : id, trainerId, policyVersion: v, simulated: true } } }).finish()),
      ),
      int64.map((v) => Buffer.from(TrainerMessage.encode({ kind: { $case: 'weightsReady', weightsReady: { policyVersion: v, updateInfoJson: '{' } } }).finish())),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.tuple(fc.constant('watch' as const), fc.oneof(runId.filter((id) => id !== 'fuzz-open').map((id) => Buffer.from(WatchRunRequest.encode({ runId: id }).finish())), fc.uint8Array({ minLength: 1, maxLength: 32 }).map((b) => Buffer.from(b)))),
          fc.tuple(fc.constant('attach' as const), fc.array(trainerMessage, { minLength: 1, maxLength: 4 })),
        ),
        async ([kind, payload]) => {
          const o = kind === 'watch' ? await serverStreamRaw('/tandem.v1.RunService/WatchRun', payload as Buffer) : await attachRaw(payload as Buffer[]);
          expectClear(o, kind);
        },
      ),
      { numRuns: 80, seed: 31337 },
    );
    // Found by this property: WatchRun of an unknown run hung until the
    // client's deadline instead of answering NOT_FOUND.
    const unknown = await serverStreamRaw('/tandem.v1.RunService/WatchRun', Buffer.from(WatchRunRequest.encode({ runId: 'no-such-run' }).finish()));
    expect(unknown).toMatchObject({ ok: false, code: status.NOT_FOUND, details: 'run no-such-run not found' });
    const garbage = await attachRaw([Buffer.from([0x0a, 0x05, 0x61])]);
    expect(garbage).toMatchObject({ ok: false, code: status.INVALID_ARGUMENT });
    expect((garbage as { details: string }).details).toMatch(/^invalid \/tandem\.v1\.TrainerService\/Attach request: \(root\): the message does not decode/);
  }, 60_000);

  it('refuses a message over TANDEM_MAX_GRPC_MESSAGE_BYTES with RESOURCE_EXHAUSTED naming the limit', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: MAX_GRPC_MESSAGE_BYTES + 1, max: 4 * MAX_GRPC_MESSAGE_BYTES }), async (size) => {
        const prompts = [{ prompt: 'p'.repeat(size) }];
        const bytes = Buffer.from(SubmitRunRequest.encode(SubmitRunRequest.fromPartial({ spec: { ...spec, dataset: { source: 'inline', prompts } } })).finish());
        const o = await unaryRaw('/tandem.v1.RunService/SubmitRun', bytes);
        expect(o).toMatchObject({ ok: false, code: status.RESOURCE_EXHAUSTED });
        expect((o as { details: string }).details).toContain(String(MAX_GRPC_MESSAGE_BYTES));
      }),
      { numRuns: 5, seed: 5 },
    );
  }, 60_000);

  it('keeps serving, and keeps the runs it accepted', async () => {
    const got = await new Promise<Run>((resolve, reject) => typed.getRun({ runId: 'fuzz-done' }, (err, r) => (err ? reject(err) : resolve(r))));
    expect(got.status?.phase).toBe('Cancelled');
    const snap = await plane.store.forRun('fuzz-open').snapshot();
    const l = snap.ledger;
    expect(l.admitted).toBe(l.trained + l.droppedStale + l.failed + l.cancelled + snap.inFlight + snap.queueDepth);
  });
});
